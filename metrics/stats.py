"""Distribution statistics and guarded ratios, shared by every metric that reports a distribution.

One stats shape everywhere (request latency, engine step latency): ``count``, ``mean``, ``p50``, ``p90``,
``p99``, ``max``, in the unit the caller's key names (``ttft_s``: seconds). Percentiles use linear
interpolation between the two nearest order statistics (numpy's default, Hyndman–Fan type 7). Nothing is
rounded. An empty sample has ``count`` 0 and every other statistic ``None``: not measured, never 0.
"""

from __future__ import annotations

import math
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
