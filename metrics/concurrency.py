"""Achieved load from the requests themselves: in-flight requests over time and the submission rate.

A measured request is in flight on [t_submit_ns, t_done_ns) (errored requests included: they occupied a
slot). Over the measurement window W = [first submit, last done] (wall_s = |W|):
- ``mean_in_flight`` = Σ_r (t_done − t_submit) / wall_s (Little's law: the time-average of the in-flight count);
- ``max_in_flight``: the largest in-flight count at any instant;
- ``timeline``: the time-average in-flight count in ``bins`` equal slices of W (at most 100), with the slice
  length ``bin_s``, so a plot shows ramp-up, steady state and drain;
- ``submit_rate_per_s`` = (submissions − 1) / (last submit − first submit) (the achieved arrival rate).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from capbench.records.columns import MISSING, RequestChunk, request_chunks

MAX_BINS = 100
BLOCK = 8192


class LoadTally:
    """The measured requests' [submit, done) spans over request chunks (two int64 columns), in record order."""

    def __init__(self) -> None:
        self.starts = array("q")
        self.ends = array("q")

    def add(self, chunk: RequestChunk) -> None:
        rows = ~chunk.warmup & (chunk.t_submit_ns != MISSING) & (chunk.t_done_ns != MISSING)
        self.starts.frombytes(chunk.t_submit_ns[rows].tobytes())
        self.ends.frombytes(chunk.t_done_ns[rows].tobytes())

    def result(self, bins: int = MAX_BINS) -> dict[str, Any]:
        """:func:`achieved_load` of the spans seen (the last use of the columns: they are sorted by it)."""
        starts = np.frombuffer(self.starts, dtype=np.int64) if self.starts else np.zeros(0, dtype=np.int64)
        ends = np.frombuffer(self.ends, dtype=np.int64) if self.ends else np.zeros(0, dtype=np.int64)
        return load_of_spans(starts, ends, bins)


def achieved_load(requests: Iterable[Mapping[str, Any]], bins: int = MAX_BINS) -> dict[str, Any]:
    """Achieved concurrency and arrival rate of the measured requests (module docstring)."""
    tally = LoadTally()
    for chunk in request_chunks(requests):
        tally.add(chunk)
    return tally.result(bins)


def load_of_spans(starts: np.ndarray, ends: np.ndarray, bins: int = MAX_BINS) -> dict[str, Any]:
    """:func:`achieved_load` of spans given as two int64 columns (submit, done; ns), in record order (the
    timeline's sums follow it); both are sorted in place at the end."""
    out: dict[str, Any] = {
        "mean_in_flight": None,
        "max_in_flight": None,
        "submit_rate_per_s": None,
        "bin_s": None,
        "timeline": None,
    }
    if not starts.size:
        return out
    t0, t1 = int(starts.min()), int(ends.max())
    if t1 <= t0:
        return out
    out["mean_in_flight"] = float((ends - starts).sum() / (t1 - t0))
    if starts.size >= 2 and starts.max() > starts.min():
        out["submit_rate_per_s"] = float((starts.size - 1) / ((starts.max() - starts.min()) / 1e9))
    n_bins = max(1, min(bins, starts.size))
    edges = np.linspace(t0, t1, n_bins + 1)
    lo, hi = edges[:-1], edges[1:]
    # Time each request spends inside each bin, summed over requests (in blocks: bounded memory).
    busy = np.zeros(n_bins)
    for k in range(0, starts.size, BLOCK):
        s_blk, e_blk = starts[k : k + BLOCK, None], ends[k : k + BLOCK, None]
        busy += np.clip(np.minimum(e_blk, hi) - np.maximum(s_blk, lo), 0, None).sum(axis=0)
    out["bin_s"] = float((t1 - t0) / n_bins / 1e9)
    out["timeline"] = (busy / (hi - lo)).tolist()
    out["max_in_flight"] = _max_in_flight(starts, ends)
    return out


def _max_in_flight(starts: np.ndarray, ends: np.ndarray) -> int:
    """The largest in-flight count: sweeping +1 at each submit and −1 at each done in time order (a done at the
    same instant as a submit first), the count peaks right after a submit, where it is (submits so far) −
    (dones at or before that instant). Sorts ``starts`` and ``ends`` in place (their last use)."""
    starts.sort()
    ends.sort()
    return int((np.arange(1, starts.size + 1) - np.searchsorted(ends, starts, side="right")).max())
