"""LagSketch: exact count, sum and extremes; quantiles within its relative error; a size that does not grow
with the number of values."""

from __future__ import annotations

import random

import pytest

from capbench.loadgen.lagstats import LagSketch
from capbench.loadgen.selfcheck import quantile


def test_an_empty_sketch_has_no_quantile() -> None:
    sketch = LagSketch()
    assert sketch.quantile(0.5) is None and sketch.max_s is None and sketch.count == 0 and sketch.sum_s == 0


def test_count_sum_and_extremes_are_exact() -> None:
    sketch = LagSketch()
    values = [0.0, 2e-7, 0.003, 0.25, 1.5]
    for v in values:
        sketch.add(v)
    assert sketch.count == 5 and sketch.sum_s == pytest.approx(sum(values))
    assert sketch.max_s == 1.5 and sketch.min_s == 0.0
    assert sketch.quantile(1.0) == 1.5 and sketch.quantile(0.0) == 0.0


def test_a_single_value_is_its_own_quantile() -> None:
    sketch = LagSketch()
    sketch.add(0.0123)
    assert sketch.quantile(0.99) == 0.0123 and sketch.quantile(0.5) == 0.0123


def test_a_negative_duration_counts_as_zero() -> None:
    sketch = LagSketch()
    sketch.add(-0.5)
    assert sketch.min_s == 0.0 and sketch.sum_s == 0.0 and sketch.quantile(0.5) == 0.0


@pytest.mark.parametrize("alpha", [0.01, 0.001])
def test_quantiles_are_within_the_relative_error(alpha: float) -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(-7, 1.5) for _ in range(20_000)]  # ~0.9 ms median, a long tail
    sketch = LagSketch(alpha=alpha)
    for v in values:
        sketch.add(v)
    for q in (0.0, 0.1, 0.5, 0.9, 0.99, 0.999, 1.0):
        exact = quantile(values, q)
        assert exact is not None
        assert sketch.quantile(q) == pytest.approx(exact, rel=alpha * 1.0001), q


def test_the_size_grows_with_the_range_not_the_count() -> None:
    sketch = LagSketch(alpha=0.001)
    rng = random.Random(1)
    for _ in range(200_000):
        sketch.add(rng.uniform(0.001, 0.002))  # one octave: ln 2 / ln γ ≈ 347 buckets
    assert sketch.count == 200_000
    assert sketch.buckets <= 350


def test_invalid_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="alpha"):
        LagSketch(alpha=0)
    with pytest.raises(ValueError, match="floor_s"):
        LagSketch(floor_s=0)
