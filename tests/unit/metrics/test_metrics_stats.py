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
