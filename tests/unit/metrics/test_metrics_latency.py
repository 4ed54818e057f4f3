"""Request latency and throughput on hand-made requests (times in ns; 1 s = 1e9 ns)."""

from __future__ import annotations

from typing import Any

import pytest

from capbench.errors import CapbenchError
from capbench.metrics.latency import request_metrics

S = 1_000_000_000


def req(rid: str, submit: float, first: float | None, done: float, out: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": rid,
        "warmup": False,
        "prompt_tokens": 10,
        "output_tokens": out,
        "t_submit_ns": int(submit * S),
        "t_first_token_ns": None if first is None else int(first * S),
        "t_done_ns": int(done * S),
        "error": None,
        **extra,
    }


REQUESTS = [
    # Warm-up, tiny and early: excluded by its flag, not by its size.
    {**req("w", -5.0, -4.9, -4.8, 1), "warmup": True},
    # Queued 0.5 s before its first token: TTFT 0.5 includes queueing; e2e 2.5; TPOT (2.5 − 0.5)/4 = 0.5.
    req("a", 0.0, 0.5, 2.5, 5, token_times_ns=[int(t * S) for t in (0.5, 1.0, 1.5, 2.0, 2.5)]),
    # One output token: TTFT = e2e = 1.0, no TPOT, no chunk gaps.
    req("b", 1.0, 2.0, 2.0, 1, token_times_ns=[2 * S]),
    # Errored: counted in error_rate, excluded from latency and token counts, still inside the wall window.
    {**req("c", 0.5, None, 4.0, 0), "error": "server closed the connection"},
    # Completed, no token_times_ns: its ITL is unmeasured. TTFT 0.25, e2e 1.25, TPOT (1.25 − 0.25)/2 = 0.5.
    req("d", 2.0, 2.25, 3.25, 3),
]


def test_counts_and_error_rate() -> None:
    counts = request_metrics(REQUESTS)["requests"]
    assert counts == {"total": 5, "measured": 4, "warmup": 1, "completed": 3, "errors": 1, "error_rate": 0.25}


def test_latency_distributions() -> None:
    lat = request_metrics(REQUESTS)["latency"]
    assert lat["ttft_s"]["count"] == 3
    assert sorted([lat["ttft_s"]["max"], lat["ttft_s"]["p50"]]) == [0.5, 1.0]
    assert lat["ttft_s"]["mean"] == pytest.approx((0.5 + 1.0 + 0.25) / 3)
    assert lat["tpot_s"]["count"] == 2 and lat["tpot_s"]["mean"] == pytest.approx(0.5)
    assert lat["e2e_latency_s"]["count"] == 3
    assert lat["e2e_latency_s"]["mean"] == pytest.approx((2.5 + 1.0 + 1.25) / 3)
    # ITL: request a's 4 gaps of 0.5 s only.
    assert lat["itl_s"]["count"] == 4 and lat["itl_s"]["p99"] == pytest.approx(0.5)


def test_throughput() -> None:
    tp = request_metrics(REQUESTS)["throughput"]
    # Wall: first measured submit (a, 0 s) to last measured done (c, errored, 4 s) = 4 s.
    assert tp["wall_s"] == pytest.approx(4.0)
    assert tp["output_tokens"] == 5 + 1 + 3 and tp["input_tokens"] == 30
    assert tp["output_tokens_per_s"] == pytest.approx(9 / 4)
    assert tp["requests_per_s"] == pytest.approx(3 / 4)
    assert (tp["window_start_ns"], tp["window_end_ns"]) == (0, 4 * S)


def test_nothing_measured_is_none_not_zero() -> None:
    out = request_metrics([{**req("w", 0, 0.1, 0.2, 3), "warmup": True}])
    assert out["requests"]["error_rate"] is None
    assert out["throughput"]["wall_s"] is None and out["throughput"]["output_tokens_per_s"] is None
    assert out["throughput"]["output_tokens"] is None
    assert out["latency"]["ttft_s"] == {"count": 0, "mean": None, "p50": None, "p90": None, "p99": None, "max": None}


def test_missing_token_counts_make_totals_unknown() -> None:
    r = req("a", 0.0, 0.5, 1.0, 2)
    del r["output_tokens"]
    tp = request_metrics([r, req("b", 0.0, 0.5, 1.0, 2)])["throughput"]
    assert tp["output_tokens"] is None and tp["output_tokens_per_s"] is None
    assert tp["input_tokens"] == 20


def test_inconsistent_clock_is_an_error() -> None:
    with pytest.raises(CapbenchError, match="t_first_token_ns must lie between"):
        request_metrics([req("a", 1.0, 0.5, 2.0, 2)])
    with pytest.raises(CapbenchError, match="no t_submit_ns"):
        request_metrics([{"id": "x", "t_done_ns": 5}])
