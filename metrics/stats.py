"""Distribution statistics and guarded ratios, shared by every metric that reports a distribution.

One stats shape everywhere (request latency, engine step latency): ``count``, ``mean``, ``p50``, ``p90``,
``p99``, ``max``, in the unit the caller's key names (``ttft_s``: seconds). Percentiles use linear
interpolation between the two nearest order statistics (numpy's default, Hyndman–Fan type 7). Nothing is
rounded. An empty sample has ``count`` 0 and every other statistic ``None``: not measured, never 0.

A run's own distributions (TTFT, TPOT, ITL, e2e latency) grow with the run; :class:`FloatColumn` holds one in
bounded memory (spilling to a temporary file past about a million values) and still returns exactly what
:func:`describe` would.
"""

from __future__ import annotations

import io
import math
import sys
import tempfile
from array import array
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

STAT_KEYS: tuple[str, ...] = ("count", "mean", "p50", "p90", "p99", "max")
"""The keys of every stats dict, in output order."""

StatsDict = dict[str, Any]
"""``{"count": int, "mean": float | None, "p50": ..., "p90": ..., "p99": ..., "max": ...}``."""


def describe(values: ArrayLike) -> StatsDict:
    """count, mean, p50, p90, p99 and max of ``values`` (same unit in, same unit out).

    ``values`` must hold only measured numbers: NaN (an unmeasured value smuggled in) is a ``ValueError``,
    so the caller decides explicitly what was measured. Empty → ``count`` 0 and ``None`` elsewhere.
    """
    a = np.asarray(values, dtype=np.float64).ravel()
    if a.size == 0:
        return {"count": 0, "mean": None, "p50": None, "p90": None, "p99": None, "max": None}
    _check_finite(a)
    p50, p90, p99 = np.percentile(a, [50.0, 90.0, 99.0])
    return {
        "count": int(a.size),
        "mean": float(a.mean()),
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "max": float(a.max()),
    }


DEFAULT_SPILL_THRESHOLD = 1 << 17
"""Values a :class:`FloatColumn` keeps in memory (1 MiB of float64) before it spills to a temporary file (the
spilled statistics are as fast: 0.04 s for 1M values)."""

DEFAULT_BLOCK_VALUES = 1 << 18
"""Values a spilled :class:`FloatColumn` reads at a time (2 MiB of float64): its memory bound, whatever its size."""

_PAIRWISE_LEAF = 128
"""numpy's ``PW_BLOCKSIZE``: its pairwise sum adds up to this many values in one unrolled loop, never split."""

_DIGIT_BITS = 16
"""Bits of the sort key one radix-selection pass resolves (a histogram of 65,536 counts)."""

_SIGN = np.uint64(1 << 63)
_DIGIT_COLUMNS = (3, 2, 1, 0) if sys.byteorder == "little" else (0, 1, 2, 3)
"""Of a uint64 viewed as four uint16, the one holding bits 63–48, 47–32, 31–16 and 15–0 (the key's digits, most
significant first)."""

_PERCENTILES: tuple[float, ...] = tuple(float(q) for q in np.true_divide([50.0, 90.0, 99.0], 100))
"""p50, p90, p99 as the fractions :func:`numpy.percentile` computes them (q / 100 in float64)."""


