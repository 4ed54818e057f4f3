"""The measured requests' [submit, done) spans in bounded memory, and their largest in-flight count (issue #18).

:class:`SpanColumn` keeps (t_submit_ns, t_done_ns) pairs in record order: the first :data:`BUFFER_SPANS` in memory,
all of them in a temporary file past that (16 bytes a span), read back in blocks of any size.

The largest in-flight count is max over submits s of C(s) = #(submits ≤ s) − #(dones ≤ s) (a done at the same
instant as a submit counts first). In memory that is one sort of each column (:func:`max_in_flight`). For a
spilled column, :func:`max_in_flight_spilled` finds the same integer without sorting everything:

1. one read histograms submits and dones into :data:`BUCKETS` equal time buckets over [t0, t1];
2. for a bucket b with submits, C(s) for s in b is at most U_b = (submits up to b's end) − (dones before b's
   start), and exactly (submits before b) + (submits in b ≤ s) − (dones before b) − (dones in b ≤ s);
3. buckets are taken in decreasing U_b, as many as hold at most :data:`EVENTS_PER_READ` events, their events
   read from the file and swept exactly; this stops as soon as no bucket left can beat the best found (U_b ≤
   best), so usually after one or two reads.
"""

from __future__ import annotations

import tempfile
from array import array
from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray

IntArray = NDArray[np.int64]

BUFFER_SPANS = 1 << 18
"""Spans kept in memory (4 MiB) before the column moves to a temporary file."""

BUCKETS = 1 << 16
"""Time buckets of the spilled maximum's histogram."""

EVENTS_PER_READ = 1 << 20
"""Most submits and dones gathered from the file in one read of the spilled maximum (16 MiB at most)."""


class SpanColumn:
    """(submit, done) pairs in record order, in memory or in a temporary file (module docstring)."""

    def __init__(self, buffer_spans: int | None = None) -> None:
        self._limit = BUFFER_SPANS if buffer_spans is None else buffer_spans
        self._buffer = array("q")  # submit, done, submit, done, ...
        self._file: Any = None
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @property
    def spilled(self) -> bool:
        return self._file is not None

    def extend(self, starts: IntArray, ends: IntArray) -> None:
        """Append spans (two int64 columns of equal length, in record order)."""
        pairs = np.empty((starts.size, 2), dtype=np.int64)
        pairs[:, 0], pairs[:, 1] = starts, ends
        self._count += starts.size
        if self._file is None:
            self._buffer.frombytes(pairs.tobytes())
            if len(self._buffer) <= 2 * self._limit:
                return
            self._file = tempfile.TemporaryFile(prefix="capbench-spans-")  # noqa: SIM115 (closed by close())
            self._file.write(np.frombuffer(self._buffer, dtype=np.int64).tobytes())
            self._buffer = array("q")
            return
        self._file.seek(0, 2)
        self._file.write(pairs.tobytes())

    def in_memory(self) -> tuple[IntArray, IntArray]:
        """(starts, ends) copies of an unspilled column."""
        if self._file is not None:
            raise ValueError("the column is in its file; read it with blocks()")
        pairs = np.frombuffer(self._buffer, dtype=np.int64).reshape(-1, 2)
        return pairs[:, 0].copy(), pairs[:, 1].copy()

    def blocks(self, size: int) -> Iterator[tuple[IntArray, IntArray]]:
        """(starts, ends) of consecutive spans, ``size`` at a time, in record order."""
        if self._file is None:
            pairs = np.frombuffer(self._buffer, dtype=np.int64).reshape(-1, 2)
            for first in range(0, self._count, size):
                block = pairs[first : first + size]
                yield block[:, 0], block[:, 1]
            return
        self._file.flush()
        self._file.seek(0)
        for first in range(0, self._count, size):
            want = min(size, self._count - first)
            raw = self._file.read(16 * want)
            if len(raw) != 16 * want:
                raise OSError(f"the spans' temporary file ended early ({first} of {self._count} spans read)")
            block = np.frombuffer(raw, dtype=np.int64).reshape(-1, 2)
            yield block[:, 0], block[:, 1]

    def close(self) -> None:
        self._buffer = array("q")
        if self._file is not None:
            self._file.close()
            self._file = None


