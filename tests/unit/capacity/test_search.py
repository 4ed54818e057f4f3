"""The capacity search finds the largest passing load of a monotone oracle within its resolution, in few probes."""

from __future__ import annotations

import math

import pytest

from capbench.capacity.attainment import decide, wilson_interval
from capbench.capacity.search import Search


def run(search: Search, capacity: float, limit: int = 50) -> list[float]:
    probed = []
    while (load := search.next_load()) is not None and len(probed) < limit:
        probed.append(load)
        search.record(load, load <= capacity)
    return probed


@pytest.mark.parametrize("capacity", [1, 2, 3, 7, 8, 13, 50, 99, 100, 257])
def test_concurrency_search_finds_the_exact_capacity(capacity: int) -> None:
    search = Search("concurrency", start=1, resolution=0.05)
    probed = run(search, capacity)
    assert search.outcome() == "found" and search.hi is not None and search.lo is not None
    # within one step of the resolution: exact while 5 % of the capacity is under one request
    assert capacity - max(1, math.floor(0.05 * capacity)) <= search.lo <= capacity
    assert len(probed) == len(set(probed))  # no load probed twice
    assert len(probed) <= 2 * math.ceil(math.log2(capacity + 1)) + 2


@pytest.mark.parametrize("capacity", [0.3, 1.0, 7.7, 42.0, 123.4])
def test_rate_search_brackets_within_the_resolution(capacity: float) -> None:
    search = Search("rate", start=1.0, resolution=0.05)
    probed = run(search, capacity)
    assert search.outcome() == "found"
    assert search.lo is not None and search.hi is not None
    assert search.lo <= capacity < search.hi and search.hi / search.lo <= 1.05
    assert 1.1 * search.lo > capacity  # 1.1x the answer fails
    assert len(probed) <= math.ceil(abs(math.log2(capacity))) + 7


def test_the_ends_of_the_search() -> None:
    nothing = Search("concurrency", start=4)
    run(nothing, 0)
    assert nothing.outcome() == "none_passed" and nothing.lo is None
    capped = Search("concurrency", start=1, max_load=16)
    assert run(capped, 1000) == [1, 2, 4, 8, 16]
    assert capped.outcome() == "at_least_max_load" and capped.lo == 16
    slow = Search("rate", start=1.0)
    run(slow, 0.0001)
    assert slow.outcome() == "none_passed"


def test_a_noisy_verdict_keeps_the_bracket_ordered() -> None:
    search = Search("concurrency", start=1)
    search.record(8, False)
    search.record(4, True)
    search.record(10, True)  # noise: passes above a failure
    assert search.lo == 10 and search.hi is None
    search.record(3, False)  # fails below a pass
    assert search.hi == 3 and search.lo is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "load", "start": 1}, "search kind"),
        ({"kind": "concurrency", "start": 1.5}, "integer"),
        ({"kind": "rate", "start": 0}, "load > 0"),
        ({"kind": "rate", "start": 1, "resolution": 0}, "resolution"),
        ({"kind": "rate", "start": 4, "max_load": 2}, "below the start"),
    ],
)
def test_bad_search_settings(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Search(**kwargs)  # type: ignore[arg-type]


def test_wilson_interval_matches_known_values() -> None:
    low, high = wilson_interval(40, 40) or (0, 0)
    assert low == pytest.approx(40 / (40 + 1.959963984540054**2)) and high == 1.0
    low, high = wilson_interval(5, 10) or (0, 0)
    assert (low, high) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    assert wilson_interval(0, 0) is None
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_decisions_are_clear_only_when_the_interval_excludes_the_target() -> None:
    assert decide(40, 40, 0.9).clear and decide(40, 40, 0.9).passed
    assert not decide(40, 40, 0.99).clear and decide(40, 40, 0.99).passed  # too few requests to be sure of 99 %
    assert decide(400, 400, 0.99).clear
    failing = decide(7, 16, 0.9)
    assert failing.clear and not failing.passed and failing.attainment == 7 / 16
    assert not decide(36, 40, 0.9).clear  # right at the target
    nothing = decide(0, 0, 0.9)
    assert not nothing.passed and nothing.clear and nothing.attainment is None
