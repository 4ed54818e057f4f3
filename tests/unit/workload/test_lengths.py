"""Length distributions of the random and prefix datasets: bounds, means, seeding, bad parameters."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from capbench.errors import ConfigError
from capbench.workload.lengths import LengthSpec


def draws(spec: LengthSpec, n: int = 4000, seed: int = 1) -> list[int]:
    rng = random.Random(seed)
    return [spec.draw(rng) for _ in range(n)]


def test_exact_is_the_mean() -> None:
    assert set(draws(LengthSpec(37))) == {37}


@pytest.mark.parametrize(("mean", "ratio"), [(100, 0.5), (10, 0.25), (3, 0.9), (1000, 0.0)])
def test_uniform_uses_vllm_bounds(mean: int, ratio: float) -> None:
    values = draws(LengthSpec(mean, "uniform", range_ratio=ratio))
    low, high = max(1, math.floor(mean * (1 - ratio))), math.ceil(mean * (1 + ratio))
    assert min(values) == low and max(values) == high  # both ends reached in 4000 draws
    assert abs(statistics.mean(values) - (low + high) / 2) < 0.05 * mean + 1


@pytest.mark.parametrize("distribution", ["normal", "lognormal"])
def test_spread_distributions_keep_the_mean(distribution: str) -> None:
    values = draws(LengthSpec(200, distribution, sigma=0.3), n=20000)  # type: ignore[arg-type]
    assert min(values) >= 1
    assert abs(statistics.mean(values) - 200) < 4
    cv = statistics.stdev(values) / statistics.mean(values)
    expected = 0.3 if distribution == "normal" else math.sqrt(math.exp(0.3**2) - 1)
    assert abs(cv - expected) < 0.02


def test_a_seed_gives_the_same_lengths() -> None:
    spec = LengthSpec(50, "lognormal", sigma=1.0)
    assert draws(spec, 100, seed=7) == draws(spec, 100, seed=7)
    assert draws(spec, 100, seed=7) != draws(spec, 100, seed=8)


def test_never_below_one_token() -> None:
    assert min(draws(LengthSpec(2, "normal", sigma=3.0))) == 1  # a wide normal is clipped, not negative
    assert min(draws(LengthSpec(1, "lognormal", sigma=2.0))) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mean_tokens": 0}, "integer >= 1"),
        ({"mean_tokens": 10, "distribution": "zipf"}, "one of"),
        ({"mean_tokens": 10, "distribution": "uniform", "range_ratio": 1.0}, r"\[0, 1\)"),
        ({"mean_tokens": 10, "distribution": "normal"}, "needs length_sigma"),
        ({"mean_tokens": 10, "distribution": "lognormal", "sigma": float("nan")}, "finite"),
    ],
)
def test_bad_parameters_are_named(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        LengthSpec(**kwargs)  # type: ignore[arg-type]
