"""What a run really sent: the distribution of prompt and output tokens over its measured requests.

``summary.json`` ``workload``: ``name`` (``run.json`` ``load.dataset.name``), and for ``prompt_tokens`` and
``output_tokens`` the stats of :func:`capbench.metrics.stats.describe` (count, mean, p50, p90, p99, max, in
tokens) over the successful measured requests whose count is known (a request without a count is left out and
counted in ``*_unknown``; with none known the stats are empty: null, never 0).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from capbench.metrics.stats import FloatColumn
from capbench.records.columns import MISSING, RequestChunk, request_chunks

KEYS: tuple[str, ...] = ("prompt_tokens", "output_tokens")


class TokenLengthTally:
    """The successful measured requests' known prompt and output token counts (one :class:`FloatColumn` each:
    exact for counts below 2⁵³, bounded memory)."""

    def __init__(self) -> None:
        self.known: dict[str, FloatColumn] = {key: FloatColumn() for key in KEYS}
        self.unknown = dict.fromkeys(KEYS, 0)

    def add(self, chunk: RequestChunk) -> None:
        ok = ~chunk.warmup & ~chunk.failed
        for key in KEYS:
            values = getattr(chunk, key)[ok]
            known = values != MISSING
            self.known[key].extend(values[known])
            self.unknown[key] += int((~known).sum())

    def result(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """``summary.json`` ``workload`` (module docstring)."""
        dataset = (manifest.get("load") or {}).get("dataset") or {}
        out: dict[str, Any] = {"name": dataset.get("name")}
        for key in KEYS:
            out[key] = self.known[key].describe()
            out[f"{key}_unknown"] = self.unknown[key]
        return out


def token_length_summary(manifest: Mapping[str, Any], requests: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """``summary.json`` ``workload`` (module docstring)."""
    tally = TokenLengthTally()
    for chunk in request_chunks(requests):
        tally.add(chunk)
    return tally.result(manifest)