class FloatColumn:
    """A growing float64 column (one exact distribution of a run, e.g. every ITL gap in seconds), filled a chunk
    at a time, whose statistics are exact and whose memory is bounded.

    Up to ``spill_threshold`` values are held in one in-memory buffer that grows in place (8 bytes a value;
    :meth:`describe` then works on it without copying, as :func:`describe` would). Past it, the column spills:
    the values go, in arrival order, to an anonymous temporary file (:func:`tempfile.TemporaryFile`, 8 bytes a
    value) and every statistic is computed out of core, reading ``block_values`` values at a time, so memory
    stays a small multiple of the block (plus 65,536-count histograms) however many values there are:

    - ``mean`` = Σx / n with Σ numpy's pairwise sum (halves of n2 = n // 2 − (n // 2) mod 8 values, recursively,
      down to 128 values), reproduced over file ranges: a range that fits a block is summed by one
      :func:`numpy.add.reduce` call, which is exactly numpy's pairwise sum of that range, so the bits equal
      ``np.asarray(values).mean()`` (checked for numpy 2.4 against arrays of 1.2M to 16M values: its reduce of a
      contiguous float64 array is one pairwise sum over the whole array, not one per 8192-value buffer);
    - ``p50``/``p90``/``p99``: the two order statistics numpy interpolates between, found by radix selection on
      the values' float64 bit patterns mapped to order-preserving unsigned keys (16 bits a pass over the file;
      once a key prefix holds at most a block of values they are collected and partitioned in memory), then
      numpy's linear interpolation (virtual index (n − 1)·q, ``_lerp`` with its t ≥ 0.5 branch) on them;
    - ``max``, :meth:`min` and the non-finite check are kept as values arrive.

    Results are bit-for-bit those of :func:`describe` (and :func:`numpy.median`, ``numpy.min``) on all the
    values in arrival order, with one caveat: −0.0 and +0.0 are equal numbers that numpy's partition may return
    in either order, while the spilled column orders −0.0 before +0.0 (latencies computed from integer
    nanoseconds are never −0.0). :meth:`describe` is the column's last use: it reorders the in-memory buffer or
    closes (and so removes) the temporary file, after which the column refuses to be used.
    """

    def __init__(
        self, spill_threshold: int = DEFAULT_SPILL_THRESHOLD, block_values: int = DEFAULT_BLOCK_VALUES
    ) -> None:
        if spill_threshold < 0 or block_values < 1:
            raise ValueError(f"need spill_threshold >= 0 and block_values >= 1, got {spill_threshold}, {block_values}")
        self._threshold = spill_threshold
        self._block = block_values
        self._buffer = array("d")
        self._file: io.BufferedRandom | None = None
        self._count = 0  # values in the file
        self._min = math.inf  # of the spilled values, NaNs ignored
        self._max = -math.inf  # of the spilled values
        self._finite = True  # no NaN or ±inf among the spilled values
        self._unsigned = True  # no spilled value has its sign bit set (no negative number, no −0.0)
        self._order: dict[int, float] = {}  # order statistics (0-based rank → value) already selected
        self._closed = False

    def extend(self, values: np.ndarray) -> None:
        """Append ``values`` (any shape, flattened in C order; converted to float64)."""
        self._check_open()
        chunk = np.ascontiguousarray(values, dtype=np.float64).ravel()
        if self._file is None:
            if len(self._buffer) + chunk.size <= self._threshold:
                self._buffer.frombytes(chunk.tobytes())
                return
            self._spill()
        self._write(chunk)

    def __len__(self) -> int:
        return self._count if self._file is not None else len(self._buffer)

    @property
    def spilled(self) -> bool:
        """Whether the values live in the temporary file (more than ``spill_threshold`` came)."""
        return self._file is not None

    def min(self) -> float | None:
        """The smallest value, NaNs ignored (so ``min() < 0`` is exactly ``(values < 0).any()``); None when
        empty. Out of core it is kept as the values arrive."""
        self._check_open()
        if self._file is not None:
            return self._min if self._count else None
        if not self._buffer:
            return None
        return float(np.fmin.reduce(self._view()))

    def median(self) -> float | None:
        """:func:`numpy.median` of the values: the middle one for an odd count, the mean of the two middle ones
        (numpy's mean of those two) for an even count; None when empty. Non-finite values are a ``ValueError``.
        Call it before :meth:`describe`. Out of core, the percentiles' order statistics are selected in the
        same passes, so :meth:`describe` then reads the file only to sum it."""
        self._check_open()
        n = len(self)
        if n == 0:
            return None
        if self._file is None:
            a = self._view()
            _check_finite(a)
            return float(np.median(a))
        self._check_spilled_finite()
        middle = [(n - 1) // 2] if n % 2 else [n // 2 - 1, n // 2]
        order = self._order_statistics([*middle, *_percentile_ranks(n)])
        return float(np.mean(np.array([order[rank] for rank in middle], dtype=np.float64)))

    def describe(self) -> StatsDict:
        """:func:`describe` of the values, the same numbers (count, mean, p50, p90, p99, max; the values' unit).

        This is the column's last use: in memory the buffer is reordered (partitioned) by it; spilled, the
        temporary file is closed and so removed, even when it raises."""
        self._check_open()
        try:
            if self._file is None:
                return self._describe_in_memory()
            return self._describe_spilled()
        finally:
            self.close()

    def close(self) -> None:
        """Drop the values (the temporary file is closed, which removes it); the column cannot be used after."""
        self._closed = True
        self._buffer = array("d")
        self._order = {}
        if self._file is not None:
            self._file.close()
            self._file = None

    # -- in memory -------------------------------------------------------------------------------------------

    def _view(self) -> np.ndarray:
        """The in-memory values in arrival order (a view of the buffer: the column must not grow after)."""
        return np.frombuffer(self._buffer, dtype=np.float64) if len(self._buffer) else np.empty(0)

    def _describe_in_memory(self) -> StatsDict:
        a = self._view()
        if a.size == 0:
            return describe(a)
        _check_finite(a)
        mean, largest = float(a.mean()), float(a.max())  # before the partition below reorders the values
        p50, p90, p99 = np.percentile(a, [50.0, 90.0, 99.0], overwrite_input=True)
        return {
            "count": int(a.size),
            "mean": mean,
            "p50": float(p50),
            "p90": float(p90),
            "p99": float(p99),
            "max": largest,
        }

    # -- spilled ---------------------------------------------------------------------------------------------

    def _spill(self) -> None:
        """Move the in-memory values to a new temporary file; from now on every value goes there."""
        self._file = tempfile.TemporaryFile(prefix="capbench-column-")  # noqa: SIM115 (closed by close())
        held = self._view()
        self._buffer = array("d")
        self._write(held)

    def _write(self, chunk: np.ndarray) -> None:
        """Append ``chunk`` to the file, keeping min (NaN-ignoring), max and whether all are finite."""
        if chunk.size == 0:
            return
        assert self._file is not None
        low, high = float(np.fmin.reduce(chunk)), float(np.max(chunk))  # max is NaN when one is
        if not (math.isfinite(low) and math.isfinite(high)):
            self._finite = False
        self._min = min(self._min, low) if not math.isnan(low) else self._min
        self._max = max(self._max, high) if not math.isnan(high) else self._max
        if self._unsigned and not low > 0 and np.signbit(chunk).any():
            self._unsigned = False
        self._file.write(chunk.data.cast("B"))
        self._count += chunk.size
        self._order = {}  # selected for fewer values

    def _check_spilled_finite(self) -> None:
        if not self._finite:
            raise ValueError(_NON_FINITE)

    def _read(self, start: int, count: int, out: np.ndarray) -> np.ndarray:
        """Values [start, start + count) of the file, read into the front of ``out``."""
        assert self._file is not None
        self._file.seek(start * 8)
        view = out[:count]
        got = read_into(self._file, view)
        if got < view.nbytes:
            raise OSError(f"the column's temporary file ended early ({start + got // 8} of {self._count})")
        return view

    def _blocks(self, out: np.ndarray) -> Iterator[np.ndarray]:
        """The file's values in order, ``len(out)`` at a time (each block overwrites the previous one)."""
        for start in range(0, self._count, len(out)):
            yield self._read(start, min(len(out), self._count - start), out)

    def _describe_spilled(self) -> StatsDict:
        self._check_spilled_finite()
        n = self._count
        assert self._file is not None
        self._file.flush()
        block = np.empty(max(self._block, _PAIRWISE_LEAF), dtype=np.float64)
        mean = self._pairwise_sum(0, n, block) / n  # numpy's mean: sum / n
        ranks = _percentile_ranks(n)
        order = self._order_statistics(ranks)
        p50, p90, p99 = (_linear_percentile(n, q, order) for q in _PERCENTILES)
        return {"count": n, "mean": mean, "p50": p50, "p90": p90, "p99": p99, "max": self._max}

    def _pairwise_sum(self, start: int, count: int, block: np.ndarray) -> float:
        """numpy's pairwise sum of values [start, start + count), as ``np.add.reduce`` of them returns it: split
        as numpy splits (n2 = n // 2 rounded down to a multiple of 8) until a range fits the block (at least 128
        values, numpy's unsplit unit), then one ``np.add.reduce`` of the range. numpy's reduce adds its start
        value 0.0 once, each range here adds it once: that changes only the sign of a partial sum of zeros, and
        a sum starting with 0.0 is never −0.0 either way, so the results are the same bits."""
        if count <= len(block):
            return float(np.add.reduce(self._read(start, count, block)))
        half = count // 2
        half -= half % 8
        return self._pairwise_sum(start, half, block) + self._pairwise_sum(start + half, count - half, block)

    def _order_statistics(self, ranks: Iterable[int]) -> dict[int, float]:
        """The values of the given 0-based ranks in ascending order (ties: any of the equal values), by radix
        selection over the file; cached, so later calls for the same ranks read nothing."""
        wanted = sorted(set(ranks) - self._order.keys())
        if wanted:
            assert self._file is not None
            self._file.flush()
            self._order.update(
                _radix_select(self._blocks, self._count, wanted, max(self._block, 1), unsigned=self._unsigned)
            )
        return self._order

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this FloatColumn was described (or closed) already; describe() is its last use")


def read_into(file: Any, array: np.ndarray) -> int:
    """Fill ``array`` (C-contiguous) from ``file``'s current position; the bytes read, fewer than
    ``array.nbytes`` only when the file ended first."""
    if not array.nbytes:
        return 0
    raw = array.data.cast("B")
    got = 0
    while got < len(raw):
        read = file.readinto(raw[got:])
        if not read:
            break
        got += read
    return got


_NON_FINITE = "describe() got a non-finite value; pass only measured values"


def _check_finite(a: np.ndarray) -> None:
    if not np.all(np.isfinite(a)):
        raise ValueError(_NON_FINITE)


def _percentile_ranks(n: int) -> list[int]:
    """The order statistics (0-based ranks) numpy's linear percentiles of n values read."""
    ranks: list[int] = []
    for q in _PERCENTILES:
        below, above, _ = _percentile_indexes(n, q)
        ranks += [below, above]
    return ranks


def _percentile_indexes(n: int, q: float) -> tuple[int, int, float]:
    """numpy's ``_quantile`` (method ``linear``) for n values and fraction q: virtual index v = (n − 1)·q, the
    ranks below (⌊v⌋) and above (⌊v⌋ + 1) it, and the weight γ = v − ⌊v⌋. When v ≥ n − 1 both ranks are the
    last (numpy's index −1) and γ = v − (−1), as numpy computes it."""
    virtual = float(n - 1) * q
    below = math.floor(virtual)
    if virtual >= n - 1:
        return n - 1, n - 1, virtual - (-1.0)
    return below, below + 1, virtual - float(below)


def _linear_percentile(n: int, q: float, order: dict[int, float]) -> float:
    """numpy's ``_lerp(a, b, γ)`` between the order statistics a (below) and b (above): a + (b − a)·γ, or
    b − (b − a)·(1 − γ) when γ ≥ 0.5, in float64 as numpy evaluates it."""
    below, above, gamma = _percentile_indexes(n, q)
    a, b = order[below], order[above]
    diff = b - a
    if gamma >= 0.5:
        return b - diff * (1 - gamma)
    return a + diff * gamma


def _sort_keys(values: np.ndarray) -> np.ndarray:
    """float64 → uint64 keys in the same order (−0.0 just below +0.0): the bits with the sign bit set for a
    non-negative value, all bits flipped for a negative one."""
    bits = values.view(np.uint64)
    return np.where(bits >= _SIGN, ~bits, bits | _SIGN)


def _from_keys(keys: np.ndarray) -> np.ndarray:
    """The float64 values of sort keys (the inverse of :func:`_sort_keys`)."""
    bits = np.where(keys >= _SIGN, keys ^ _SIGN, ~keys)
    return bits.view(np.float64)


def _digits(keys: np.ndarray) -> np.ndarray:
    """A C-contiguous uint64 array's four 16-bit digits per value, as a (n, 4) view (:data:`_DIGIT_COLUMNS`)."""
    return keys.view(np.uint16).reshape(-1, 4)


def _radix_select(
    blocks: Callable[[np.ndarray], Iterator[np.ndarray]],
    n: int,
    ranks: list[int],
    limit: int,
    *,
    unsigned: bool = False,
) -> dict[int, float]:
    """The values at 0-based ``ranks`` of the n values ``blocks`` yields (in blocks of ``limit``), in ascending
    order of their sort keys.

    Each pass over the values resolves the next 16 bits of every wanted rank's key: ranks whose known key prefix
    (the same for ranks in one group) is shared by more than ``limit`` values get a histogram of their group's
    next 16-bit digit, and the digit where the cumulative count passes the rank is appended to the prefix (the
    rank becomes the rank within the narrower group); groups of at most ``limit`` values are collected and
    partitioned in memory. A prefix of all 64 bits is the value itself. Memory: one block, its keys, one
    histogram per group (at most one per rank) and collected groups of at most ``limit`` values each.

    ``unsigned``: no value has its sign bit set, so the float64 bit patterns are themselves order-preserving keys
    (no key array is made). Digits are read through uint16 views of the keys (no shifts or masks): with both,
    the exact percentiles of 100M spilled latencies took 2.0 s instead of 6.0 s (measured).
    """
    to_keys: Callable[[np.ndarray], np.ndarray] = (lambda block: block.view(np.uint64)) if unsigned else _sort_keys
    # (bits known, key prefix) → (values with that prefix, {rank: rank within them})
    groups: dict[tuple[int, int], tuple[int, dict[int, int]]] = {(0, 0): (n, {rank: rank for rank in ranks})}
    found: dict[int, float] = {}
    out = np.empty(limit, dtype=np.float64)
    while groups:
        counts = {
            group: np.zeros(1 << _DIGIT_BITS, dtype=np.int64) for group, (size, _) in groups.items() if size > limit
        }
        collected: dict[tuple[int, int], list[np.ndarray]] = {group: [] for group in groups if group not in counts}
        for block in blocks(out):
            keys = _BlockKeys(to_keys(block))
            for (known, prefix), histogram in counts.items():
                histogram += np.bincount(keys.next_digit(known, prefix), minlength=1 << _DIGIT_BITS)
            for (known, prefix), parts in collected.items():
                parts.append(keys.with_prefix(known, prefix).copy())
        for group, parts in collected.items():
            candidates = np.concatenate(parts)
            within = groups[group][1]
            candidates.partition(sorted(set(within.values())))
            for rank, inner in within.items():
                found[rank] = _key_value(candidates[inner : inner + 1], unsigned)
        narrower: dict[tuple[int, int], tuple[int, dict[int, int]]] = {}
        for (known, prefix), histogram in counts.items():
            cumulative = np.cumsum(histogram)
            for rank, inner in groups[known, prefix][1].items():
                digit = int(np.searchsorted(cumulative, inner, side="right"))
                before = int(cumulative[digit - 1]) if digit else 0
                deeper = (known + _DIGIT_BITS, (prefix << _DIGIT_BITS) | digit)
                if deeper[0] == 64:
                    found[rank] = _key_value(np.array([deeper[1]], dtype=np.uint64), unsigned)
                else:
                    narrower.setdefault(deeper, (int(histogram[digit]), {}))[1][rank] = inner - before
        groups = narrower
    return found


def _key_value(key: np.ndarray, unsigned: bool) -> float:
    """The float64 value of a one-element key array."""
    return float((key.view(np.float64) if unsigned else _from_keys(key))[0])


class _BlockKeys:
    """The sort keys of one block, those with a given prefix, and their next digit."""

    def __init__(self, keys: np.ndarray) -> None:
        self.keys = keys
        self.digits = _digits(keys)

    def _matching(self, known: int, prefix: int) -> np.ndarray | None:
        """Which keys have the top ``known`` bits ``prefix`` (None: all of them, ``known`` 0)."""
        if not known:
            return None
        if known == _DIGIT_BITS:
            return self.digits[:, _DIGIT_COLUMNS[0]] == prefix
        return (self.keys >> np.uint64(64 - known)) == np.uint64(prefix)

    def with_prefix(self, known: int, prefix: int) -> np.ndarray:
        """The keys whose top ``known`` bits are ``prefix``."""
        matching = self._matching(known, prefix)
        return self.keys if matching is None else self.keys[matching]

    def next_digit(self, known: int, prefix: int) -> np.ndarray:
        """The 16 bits after the top ``known`` of the keys whose top ``known`` bits are ``prefix``."""
        digit = self.digits[:, _DIGIT_COLUMNS[known // _DIGIT_BITS]]
        matching = self._matching(known, prefix)
        return digit if matching is None else digit[matching]


def percentile_or_none(values: ArrayLike, q: float) -> float | None:
    """The q-th percentile (0–100, linear interpolation) of ``values``; ``None`` when there are none."""
    a = np.asarray(values, dtype=np.float64).ravel()
    if a.size == 0:
        return None
    return float(np.percentile(a, q))


def sum_of_parts(parts: list[float]) -> float:
    """The total of partial sums taken slice by slice: the one part itself when there is one (so a run read in one
    slice keeps numpy's sum bit for bit), else their correctly rounded sum (``math.fsum``); 0.0 for none."""
    if len(parts) == 1:
        return parts[0]
    return math.fsum(parts)


def ratio_or_none(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or ``None`` when either is unknown or the denominator is not positive.

    Used for rates and per-unit figures (tokens/s, J per token): a zero denominator means "nothing was
    measured", so the figure is not reported rather than reported as 0 or infinity.
    """
    if numerator is None or denominator is None:
        return None
    if not math.isfinite(denominator) or denominator <= 0:
        return None
    return float(numerator) / float(denominator)


T975: tuple[float, ...] = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
"""Student's t 0.975 quantile for 1 to 30 degrees of freedom (two-sided 95 %)."""


def t975(df: int) -> float:
    """Student's t 0.975 quantile: the table to 30 degrees of freedom, then z + (z³ + z) / (4·df) (error < 0.002)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(T975):
        return T975[df - 1]
    z = 1.959963984540054
    return z + (z**3 + z) / (4 * df)


def mean_ci95(values: ArrayLike) -> dict[str, Any]:
    """Over repeated measurements of one figure: ``n``, ``mean``, ``std`` (sample standard deviation, n − 1) and
    the 95 % confidence interval of the mean, ``mean ± t₀.₉₇₅(n − 1)·std/√n`` (``ci95_low``, ``ci95_high``).
    Needs 2 values for a spread: with one, ``std`` and the interval are None; with none, everything but ``n``.
    Same unit in, same unit out; non-finite values are refused (pass only measured ones)."""
    a = np.asarray(values, dtype=np.float64).ravel()
    out: dict[str, Any] = {"n": int(a.size), "mean": None, "std": None, "ci95_low": None, "ci95_high": None}
    if a.size == 0:
        return out
    if not np.all(np.isfinite(a)):
        raise ValueError("mean_ci95() got a non-finite value; pass only measured values")
    out["mean"] = float(a.mean())
    if a.size >= 2:
        std = float(a.std(ddof=1))
        half = t975(a.size - 1) * std / math.sqrt(a.size)
        out.update(std=std, ci95_low=out["mean"] - half, ci95_high=out["mean"] + half)
    return out
