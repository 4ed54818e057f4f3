"""One pass over a run's requests, a chunk of columns at a time, feeding every request metric (issue #18).

Each :class:`~capbench.records.columns.RequestChunk` goes to the tallies of :mod:`.latency`, :mod:`.goodput`,
:mod:`.concurrency`, :mod:`.accuracy`, :mod:`.fixed_length`, :mod:`.token_lengths`, :mod:`.turns` and
:mod:`.loglikelihood`, then is dropped: what stays is counts, sums and one float column per exact distribution.
Generation metrics see only ``generate`` requests; log-likelihood requests go to their own group; the achieved
load and the accuracy recount see every request.

A source may be a restartable callable (a run directory read by :class:`capbench.records.reader.KeyedFile`): when
its reader finds duplicate records at the end of the file it raises :class:`~capbench.records.reader.Rescan`,
and the scan starts again with fresh tallies (the next read skips the duplicates).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from capbench.metrics.accuracy import AccuracyTally
from capbench.metrics.concurrency import LoadTally
from capbench.metrics.fixed_length import FixedLengthTally
from capbench.metrics.goodput import GoodputTally
from capbench.metrics.latency import LatencyTally
from capbench.metrics.loglikelihood import LoglikelihoodTally
from capbench.metrics.token_lengths import TokenLengthTally
from capbench.metrics.turns import TurnTally
from capbench.records.columns import GENERATE, RequestChunk, request_chunks
from capbench.records.reader import Rescan

ChunkSource = Callable[[], Iterator[RequestChunk]]
"""A restartable source of request chunks (each call reads from the start)."""


@dataclass
class RequestScan:
    """Every request tally of a run, filled by :func:`scan_requests`."""

    manifest: Mapping[str, Any]
    latency: LatencyTally = field(default_factory=LatencyTally)
    goodput: GoodputTally = field(init=False)
    load: LoadTally = field(default_factory=LoadTally)
    accuracy: AccuracyTally = field(default_factory=AccuracyTally)
    fixed_length: FixedLengthTally = field(init=False)
    lengths: TokenLengthTally = field(default_factory=TokenLengthTally)
    turns: TurnTally = field(default_factory=TurnTally)
    loglikelihood: LoglikelihoodTally = field(default_factory=LoglikelihoodTally)

    def __post_init__(self) -> None:
        self.goodput = GoodputTally((self.manifest.get("spec") or {}).get("slo") or {})
        self.fixed_length = FixedLengthTally(self.manifest)

    def add(self, chunk: RequestChunk) -> None:
        self.load.add(chunk)
        self.accuracy.add(chunk)
        self.loglikelihood.add(chunk)
        generate = chunk.request_type == GENERATE
        gen = chunk if bool(np.all(generate)) else chunk.select(generate)
        self.latency.add(gen)
        self.goodput.add(gen)
        self.fixed_length.add(gen)
        self.lengths.add(gen)
        self.turns.add(gen)


def scan_requests(requests: Iterable[Mapping[str, Any]] | ChunkSource, manifest: Mapping[str, Any]) -> RequestScan:
    """Feed every request of ``requests`` (in-memory records, or a restartable chunk source) to fresh tallies."""
    while True:
        scan = RequestScan(manifest)
        chunks = requests() if callable(requests) else request_chunks(requests)
        try:
            for chunk in chunks:
                scan.add(chunk)
        except Rescan:
            if not callable(requests):
                raise
            continue
        return scan
