"""The run's progress bar: it counts every request but updates the bar at most every update_interval_s, and
never shows an unknown token count as 0 tokens."""

from __future__ import annotations

import io

from rich.console import Console

from capbench.run.progress import RequestProgress


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _progress(clock: FakeClock) -> RequestProgress:
    console = Console(file=io.StringIO(), force_terminal=False)
    return RequestProgress(console, total=None, update_interval_s=0.25, clock=clock)


def _bar_count(progress: RequestProgress) -> float:
    return progress._progress.tasks[0].completed


def test_the_bar_is_updated_at_most_every_interval_and_once_at_the_end() -> None:
    clock = FakeClock()
    with _progress(clock) as progress:
        for _ in range(1000):
            progress.request_done({"output_tokens": 8, "error": None})
        assert progress.requests == 1000 and progress.shown == 0 and _bar_count(progress) == 0
        clock.t += 0.25
        progress.request_done({"output_tokens": 8, "error": None})
        assert progress.shown == 1001 and _bar_count(progress) == 1001
        clock.t += 0.1
        progress.request_done({"output_tokens": 8, "error": None})
        assert progress.shown == 1001  # within the interval: counted, not shown yet
    assert _bar_count(progress) == 1002  # leaving shows the final count


def test_the_rate_is_tokens_per_second_until_a_count_is_unknown() -> None:
    clock = FakeClock()
    progress = _progress(clock)
    assert progress.rate == ""  # no time has passed
    progress.request_done({"output_tokens": 10, "error": None})
    progress.request_done({"output_tokens": None, "error": "HTTP 500"})  # a failure adds no tokens
    clock.t += 2.0
    assert progress.rate == "5 out tok/s"
    progress.request_done({"output_tokens": None, "error": None})  # completed, length unknown
    assert progress.rate == "1.5 req/s"
