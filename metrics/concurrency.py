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

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from capbench.metrics.spans import SpanColumn, max_in_flight, max_in_flight_spilled
from capbench.records.columns import MISSING, RequestChunk, request_chunks

MAX_BINS = 100
BLOCK = 8192


class LoadTally:
    """The measured requests' [submit, done) spans over request chunks (a :class:`SpanColumn`: bounded memory), in
    record order, with the running extremes and Σ (done − submit) the figures need."""

    def __init__(self) -> None:
        self.spans = SpanColumn()
        self.first_submit: int | None = None
        self.last_submit: int | None = None
        self.last_done: int | None = None
        self.low: int | None = None  # the smallest time among submits and dones
        self.high: int | None = None  # the largest
        self.busy_ns = 0

    def add(self, chunk: RequestChunk) -> None:
        rows = ~chunk.warmup & (chunk.t_submit_ns != MISSING) & (chunk.t_done_ns != MISSING)
        self.add_spans(chunk.t_submit_ns[rows], chunk.t_done_ns[rows])

    def add_spans(self, starts: np.ndarray, ends: np.ndarray) -> None:
        """Add spans given as two int64 columns (submit, done; ns), in record order."""
        if not starts.size:
            return
        self.spans.extend(starts, ends)
        self.busy_ns += int((ends - starts).sum())
        first, last, done = int(starts.min()), int(starts.max()), int(ends.max())
        low, high = min(first, int(ends.min())), max(last, done)
        if self.first_submit is None:
            self.first_submit, self.last_submit, self.last_done, self.low, self.high = first, last, done, low, high
            return
        assert self.last_submit is not None and self.last_done is not None
        assert self.low is not None and self.high is not None
        self.first_submit, self.last_submit = min(self.first_submit, first), max(self.last_submit, last)
        self.last_done = max(self.last_done, done)
        self.low, self.high = min(self.low, low), max(self.high, high)

    def result(self, bins: int = MAX_BINS) -> dict[str, Any]:
        """:func:`achieved_load` of the spans seen (the last use of the column), from the running totals and one
        read of the column (in memory or in its file: the timeline's blocks are the same either way, so its sums
        are the same bits)."""
        try:
            return self._figures(bins)
        finally:
            self.spans.close()

    def _figures(self, bins: int) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mean_in_flight": None,
            "max_in_flight": None,
            "submit_rate_per_s": None,
            "bin_s": None,
            "timeline": None,
        }
        if self.first_submit is None:
            return out
        assert self.last_submit is not None and self.last_done is not None
        assert self.low is not None and self.high is not None
        count = len(self.spans)
        t0, t1 = self.first_submit, self.last_done
        if t1 <= t0:
            return out
        out["mean_in_flight"] = float(np.float64(self.busy_ns) / np.float64(t1 - t0))  # as numpy divides int64
        if count >= 2 and self.last_submit > self.first_submit:
            out["submit_rate_per_s"] = float((count - 1) / ((self.last_submit - self.first_submit) / 1e9))
        n_bins = max(1, min(bins, count))
        edges = np.linspace(t0, t1, n_bins + 1)
        lo, hi = edges[:-1], edges[1:]
        # Time each request spends inside each bin, summed over requests (in blocks: bounded memory).
        busy = np.zeros(n_bins)
        for starts, ends in self.spans.blocks(BLOCK):
            busy += _busy_by_bin(starts, ends, edges)
        out["bin_s"] = float((t1 - t0) / n_bins / 1e9)
        out["timeline"] = (busy / (hi - lo)).tolist()
        if self.spans.spilled:
            out["max_in_flight"] = max_in_flight_spilled(self.spans, self.low, self.high)
        else:
            out["max_in_flight"] = max_in_flight(*self.spans.in_memory())
        return out


def _busy_by_bin(starts: np.ndarray, ends: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Σ over the spans [s, e) of the time each spends in each bin [lo_j, hi_j) (``edges``: the bins' bounds),
    max(min(e, hi_j) − max(s, lo_j), 0), in float64 as numpy computes it for the whole (spans × bins) table.

    Only the bins a span can reach are computed (those around its start and end, and those between): a span
    adds exactly 0.0 to every other bin, and a sum does not change by adding 0.0, so this is the table's sum
    over spans bit for bit (both add the spans in order, bin by bin: ``bincount`` adds its weights in input
    order), at the cost of the bins each span covers instead of every bin. With one bin the table is one
    contiguous column, which numpy sums pairwise: that sum is taken as it is."""
    lo, hi = edges[:-1], edges[1:]
    if lo.size == 1:
        return np.clip(np.minimum(ends[:, None], hi) - np.maximum(starts[:, None], lo), 0, None).sum(axis=0)
    last_bin = lo.size - 1
    start_f, end_f = starts.astype(np.float64), ends.astype(np.float64)
    first = np.clip(np.searchsorted(edges, start_f, side="right") - 2, 0, last_bin)
    last = np.clip(np.searchsorted(edges, end_f, side="left"), first, last_bin)
    count = last - first + 1
    rows = np.repeat(np.arange(starts.size), count)
    bins = np.arange(rows.size) - np.repeat(np.cumsum(count) - count - first, count)
    time_in = np.clip(np.minimum(end_f[rows], hi[bins]) - np.maximum(start_f[rows], lo[bins]), 0, None)
    return np.bincount(bins, weights=time_in, minlength=lo.size)


def achieved_load(requests: Iterable[Mapping[str, Any]], bins: int = MAX_BINS) -> dict[str, Any]:
    """Achieved concurrency and arrival rate of the measured requests (module docstring)."""
    tally = LoadTally()
    for chunk in request_chunks(requests):
        tally.add(chunk)
    return tally.result(bins)


def load_of_spans(starts: np.ndarray, ends: np.ndarray, bins: int = MAX_BINS) -> dict[str, Any]:
    """:func:`achieved_load` of spans given as two int64 columns (submit, done; ns), in record order."""
    tally = LoadTally()
    tally.add_spans(starts, ends)
    return tally.result(bins)
