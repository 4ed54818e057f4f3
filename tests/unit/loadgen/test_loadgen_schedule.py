"""Open-loop arrival schedules: seeded, the asked mean rate, burstiness sets the coefficient of variation."""

from __future__ import annotations

import itertools
import math
import statistics

import pytest

from capbench.loadgen import LoadPattern, arrival_offsets_ns, iter_arrival_offsets_ns
from capbench.loadgen.schedule import iter_gaps_s

N = 20000


def _gaps_s(offsets: list[int]) -> list[float]:
    return [(b - a) / 1e9 for a, b in itertools.pairwise(offsets)]


def test_schedule_is_seeded_and_starts_at_zero() -> None:
    a = arrival_offsets_ns(10.0, 500, "poisson", seed=3)
    assert a == arrival_offsets_ns(10.0, 500, "poisson", seed=3)
    assert a != arrival_offsets_ns(10.0, 500, "poisson", seed=4)
    assert a[0] == 0 and len(a) == 500
    assert all(x <= y for x, y in itertools.pairwise(a))
    # the list is a prefix of the endless iterator (duration mode draws from the same sequence)
    assert list(itertools.islice(iter_arrival_offsets_ns(10.0, "poisson", seed=3), 500)) == a
    g = arrival_offsets_ns(10.0, 300, "gamma", burstiness=0.5, seed=3)
    assert g == arrival_offsets_ns(10.0, 300, "gamma", burstiness=0.5, seed=3)


@pytest.mark.parametrize(
    ("arrival", "burstiness", "cv"),
    [("poisson", 1.0, 1.0), ("gamma", 1.0, 1.0), ("gamma", 0.25, 2.0), ("gamma", 4.0, 0.5)],
)
def test_mean_rate_and_coefficient_of_variation(arrival: str, burstiness: float, cv: float) -> None:
    rate = 40.0
    gaps = _gaps_s(arrival_offsets_ns(rate, N + 1, arrival, burstiness, seed=11))
    mean = statistics.fmean(gaps)
    # the sample mean of N gaps has standard error cv/(rate*sqrt(N)); allow 5 standard errors
    assert abs(mean * rate - 1) < 5 * cv / math.sqrt(N)
    # gamma with shape k has CV 1/sqrt(k); the sample CV is within a few percent at N = 20000
    assert statistics.pstdev(gaps) / mean == pytest.approx(cv, rel=0.06)


def test_burstiness_below_one_is_burstier() -> None:
    def cv(b: float) -> float:
        gaps = _gaps_s(arrival_offsets_ns(100.0, 5000, "gamma", b, seed=1))
        return statistics.pstdev(gaps) / statistics.fmean(gaps)

    assert cv(0.2) > cv(0.5) > cv(1.0) > cv(3.0) > cv(10.0)


def test_constant_arrivals_are_evenly_spaced_without_drift() -> None:
    offsets = arrival_offsets_ns(3.0, 3001, "constant")
    assert offsets[-1] == 1_000_000_000_000  # 3000 gaps of 1/3 s, rounded once per arrival
    assert {b - a for a, b in itertools.pairwise(offsets)} <= {333_333_333, 333_333_334}


def test_gaps_iterator_matches_offsets() -> None:
    gaps = list(itertools.islice(iter_gaps_s(5.0, "poisson", seed=2), 10))
    offsets = arrival_offsets_ns(5.0, 11, "poisson", seed=2)
    assert abs(offsets[-1] - math.fsum(gaps) * 1e9) <= 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate": 0.0}, "request_rate must be"),
        ({"rate": float("inf")}, "request_rate must be"),
        ({"arrival": "uniform"}, "arrival must be one of"),
        ({"burstiness": 0.0}, "burstiness must be"),
        ({"arrival": "poisson", "burstiness": 2.0}, "applies only to arrival='gamma'"),
        ({"count": -1}, "count must be"),
    ],
)
def test_bad_schedule_settings_are_named(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"rate": 10.0, "count": 5, "arrival": "gamma", "burstiness": 1.0} | kwargs
    with pytest.raises(ValueError, match=message):
        arrival_offsets_ns(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of concurrency"),
        ({"concurrency": 2, "request_rate": 1.0}, "exactly one of concurrency"),
        ({"concurrency": 0}, "concurrency must be"),
        ({"concurrency": 2, "max_concurrency": 4}, "max_concurrency applies"),
        ({"concurrency": 2, "arrival": "gamma"}, "arrival and burstiness apply"),
        ({"request_rate": -1.0}, "request_rate must be"),
        ({"request_rate": 1.0, "burstiness": 0.5}, "applies only to arrival='gamma'"),
        ({"request_rate": 1.0, "max_concurrency": 0}, "max_concurrency must be"),
        ({"concurrency": 1, "num_requests": -1}, "num_requests must be"),
        ({"concurrency": 1, "duration_s": 0.0}, "duration_s must be"),
        ({"concurrency": 1, "warmup": -1}, "warmup must be"),
        ({"concurrency": 1, "timeout_s": 0.0}, "timeout_s must be"),
        ({"concurrency": 1, "abort_after_connection_errors": 0}, "abort_after_connection_errors"),
    ],
)
def test_load_pattern_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LoadPattern(**kwargs)  # type: ignore[arg-type]


def test_valid_patterns() -> None:
    assert LoadPattern(concurrency=4).closed_loop
    p = LoadPattern(request_rate=5.0, arrival="gamma", burstiness=0.5, max_concurrency=8, duration_s=2.0)
    assert not p.closed_loop
