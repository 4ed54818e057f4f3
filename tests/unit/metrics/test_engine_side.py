"""Engine-side summary from /metrics scrapes: window choice, deltas, bucket quantiles, aliases, nulls."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pytest

from capbench.metrics.engine_side import (
    LATENCY_QUANTITIES,
    QUANTILE_METHOD,
    bucket_quantile,
    engine_side_summary,
    histogram_delta,
    histogram_stats,
)
from capbench.records.prometheus import PromHistogram, parse_prometheus
from tests.support.paths import DATA

FIXTURES = DATA / "prometheus"
INF = math.inf


def hist(name: str, buckets: Sequence[tuple[str, float]], total: float, labels: str = 'engine="0"') -> str:
    """Prometheus text of one histogram series: cumulative ``(le, count)`` buckets, ``_sum``, ``_count``."""
    lines = [f"# TYPE {name} histogram"]
    lines += [f'{name}_bucket{{{labels},le="{le}"}} {count}' for le, count in buckets]
    lines += [f"{name}_sum{{{labels}}} {total}", f"{name}_count{{{labels}}} {buckets[-1][1]}"]
    return "\n".join(lines) + "\n"


def scrape(text: str, phase: str = "periodic", t_ns: int = 0, ok: bool = True) -> dict[str, Any]:
    if not ok:
        return {"t_ns": t_ns, "phase": phase, "ok": False, "http_status": None, "error": "refused", "text": None}
    return {"t_ns": t_ns, "phase": phase, "ok": True, "http_status": 200, "error": None, "text": text}


def vllm_text(
    ttft: Sequence[float], ttft_sum: float, gen: float, kv: float, running: float, preempt: float = 0.0
) -> str:
    """A small vLLM-like scrape: TTFT buckets (cumulative counts at 0.1, 0.5, 1.0, +Inf), counters, gauges."""
    bounds = ("0.1", "0.5", "1.0", "+Inf")
    return (
        hist("vllm:time_to_first_token_seconds", list(zip(bounds, ttft, strict=True)), ttft_sum)
        + f'vllm:generation_tokens_total{{engine="0"}} {gen}\n'
        + f'vllm:num_preemptions_total{{engine="0"}} {preempt}\n'
        + f'vllm:kv_cache_usage_perc{{engine="0"}} {kv}\n'
        + f'vllm:num_requests_running{{engine="0"}} {running}\n'
        + 'vllm:request_success_total{engine="0",finished_reason="stop"} 1\n'
        + 'vllm:request_success_total{engine="0",finished_reason="length"} 2\n'
    )


# --- bucket quantiles, checked by hand -------------------------------------------------------------------


BUCKETS = ((0.1, 2.0), (0.5, 6.0), (1.0, 10.0), (INF, 10.0))


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (0.1, 0.05),  # rank 1 of 10, in (0, 0.1] holding 2: 0 + 0.1 · 1/2
        (0.5, 0.4),  # rank 5, in (0.1, 0.5] holding 3..6: 0.1 + 0.4 · (5 − 2)/4
        (0.9, 0.875),  # rank 9, in (0.5, 1.0]: 0.5 + 0.5 · (9 − 6)/4
        (0.99, 0.9875),  # rank 9.9: 0.5 + 0.5 · 3.9/4
        (0.2, 0.1),  # rank 2 = the first bucket's count exactly: its upper bound
    ],
)
def test_bucket_quantile_interpolates_inside_the_bucket(q: float, expected: float) -> None:
    assert bucket_quantile(BUCKETS, q) == pytest.approx(expected, rel=1e-12)


def test_bucket_quantile_in_the_inf_bucket_is_its_lower_bound() -> None:
    assert bucket_quantile(((1.0, 5.0), (INF, 10.0)), 0.9) == 1.0
    assert bucket_quantile(((1.0, 5.0), (INF, 10.0)), 0.5) == pytest.approx(1.0)  # rank 5: first bucket's top
    assert bucket_quantile(((INF, 3.0),), 0.5) is None  # no finite bound at all


def test_bucket_quantile_without_observations_is_none() -> None:
    assert bucket_quantile((), 0.5) is None
    assert bucket_quantile(((1.0, 0.0), (INF, 0.0)), 0.5) is None


def test_bucket_quantile_skips_empty_buckets() -> None:
    # Nothing between 0.1 and 1.0: the median lies in (1.0, 2.0].
    assert bucket_quantile(((0.1, 1.0), (1.0, 1.0), (2.0, 3.0), (INF, 3.0)), 0.5) == pytest.approx(1.25)


def test_histogram_stats_and_delta() -> None:
    final = PromHistogram("h", ((0.1, 5.0), (0.5, 9.0), (1.0, 13.0), (INF, 13.0)), sum=6.0, count=13.0)
    base = PromHistogram("h", ((0.1, 3.0), (0.5, 3.0), (1.0, 3.0), (INF, 3.0)), sum=0.2, count=3.0)
    delta = histogram_delta(final, base)
    assert delta is not None
    assert delta.buckets == BUCKETS and delta.count == 10.0 and delta.sum == pytest.approx(5.8)
    stats = histogram_stats(delta, "s")
    assert stats == {
        "count": 10,
        "mean_s": pytest.approx(0.58),
        "p50_s": pytest.approx(0.4),
        "p90_s": pytest.approx(0.875),
        "p99_s": pytest.approx(0.9875),
        "quantiles": QUANTILE_METHOD,
    }
    assert histogram_delta(base, final) is None  # counts went down: a restarted server, not a negative count
    assert histogram_delta(final, None) == final  # no baseline: counted from 0
    empty = histogram_stats(histogram_delta(base, base), "s")
    assert empty["count"] == 0 and empty["mean_s"] is None and empty["p50_s"] is None
    unknown = histogram_stats(None, "s")
    assert unknown["count"] is None and unknown["mean_s"] is None


# --- the summary ------------------------------------------------------------------------------------------


def test_deltas_exclude_traffic_before_the_baseline() -> None:
    start = vllm_text(ttft=(3, 3, 3, 3), ttft_sum=0.2, gen=100, kv=0.0, running=0, preempt=1)
    mid = vllm_text(ttft=(4, 6, 6, 6), ttft_sum=1.0, gen=150, kv=0.5, running=4, preempt=1)
    end = vllm_text(ttft=(5, 9, 13, 13), ttft_sum=6.0, gen=230, kv=0.25, running=2, preempt=3)
    summary = engine_side_summary(
        [scrape(start, "start", 1_000_000_000), scrape(mid, t_ns=2_000_000_000), scrape(end, "end", 4_000_000_000)]
    )
    assert summary is not None
    ttft = summary["latency"]["ttft_s"]
    assert ttft["count"] == 10 and ttft["mean_s"] == pytest.approx(0.58)
    assert ttft["p50_s"] == pytest.approx(0.4) and ttft["p90_s"] == pytest.approx(0.875)
    assert ttft["quantiles"] == "bucket_interpolated"
    counters = summary["counters"]
    assert counters["generation_tokens"] == 130 and counters["preemptions"] == 2
    assert counters["finished_requests_by_reason"] == {"length": 0, "stop": 0}  # exposed, nothing new: real 0
    assert counters["finished_requests"] == 0
    gauges = summary["gauges"]
    # Means over the inner (periodic) scrapes only: the boundary scrapes sit outside the load.
    assert gauges["kv_cache_usage"] == {"mean_fraction": pytest.approx(0.5), "max_fraction": 0.5, "scrapes": 1}
    assert gauges["requests_running"] == {"mean_requests": 4.0, "max_requests": 4, "scrapes": 1}
    info = summary["scrapes"]
    assert (info["total"], info["ok"], info["failed"], info["in_window"]) == (3, 3, 0, 3)
    assert (info["t_start_ns"], info["t_end_ns"], info["window_s"]) == (1_000_000_000, 4_000_000_000, 3.0)
    assert (info["baseline_phase"], info["final_phase"]) == ("start", "end")
    assert summary["metrics_used"]["ttft_s"] == "vllm:time_to_first_token_seconds"


def test_missing_metrics_are_null_never_zero() -> None:
    text = vllm_text(ttft=(0, 0, 0, 0), ttft_sum=0.0, gen=0, kv=0.0, running=0)
    summary = engine_side_summary([scrape(text, "start", 0), scrape(text, "end", 10)])
    assert summary is not None
    for quantity in LATENCY_QUANTITIES:
        if quantity != "ttft_s":
            assert summary["latency"][quantity]["count"] is None, quantity
            assert summary["latency"][quantity]["mean_s"] is None, quantity
            assert summary["metrics_used"][quantity] is None
    assert summary["latency"]["ttft_s"]["count"] == 0  # exposed, no request: 0 requests, null latency
    assert summary["latency"]["ttft_s"]["mean_s"] is None
    assert summary["tokens_per_step"]["steps"] is None and summary["tokens_per_step"]["mean_tokens"] is None
    assert summary["counters"]["prompt_tokens"] is None and summary["counters"]["generation_tokens"] == 0
    assert summary["counters"]["prefix_cache_hit_rate"] is None
    assert summary["gauges"]["requests_waiting"] == {"mean_requests": None, "max_requests": None, "scrapes": 0}
    assert any("does not expose" in note and "prompt_tokens" in note for note in summary["notes"])


def test_older_metric_names_are_accepted_and_recorded() -> None:
    def old(count: float, total: float, hits: float, usage: float) -> str:
        return (
            hist("vllm:time_per_output_token_seconds", [("0.01", count), ("+Inf", count)], total)
            + f"vllm:gpu_cache_usage_perc {usage}\n"
            + f"vllm:gpu_prefix_cache_hits_total {hits}\nvllm:gpu_prefix_cache_queries_total {4 * hits}\n"
        )

    summary = engine_side_summary([scrape(old(1, 0.005, 1, 0.1), "start"), scrape(old(5, 0.025, 3, 0.3), "end")])
    assert summary is not None
    used = summary["metrics_used"]
    assert used["itl_s"] == "vllm:time_per_output_token_seconds"
    assert used["kv_cache_usage"] == "vllm:gpu_cache_usage_perc"
    assert used["prefix_cache_hits_tokens"] == "vllm:gpu_prefix_cache_hits_total"
    assert summary["latency"]["itl_s"]["count"] == 4 and summary["latency"]["itl_s"]["mean_s"] == pytest.approx(0.005)
    assert summary["counters"]["prefix_cache_hit_rate"] == pytest.approx(2 / 8)
    assert summary["gauges"]["kv_cache_usage"]["max_fraction"] == 0.3


def test_newest_alias_wins_when_both_are_exposed() -> None:
    text = "vllm:kv_cache_usage_perc 0.7\nvllm:gpu_cache_usage_perc 0.1\n"
    summary = engine_side_summary([scrape(text, "start"), scrape(text), scrape(text, "end")])
    assert summary is not None
    assert summary["metrics_used"]["kv_cache_usage"] == "vllm:kv_cache_usage_perc"
    assert summary["gauges"]["kv_cache_usage"]["mean_fraction"] == 0.7


def test_kv_usage_over_engines_is_a_mean_and_requests_a_sum() -> None:
    text = (
        'vllm:kv_cache_usage_perc{engine="0"} 0.2\nvllm:kv_cache_usage_perc{engine="1"} 0.6\n'
        'vllm:num_requests_waiting{engine="0"} 3\nvllm:num_requests_waiting{engine="1"} 4\n'
    )
    summary = engine_side_summary([scrape(text, "start"), scrape(text), scrape(text, "end")])
    assert summary is not None
    assert summary["gauges"]["kv_cache_usage"]["mean_fraction"] == pytest.approx(0.4)
    assert summary["gauges"]["kv_cache_usage"]["max_fraction"] == 0.6
    assert summary["gauges"]["requests_waiting"]["max_requests"] == 7


def test_fewer_than_two_ok_scrapes_is_none() -> None:
    text = vllm_text(ttft=(1, 1, 1, 1), ttft_sum=0.1, gen=1, kv=0, running=0)
    assert engine_side_summary([]) is None
    assert engine_side_summary([scrape(text, "start")]) is None
    assert engine_side_summary([scrape(text, "start"), scrape("", "end", ok=False)]) is None
    assert engine_side_summary([scrape(text, "start"), {"ok": True, "phase": "end", "text": None}]) is None


def test_failed_scrapes_are_counted_and_ignored() -> None:
    a = vllm_text(ttft=(1, 1, 1, 1), ttft_sum=0.05, gen=10, kv=0.1, running=1)
    b = vllm_text(ttft=(1, 3, 3, 3), ttft_sum=0.65, gen=30, kv=0.9, running=5)
    scrapes = [
        scrape("", "start", 0, ok=False),
        scrape(a, "periodic", 5),
        scrape("", "periodic", 6, ok=False),
        scrape(b, "end", 10),
    ]
    summary = engine_side_summary(scrapes)
    assert summary is not None
    assert summary["scrapes"]["failed"] == 2 and summary["scrapes"]["ok"] == 2
    assert summary["scrapes"]["baseline_phase"] == "periodic" and summary["scrapes"]["t_start_ns"] == 5
    assert summary["latency"]["ttft_s"]["count"] == 2 and summary["latency"]["ttft_s"]["mean_s"] == pytest.approx(0.3)
    assert any("no successful start scrape" in note for note in summary["notes"])
    assert any("2 of 4 scrapes" in note for note in summary["notes"])


def test_window_runs_from_the_start_scrape_to_the_end_scrape() -> None:
    before = vllm_text(ttft=(0, 0, 0, 0), ttft_sum=0, gen=0, kv=0.99, running=50)  # warm-up load, not measured
    start = vllm_text(ttft=(1, 1, 1, 1), ttft_sum=0.05, gen=10, kv=0.1, running=1)
    end = vllm_text(ttft=(2, 2, 2, 2), ttft_sum=0.1, gen=20, kv=0.3, running=3)
    after = vllm_text(ttft=(9, 9, 9, 9), ttft_sum=1, gen=99, kv=0.8, running=40)
    summary = engine_side_summary(
        [scrape(before, "periodic", 0), scrape(start, "start", 1), scrape(end, "end", 2), scrape(after, t_ns=3)]
    )
    assert summary is not None
    assert summary["scrapes"]["in_window"] == 2
    assert not any("start scrape" in note or "end scrape" in note for note in summary["notes"])
    assert summary["counters"]["generation_tokens"] == 10
    assert summary["gauges"]["kv_cache_usage"]["max_fraction"] == 0.3
    assert summary["gauges"]["requests_running"]["max_requests"] == 3


def test_no_end_scrape_uses_the_last_ok_one() -> None:
    a = vllm_text(ttft=(1, 1, 1, 1), ttft_sum=0.05, gen=10, kv=0.1, running=1)
    b = vllm_text(ttft=(1, 1, 1, 1), ttft_sum=0.05, gen=15, kv=0.1, running=1)
    summary = engine_side_summary([scrape(a, "start"), scrape(b, t_ns=7), scrape("", "end", 9, ok=False)])
    assert summary is not None
    assert summary["scrapes"]["final_phase"] == "periodic" and summary["scrapes"]["t_end_ns"] == 7
    assert summary["counters"]["generation_tokens"] == 5
    assert any("no successful end scrape" in note for note in summary["notes"])


def test_counter_reset_is_null_with_a_note() -> None:
    a = vllm_text(ttft=(5, 5, 5, 5), ttft_sum=0.5, gen=100, kv=0, running=0)
    b = vllm_text(ttft=(1, 1, 1, 1), ttft_sum=0.05, gen=10, kv=0, running=0)  # the server restarted
    summary = engine_side_summary([scrape(a, "start"), scrape(b, "end")])
    assert summary is not None
    assert summary["counters"]["generation_tokens"] is None
    assert summary["latency"]["ttft_s"]["count"] is None and summary["latency"]["ttft_s"]["mean_s"] is None
    assert any("vllm:generation_tokens_total went down" in note for note in summary["notes"])


def test_malformed_lines_are_counted_not_fatal() -> None:
    good = vllm_text(ttft=(1, 1, 1, 1), ttft_sum=0.05, gen=10, kv=0.1, running=1)
    summary = engine_side_summary([scrape(good + "garbage{\n", "start"), scrape(good + "x y z w\n", "end")])
    assert summary is not None
    assert summary["scrapes"]["malformed_lines"] == 2
    assert summary["counters"]["generation_tokens"] == 0


def test_real_vllm_fixture_pair() -> None:
    before_text = (FIXTURES / "vllm-0.32-cpu.prom").read_text()
    after_text = (FIXTURES / "vllm-0.32-cpu-after.prom").read_text()
    before, after = parse_prometheus(before_text), parse_prometheus(after_text)
    summary = engine_side_summary([scrape(before_text, "start", 0), scrape(after_text, "end", 2_000_000_000)])
    assert summary is not None
    assert all(name is not None for name in summary["metrics_used"].values()), summary["metrics_used"]
    assert summary["notes"] == [] and summary["scrapes"]["malformed_lines"] == 0

    def delta(name: str) -> float:
        a, b = after.total(name), before.total(name)
        assert a is not None and b is not None
        return a - b

    ttft = summary["latency"]["ttft_s"]
    assert ttft["count"] == delta("vllm:time_to_first_token_seconds_count") == 7
    expected_mean = delta("vllm:time_to_first_token_seconds_sum") / delta("vllm:time_to_first_token_seconds_count")
    assert ttft["mean_s"] == pytest.approx(expected_mean)
    assert 0 < ttft["p50_s"] <= ttft["p90_s"] <= ttft["p99_s"]
    steps = summary["tokens_per_step"]
    assert steps["steps"] == delta("vllm:iteration_tokens_total_count") == 37
    assert steps["mean_tokens"] == pytest.approx(delta("vllm:iteration_tokens_total_sum") / 37)
    counters = summary["counters"]
    assert counters["generation_tokens"] == delta("vllm:generation_tokens_total") == 88
    assert counters["prompt_tokens"] == delta("vllm:prompt_tokens_total")
    assert counters["preemptions"] == 0
    assert counters["finished_requests_by_reason"]["length"] == 7 and counters["finished_requests"] == 7
    # Every request of the pair finished: one TPOT, queue, prefill, decode and e2e observation each.
    for quantity in ("tpot_s", "queue_time_s", "prefill_time_s", "decode_time_s", "e2e_latency_s"):
        assert summary["latency"][quantity]["count"] == 7, quantity
    # No scrape inside the window: no mean (the boundary scrapes are idle by construction), the max is known.
    assert summary["gauges"]["kv_cache_usage"]["scrapes"] == 0
    assert summary["gauges"]["kv_cache_usage"]["mean_fraction"] is None
    assert summary["gauges"]["kv_cache_usage"]["max_fraction"] == 0.0
