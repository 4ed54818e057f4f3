"""The shared stats dict and guarded ratios."""

from __future__ import annotations

import math

import pytest

from capbench.metrics.stats import describe, ratio_or_none


def test_describe_hand_computed() -> None:
    # 1..5: mean 3, p50 3, p90 = 4 + 0.6·1 = 4.6 (linear interpolation at rank 3.6), p99 = 4.96, max 5.
    assert describe([5, 1, 3, 2, 4]) == {
        "count": 5,
        "mean": 3.0,
        "p50": 3.0,
        "p90": pytest.approx(4.6),
        "p99": pytest.approx(4.96),
        "max": 5.0,
    }


def test_empty_is_none_and_nan_is_rejected() -> None:
    assert describe([]) == {"count": 0, "mean": None, "p50": None, "p90": None, "p99": None, "max": None}
    with pytest.raises(ValueError, match="non-finite"):
        describe([1.0, math.nan])


def test_full_precision() -> None:
    assert describe([0.1, 0.2])["mean"] == (0.1 + 0.2) / 2  # no rounding


def test_ratio_or_none() -> None:
    assert ratio_or_none(3, 2) == 1.5
    assert ratio_or_none(3, 0) is None and ratio_or_none(None, 2) is None and ratio_or_none(1, None) is None


def test_mean_ci95_uses_student_t_on_the_sample_standard_deviation() -> None:
    from capbench.metrics.stats import mean_ci95, t975

    out = mean_ci95([1.0, 2.0, 3.0])
    assert out["n"] == 3 and out["mean"] == 2.0 and out["std"] == pytest.approx(1.0)
    half = 4.303 * 1.0 / 3**0.5
    assert (out["ci95_low"], out["ci95_high"]) == (pytest.approx(2.0 - half), pytest.approx(2.0 + half))
    one = mean_ci95([5.0])
    assert one["mean"] == 5.0 and one["std"] is None and one["ci95_low"] is None
    assert mean_ci95([])["mean"] is None and mean_ci95([])["n"] == 0
    assert t975(1) == 12.706 and t975(30) == 2.042 and t975(120) == pytest.approx(1.980, abs=0.002)
    with pytest.raises(ValueError):
        mean_ci95([1.0, float("nan")])
    with pytest.raises(ValueError):
        t975(0)
