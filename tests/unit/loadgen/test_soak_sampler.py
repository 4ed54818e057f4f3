"""The soak benchmark's sampler (benchmarks/soak.py): /proc parsing, the incremental line count, the load
window and the curve's summary. The soak itself is a benchmark, run by hand; nothing here is timed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.paths import REPO
from tests.support.scripts import load_script

soak = load_script(REPO / "benchmarks" / "soak.py", "soak_benchmark")

STATUS = """Name:\tpython
State:\tS (sleeping)
Pid:\t4242
VmPeak:\t  812340 kB
VmRSS:\t   51234 kB
Threads:\t3
Cpus_allowed_list:\t1
"""


def test_status_fields_are_parsed_as_integers() -> None:
    fields = soak.parse_status(STATUS)
    assert fields["VmRSS"] == 51234 and fields["Threads"] == 3 and fields["Pid"] == 4242
    assert "State" not in fields and "Name" not in fields  # not a single integer


def test_cpu_ticks_are_read_after_the_command_name() -> None:
    # the command name may hold spaces and parentheses: fields are counted after the last ')'
    rest = " ".join(["S", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "250", "50", "0", "0"])
    assert soak.parse_stat_cpu_ticks(f"4242 (my (odd) name) {rest}") == 300


def test_a_sample_of_this_process() -> None:
    sample = soak.read_sample(os.getpid(), 1.5, soak.LineCounter(Path("/nonexistent/requests.jsonl")))
    assert sample is not None
    assert sample.t_s == 1.5 and sample.rss_mb > 1 and sample.fds >= 3 and sample.threads >= 1
    assert sample.cpu_s > 0 and sample.requests == 0


def test_the_line_counter_reads_only_what_was_appended(tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    counter = soak.LineCounter(path)
    assert counter.update() == 0  # no file yet
    path.write_bytes(b'{"a": 1}\n{"a": 2}\n{"a"')  # a line being written
    assert counter.update() == 2
    with path.open("ab") as f:
        f.write(b": 3}\n")
    assert counter.update() == 3 and counter.offset == path.stat().st_size


def _samples(rss: list[float], requests: list[int]) -> list:
    return [
        soak.Sample(t_s=float(i), rss_mb=r, fds=70 + (i == 2), threads=2, cpu_s=0.5 * i, requests=n)
        for i, (r, n) in enumerate(zip(rss, requests, strict=True))
    ]


def test_the_load_window_runs_from_the_first_measured_lines_to_before_the_end() -> None:
    # warm-up of 10; measured lines from sample 2; every line written by sample 5 (the load had ended)
    samples = _samples([1, 40, 50, 52, 54, 90, 91], [0, 5, 30, 60, 90, 100, 100])
    assert soak.load_window(samples, warmup=10) == (2, 4)
    assert soak.load_window(_samples([1, 2], [0, 10]), warmup=10) is None


def test_the_summary_of_a_curve() -> None:
    samples = _samples([1, 40, 50, 52, 54, 90, 91], [0, 5, 30, 60, 90, 100, 100])
    f = soak.summarize(samples, warmup=10)
    assert f["rss_start_mb"] == 50 and f["rss_end_mb"] == 54 and f["rss_max_mb"] == 54
    assert f["rss_growth_mb"] == 4 and f["rss_growth_second_half_mb"] == 2  # 54 - the middle sample's 52
    assert f["rss_slope_second_half_mb_per_min"] == pytest.approx(2 * 60)  # 2 MB a second over samples 3-4
    assert (f["fds_start"], f["fds_end"], f["fds_max"]) == (71, 70, 71)
    empty = soak.summarize(_samples([1, 2], [0, 3]), warmup=10)
    assert all(value is None for value in empty.values())


def test_slope_per_minute_is_least_squares() -> None:
    assert soak.slope_per_min([0.0, 1.0, 2.0], [1.0, 2.0, 3.0]) == pytest.approx(60.0)
    assert soak.slope_per_min([0.0, 1.0, 2.0], [1.0, 3.0, 2.0]) == pytest.approx(30.0)
    assert soak.slope_per_min([1.0], [1.0]) is None and soak.slope_per_min([1.0, 1.0], [1.0, 2.0]) is None


def test_the_curve_rows_are_rates_over_windows() -> None:
    samples = _samples([10, 11, 12, 13, 14], [0, 100, 300, 600, 1000])
    rows = soak.curve_rows(samples, rows=2)
    assert [r["t_s"] for r in rows] == [2.0, 4.0]
    assert [r["requests_per_s"] for r in rows] == [150.0, 350.0]
    assert rows[0]["cpu_share"] == pytest.approx(0.5) and rows[1]["rss_mb"] == 14
    assert soak.curve_rows(samples[:1], rows=2) == []
