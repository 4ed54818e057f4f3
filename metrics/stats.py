"""Distribution statistics and guarded ratios, shared by every metric that reports a distribution.

One stats shape everywhere (request latency, engine step latency): ``count``, ``mean``, ``p50``, ``p90``,
``p99``, ``max``, in the unit the caller's key names (``ttft_s``: seconds). Percentiles use linear
interpolation between the two nearest order statistics (numpy's default, Hyndman–Fan type 7). Nothing is
rounded. An empty sample has ``count`` 0 and every other statistic ``None``: not measured, never 0.
"""

from __future__ import annotations

import math
from array import array
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
    if not np.all(np.isfinite(a)):
        raise ValueError("describe() got a non-finite value; pass only measured values")
    p50, p90, p99 = np.percentile(a, [50.0, 90.0, 99.0])
    return {
        "count": int(a.size),
        "mean": float(a.mean()),
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "max": float(a.max()),
    }


class FloatColumn:
    """A growing float64 column (one exact distribution of a run), filled a chunk at a time.

    Held in one buffer that grows in place (about 8 bytes a value), never as a list of chunks to be joined
    (which would need twice that); :meth:`describe` then computes the statistics without copying it.
    """

    def __init__(self) -> None:
        self._buffer = array("d")

    def extend(self, values: np.ndarray) -> None:
        self._buffer.frombytes(np.ascontiguousarray(values, dtype=np.float64).tobytes())

    def __len__(self) -> int:
        return len(self._buffer)

    def values(self) -> np.ndarray:
        """The values in the order they came (a view of the buffer; the column must not grow after)."""
        return np.frombuffer(self._buffer, dtype=np.float64) if len(self._buffer) else np.empty(0)

    def describe(self) -> StatsDict:
        """:func:`describe` of the values, the same numbers; the buffer is reordered (partitioned) by it, so
        this is the column's last use."""
        a = self.values()
        if a.size == 0:
            return describe(a)
        if not np.all(np.isfinite(a)):
            raise ValueError("describe() got a non-finite value; pass only measured values")
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


def percentile_or_none(values: ArrayLike, q: float) -> float | None:
    """The q-th percentile (0–100, linear interpolation) of ``values``; ``None`` when there are none."""
    a = np.asarray(values, dtype=np.float64).ravel()
    if a.size == 0:
        return None
    return float(np.percentile(a, q))


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
