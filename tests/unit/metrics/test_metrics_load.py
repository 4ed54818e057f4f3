"""Goodput against SLOs and achieved concurrency, on hand-made requests (arithmetic in the comments)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from capbench.metrics.concurrency import _busy_by_bin, achieved_load
from capbench.metrics.goodput import goodput

MS = 1_000_000  # ns


def req(rid: str, submit_ms: int, first_ms: int | None, done_ms: int, out: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": rid,
        "warmup": extra.pop("warmup", False),
        "t_submit_ns": submit_ms * MS,
        "t_first_token_ns": None if first_ms is None else first_ms * MS,
        "t_done_ns": done_ms * MS,
        "output_tokens": out,
        "error": extra.pop("error", None),
        **extra,
    }


REQUESTS = [
    req("w0", 0, 5, 10, 3, warmup=True),  # warm-up: excluded whatever its latency
    # TTFT 100 ms, TPOT (400−100)/(4−1) = 100 ms, gaps 100 ms each.
    req("r0", 0, 100, 400, 4, token_times_ns=[100 * MS, 200 * MS, 300 * MS, 400 * MS]),
    # TTFT 600 ms: fails ttft_s = 0.5.
    req("r1", 0, 600, 700, 2, token_times_ns=[600 * MS, 700 * MS]),
    # TTFT 50 ms, TPOT (1050−50)/(3−1) = 500 ms: fails tpot_s = 0.2; one gap of 900 ms fails itl_s = 0.5.
    req("r2", 100, 150, 1100, 3, token_times_ns=[150 * MS, 1050 * MS, 1100 * MS]),
    # One output token: no TPOT, no gaps; TTFT 20 ms.
    req("r3", 200, 220, 220, 1, token_times_ns=[220 * MS]),
    req("r4", 300, None, 350, 0, error="HTTP 500"),  # errored: never meets
]


def test_goodput_counts_requests_meeting_every_bound() -> None:
    # ttft ≤ 0.5 and tpot ≤ 0.2: r0 yes, r1 no (ttft), r2 no (tpot), r3 yes (no TPOT), r4 no (error).
    out = goodput(REQUESTS, {"ttft_s": 0.5, "tpot_s": 0.2}, wall_s=2.0)
    assert out["requests_meeting"] == 2
    assert out["fraction"] == 2 / 5  # over the 5 measured requests
    assert out["requests_per_s"] == 2 / 2.0
    assert out["output_tokens_per_s"] == (4 + 1) / 2.0


def test_goodput_itl_and_e2e_bounds() -> None:
    # itl ≤ 0.5: r0 (max gap 0.1) yes, r1 (0.1) yes, r2 (0.9) no, r3 (no gap) yes.
    assert goodput(REQUESTS, {"itl_s": 0.5}, wall_s=1.0)["requests_meeting"] == 3
    # e2e ≤ 0.45: r0 (0.4) yes, r1 (0.7) no, r2 (1.0) no, r3 (0.02) yes.
    assert goodput(REQUESTS, {"e2e_latency_s": 0.45}, wall_s=1.0)["requests_meeting"] == 2


def test_goodput_with_tpot_bound_and_unknown_token_counts_is_null() -> None:
    unknown = [*REQUESTS, req("r5", 0, 10, 9900, 2)]
    unknown[-1]["output_tokens"] = None  # a 9.9 s decode of unknown length: TPOT unknowable
    out = goodput(unknown, {"tpot_s": 0.001}, wall_s=10.0)
    assert out["fraction"] is None and "no output token count" in out["null_reason"]
    assert goodput(unknown, {"ttft_s": 0.5}, wall_s=10.0)["requests_meeting"] == 4  # r0, r2, r3, r5


def test_goodput_without_slo_or_requests_is_null() -> None:
    assert goodput(REQUESTS, {}, wall_s=1.0)["fraction"] is None
    assert goodput([], {"ttft_s": 1.0}, wall_s=None)["requests_meeting"] is None


def test_achieved_load_littles_law_max_and_rate() -> None:
    # Measured spans (ms): r0 [0,400), r1 [0,700), r2 [100,1100), r3 [200,220), r4 [300,350).
    # Σ durations = 400 + 700 + 1000 + 20 + 50 = 2170 ms over the window [0, 1100] ms → 2170/1100.
    out = achieved_load(REQUESTS)
    assert out["mean_in_flight"] == pytest.approx(2170 / 1100)
    # At t = 300 ms: r0, r1, r2, r4 in flight (r3 ended at 220) → 4; never 5.
    assert out["max_in_flight"] == 4
    # Submissions at 0, 0, 100, 200, 300 ms: (5 − 1) / 0.3 s.
    assert out["submit_rate_per_s"] == pytest.approx(4 / 0.3)
    timeline = out["timeline"]
    assert len(timeline) == 5 and out["bin_s"] == pytest.approx(0.22)
    # The bins' time-average equals the overall mean (equal bins).
    assert sum(timeline) / len(timeline) == pytest.approx(out["mean_in_flight"])


def test_back_to_back_requests_are_not_counted_twice() -> None:
    # Closed loop at concurrency 1: the next request is submitted the instant the previous one ends.
    spans = [req(f"r{i}", 10 * i, 10 * i + 1, 10 * (i + 1), 2) for i in range(5)]
    out = achieved_load(spans)
    assert out["max_in_flight"] == 1
    assert out["mean_in_flight"] == pytest.approx(1.0)


def test_no_requests() -> None:
    assert achieved_load([])["mean_in_flight"] is None


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(min_value=-50, max_value=10_050), st.integers(min_value=0, max_value=12_000)),
        min_size=1,
        max_size=60,
    ),
    st.integers(min_value=1, max_value=100),
    st.sampled_from([1, 10**9, 3 * 10**12 + 7]),
)
@example(spans=[(0, 0)] * 5 + [(0, 2), (0, 1), (0, 3002)], bins=1, scale=3 * 10**12 + 7)  # numpy sums 1 bin pairwise
def test_busy_time_by_bin_is_the_whole_tables_sum_bit_for_bit(
    spans: list[tuple[int, int]], bins: int, scale: int
) -> None:
    """The timeline's per-bin busy time, computed only where each span can reach, equals numpy's sum over the
    whole (spans × bins) table exactly: spans inside, across and outside the window, empty ones, on the edges."""
    starts = np.array([s * scale for s, _ in spans], dtype=np.int64)
    ends = starts + np.array([d * scale for _, d in spans], dtype=np.int64)
    edges = np.linspace(0, 10_000 * scale, bins + 1)
    lo, hi = edges[:-1], edges[1:]
    table = np.clip(np.minimum(ends[:, None], hi) - np.maximum(starts[:, None], lo), 0, None).sum(axis=0)
    assert np.array_equal(_busy_by_bin(starts, ends, edges), table)