def max_in_flight(starts: IntArray, ends: IntArray) -> int:
    """The largest in-flight count of spans in memory: sweeping +1 at each submit and −1 at each done in time
    order (a done at the same instant as a submit first), the count peaks right after a submit, where it is
    (submits so far) − (dones at or before that instant). Sorts ``starts`` and ``ends`` in place."""
    starts.sort()
    ends.sort()
    return int((np.arange(1, starts.size + 1) - np.searchsorted(ends, starts, side="right")).max())


def max_in_flight_spilled(column: SpanColumn, t0: int, t1: int, block: int = 1 << 16) -> int:
    """:func:`max_in_flight` of a column of any size, by buckets (module docstring); ``t0``/``t1``: the smallest
    and the largest time in it (submits and dones)."""
    width = max(1, -(-(t1 - t0 + 1) // BUCKETS))
    buckets = (t1 - t0) // width + 1

    def bucket(values: IntArray) -> NDArray[np.intp]:
        return ((values - t0) // width).astype(np.intp)

    submits = np.zeros(buckets, dtype=np.int64)
    dones = np.zeros(buckets, dtype=np.int64)
    for starts, ends in column.blocks(block):
        submits += np.bincount(bucket(starts), minlength=buckets)
        dones += np.bincount(bucket(ends), minlength=buckets)
    submits_before = np.cumsum(submits) - submits
    dones_before = np.cumsum(dones) - dones
    bound = submits_before + submits - dones_before
    candidates = [int(b) for b in np.argsort(-bound, kind="stable") if submits[b]]  # decreasing bound
    best: int | None = None
    while candidates and (best is None or bound[candidates[0]] > best):
        chosen: list[int] = []
        events = 0
        for b in candidates:
            cost = int(submits[b] + dones[b])
            if (best is not None and bound[b] <= best) or (chosen and events + cost > EVENTS_PER_READ):
                break
            chosen.append(b)
            events += cost
        candidates = candidates[len(chosen) :]
        best = _sweep_buckets(column, chosen, bucket, buckets, submits_before, dones_before, best, block)
    return best if best is not None else 0


def _sweep_buckets(
    column: SpanColumn,
    chosen: list[int],
    bucket: Any,
    buckets: int,
    submits_before: IntArray,
    dones_before: IntArray,
    best: int | None,
    block: int,
) -> int | None:
    """The exact largest C(s) over the submits in the ``chosen`` buckets (one read of the column), or ``best``.

    The chosen buckets' submits and dones are sorted once (by time, hence by bucket too); for the j-th submit s
    (0-based) of bucket b among them, C(s) = (submits before b) + (j + 1 − the chosen submits in earlier buckets)
    − (dones before b) − (the chosen dones ≤ s − the chosen dones in earlier buckets)."""
    wanted = np.zeros(buckets, dtype=np.bool_)
    wanted[chosen] = True
    got_starts: list[IntArray] = []
    got_ends: list[IntArray] = []
    for starts, ends in column.blocks(block):
        got_starts.append(starts[wanted[bucket(starts)]])
        got_ends.append(ends[wanted[bucket(ends)]])
    s = np.sort(np.concatenate(got_starts))
    e = np.sort(np.concatenate(got_ends))
    if not s.size:
        return best
    s_bucket, e_bucket = bucket(s), bucket(e)
    earlier_submits = np.searchsorted(s_bucket, s_bucket, "left")
    earlier_dones = np.searchsorted(e_bucket, s_bucket, "left")
    counts = (
        submits_before[s_bucket]
        + (np.arange(1, s.size + 1) - earlier_submits)
        - dones_before[s_bucket]
        - (np.searchsorted(e, s, "right") - earlier_dones)
    )
    peak = int(counts.max())
    return peak if best is None else max(best, peak)
