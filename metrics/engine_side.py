"""Engine-side metrics: what the server itself reports on its Prometheus ``/metrics`` endpoint.

Input: the lines of ``server_metrics.jsonl`` (docs/records.md), each a scrape ``{t_ns, phase, ok, http_status,
error, text}`` with ``phase`` ``start``, ``periodic`` or ``end``. The window runs from the baseline scrape (the
first ok ``start`` scrape, else the first ok scrape) to the final one (the last ok ``end`` scrape, else the last
ok scrape). Counters and histograms are cumulative since the server started, so every figure is a delta
final − baseline: warm-up requests and any traffic before the measured phase are left out. Gauges are read
in every ok scrape of the window, baseline and final included.

Histogram quantiles are estimated from the bucket deltas (:func:`bucket_quantile`): linear interpolation
inside the bucket that holds the quantile, the ``+Inf`` bucket giving its lower bound. They are coarse (a
bucket can span a factor of 2 or more); the mean Δsum / Δcount is exact.

Metric names changed between vLLM versions: every quantity has a short list of names (:data:`ALIASES`), the
first one present in the final scrape is used and recorded in ``metrics_used``. A quantity the server does
not expose is ``None``, never 0. A counter that went down (the server restarted inside the window) is
``None`` too, with a note.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from capbench.metrics.stats import ratio_or_none
from capbench.records.prometheus import PromHistogram, PromScrape, parse_prometheus

QUANTILE_METHOD = "bucket_interpolated"
"""How histogram quantiles are estimated (:func:`bucket_quantile`); written next to every estimate."""

LATENCY_QUANTITIES: tuple[str, ...] = (
    "ttft_s",
    "itl_s",
    "tpot_s",
    "queue_time_s",
    "prefill_time_s",
    "decode_time_s",
    "e2e_latency_s",
)
"""Engine-side latency histograms reported in ``latency``, all in seconds."""

ALIASES: Mapping[str, tuple[str, ...]] = {
    # Histograms (seconds, per request unless said otherwise).
    "ttft_s": ("vllm:time_to_first_token_seconds",),
    "itl_s": ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"),  # per token gap
    "tpot_s": ("vllm:request_time_per_output_token_seconds",),
    "queue_time_s": ("vllm:request_queue_time_seconds",),
    "prefill_time_s": ("vllm:request_prefill_time_seconds",),
    "decode_time_s": ("vllm:request_decode_time_seconds",),
    "e2e_latency_s": ("vllm:e2e_request_latency_seconds",),
    "tokens_per_step": ("vllm:iteration_tokens_total",),  # histogram of tokens per engine step
    # Counters.
    "preemptions": ("vllm:num_preemptions_total",),
    "prompt_tokens": ("vllm:prompt_tokens_total",),
    "generation_tokens": ("vllm:generation_tokens_total",),
    "prefix_cache_hits_tokens": ("vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total"),
    "prefix_cache_queries_tokens": ("vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total"),
    "finished_requests": ("vllm:request_success_total",),
    # Gauges.
    "kv_cache_usage": ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),  # a 0..1 fraction
    "requests_running": ("vllm:num_requests_running",),
    "requests_waiting": ("vllm:num_requests_waiting",),
}
"""Per quantity, the metric names to look for, newest first (histograms by their base name)."""

HISTOGRAM_QUANTITIES: tuple[str, ...] = (*LATENCY_QUANTITIES, "tokens_per_step")
FINISHED_REASON_LABEL = "finished_reason"

Scrape = Mapping[str, Any]


def bucket_quantile(buckets: Sequence[tuple[float, float]], q: float) -> float | None:
    """Estimate the ``q``-quantile (0 ≤ q ≤ 1) from cumulative bucket counts ``(le, count)``, ascending ``le``.

    With N = the last bucket's count (the ``+Inf`` one) and rank r = q·N, the quantile lies in the first
    bucket i whose cumulative count c_i ≥ r. Observations are taken as spread evenly inside it, between its
    lower bound lo = le_{i−1} (0 for the first bucket) and its upper bound hi = le_i:

        quantile = lo + (hi − lo) · (r − c_{i−1}) / (c_i − c_{i−1})

    When that bucket is the ``+Inf`` one the estimate is lo, the largest finite bound (a lower bound of the
    true value). When the first bucket's bound is ≤ 0 it is returned as is. ``None`` when N ≤ 0. The result
    is in the histogram's unit.
    """
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    prev_le, prev_count = 0.0, 0.0
    for i, (le, count) in enumerate(buckets):
        if count >= rank:
            if math.isinf(le):
                return prev_le if i > 0 else None
            if i == 0 and le <= 0:
                return le
            if count == prev_count:
                return le
            return prev_le + (le - prev_le) * (rank - prev_count) / (count - prev_count)
        prev_le, prev_count = le, count
    return None


def _as_number(value: float | None) -> int | float | None:
    """An integral float as int (counts read from the text format are floats), other values unchanged."""
    if value is not None and math.isfinite(value) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _pick(scrape: PromScrape, quantity: str) -> str | None:
    """The first alias of ``quantity`` the scrape exposes, or ``None``."""
    present = scrape.has_histogram if quantity in HISTOGRAM_QUANTITIES else scrape.has
    return next((name for name in ALIASES[quantity] if present(name)), None)


def histogram_delta(final: PromHistogram | None, baseline: PromHistogram | None) -> PromHistogram | None:
    """final − baseline, bucket by bucket and for ``_sum`` and ``_count`` (a baseline without it counts as 0).

    ``None`` when ``final`` is ``None`` or any count went down (the server restarted between the scrapes).
    """
    if final is None:
        return None
    base = dict(baseline.buckets) if baseline else {}
    buckets = tuple((le, count - base.get(le, 0.0)) for le, count in final.buckets)
    count = _counter_delta(final.count, baseline.count if baseline else None)
    if any(c < 0 for _, c in buckets) or (final.count is not None and count is None):
        return None
    total = None
    if final.sum is not None:
        total = final.sum - (baseline.sum if baseline and baseline.sum is not None else 0.0)
    return PromHistogram(name=final.name, buckets=buckets, sum=total, count=count)


def _counter_delta(final: float | None, baseline: float | None) -> float | None:
    """final − baseline (a baseline without the counter counts as 0); ``None`` when unknown or negative."""
    if final is None:
        return None
    delta = final - (baseline or 0.0)
    return delta if delta >= 0 else None


def _histogram_count(h: PromHistogram) -> float | None:
    """Observations in a histogram: its ``_count``, else its last (``+Inf``) bucket."""
    if h.count is not None:
        return h.count
    return h.buckets[-1][1] if h.buckets else None


def histogram_stats(h: PromHistogram | None, unit: str) -> dict[str, Any]:
    """``{count, mean_<unit>, p50_<unit>, p90_<unit>, p99_<unit>, quantiles}`` of a (delta) histogram.

    mean = Δsum / Δcount; the percentiles come from :func:`bucket_quantile`. Every figure is ``None`` when the
    histogram is unknown; with 0 observations ``count`` is 0 and the rest ``None``.
    """
    count = _histogram_count(h) if h is not None else None
    has_data = h is not None and count is not None and count > 0
    stats: dict[str, Any] = {"count": _as_number(count)}
    stats[f"mean_{unit}"] = ratio_or_none(h.sum, count) if h is not None and has_data else None
    for label, q in (("p50", 0.50), ("p90", 0.90), ("p99", 0.99)):
        stats[f"{label}_{unit}"] = bucket_quantile(h.buckets, q) if h is not None and has_data else None
    stats["quantiles"] = QUANTILE_METHOD
    return stats


def _select_window(scrapes: Sequence[Scrape]) -> tuple[int, int] | None:
    """Indices of the baseline and final scrapes (see the module docstring); ``None`` when there is no window."""
    ok = [i for i, s in enumerate(scrapes) if _is_ok(s)]
    if len(ok) < 2:
        return None
    starts = [i for i in ok if scrapes[i].get("phase") == "start"]
    ends = [i for i in ok if scrapes[i].get("phase") == "end"]
    first = starts[0] if starts else ok[0]
    last = ends[-1] if ends else ok[-1]
    return (first, last) if first < last else None


def _is_ok(scrape: Scrape) -> bool:
    return scrape.get("ok") is True and isinstance(scrape.get("text"), str)


def _scrape_info(scrapes: Sequence[Scrape], first: int, last: int, parsed: Sequence[PromScrape]) -> dict[str, Any]:
    ok = sum(1 for s in scrapes if _is_ok(s))
    t_start, t_end = scrapes[first].get("t_ns"), scrapes[last].get("t_ns")
    if not (isinstance(t_start, int) and isinstance(t_end, int)):
        t_start = t_end = None
    return {
        "total": len(scrapes),
        "ok": ok,
        "failed": len(scrapes) - ok,
        "in_window": len(parsed),
        "malformed_lines": sum(p.malformed for p in parsed),
        "baseline_phase": scrapes[first].get("phase"),
        "final_phase": scrapes[last].get("phase"),
        "t_start_ns": t_start,
        "t_end_ns": t_end,
        "window_s": (t_end - t_start) / 1e9 if t_start is not None and t_end is not None else None,
    }


def _histograms(
    final: PromScrape, baseline: PromScrape, used: dict[str, str | None], notes: list[str]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for quantity in HISTOGRAM_QUANTITIES:
        name = used[quantity]
        delta = histogram_delta(final.histogram(name), baseline.histogram(name)) if name else None
        if name and delta is None:
            notes.append(f"{name} went down between the baseline and final scrapes (server restart?): not reported")
        out[quantity] = delta
    return out


def _tokens_per_step(h: PromHistogram | None) -> dict[str, Any]:
    """``{steps, mean_tokens, p50_tokens, p90_tokens, p99_tokens, quantiles}`` from the step-size histogram."""
    stats = histogram_stats(h, "tokens")
    return {"steps": stats.pop("count"), **stats}


def _counters(final: PromScrape, baseline: PromScrape, used: dict[str, str | None], notes: list[str]) -> dict[str, Any]:
    """Counter deltas; ``prefix_cache_hit_rate`` = Δhits / Δqueries (tokens, dimensionless)."""
    out: dict[str, Any] = {}
    for quantity in ("preemptions", "prompt_tokens", "generation_tokens"):
        out[quantity] = _named_counter_delta(final, baseline, used[quantity], notes)
    hits = _named_counter_delta(final, baseline, used["prefix_cache_hits_tokens"], notes)
    queries = _named_counter_delta(final, baseline, used["prefix_cache_queries_tokens"], notes)
    out["prefix_cache_hits_tokens"] = hits
    out["prefix_cache_queries_tokens"] = queries
    out["prefix_cache_hit_rate"] = ratio_or_none(hits, queries)
    by_reason = _finished_by_reason(final, baseline, used["finished_requests"], notes)
    out["finished_requests"] = _total_or_none(by_reason.values()) if by_reason is not None else None
    out["finished_requests_by_reason"] = by_reason
    return out


def _total_or_none(values: Iterable[int | float | None]) -> int | float | None:
    """Σ values, or ``None`` when any of them is unknown."""
    total = 0.0
    for value in values:
        if value is None:
            return None
        total += value
    return _as_number(total)


def _named_counter_delta(
    final: PromScrape, baseline: PromScrape, name: str | None, notes: list[str]
) -> int | float | None:
    if name is None:
        return None
    delta = _counter_delta(final.total(name), baseline.total(name))
    if delta is None:
        notes.append(f"{name} went down between the baseline and final scrapes (server restart?): not reported")
    return _as_number(delta)


def _finished_by_reason(
    final: PromScrape, baseline: PromScrape, name: str | None, notes: list[str]
) -> dict[str, int | float | None] | None:
    """Δ finished requests per ``finished_reason`` label value (``unlabeled`` for series without the label)."""
    if name is None:
        return None
    before = _sum_by_label(baseline, name, FINISHED_REASON_LABEL)
    out: dict[str, int | float | None] = {}
    for reason, value in sorted(_sum_by_label(final, name, FINISHED_REASON_LABEL).items()):
        delta = _counter_delta(value, before.get(reason))
        if delta is None:
            notes.append(f"{name}{{{FINISHED_REASON_LABEL}={reason!r}}} went down in the window: not reported")
        out[reason] = _as_number(delta)
    return out


def _sum_by_label(scrape: PromScrape, name: str, label: str) -> dict[str, float]:
    """Σ value of the series ``name`` grouped by the value of ``label`` (NaN left out)."""
    out: dict[str, float] = {}
    for sample in scrape.series(name):
        if not math.isnan(sample.value):
            key = sample.label(label) or "unlabeled"
            out[key] = out.get(key, 0.0) + sample.value
    return out


def _gauge_series(
    window: Sequence[PromScrape], name: str | None, per_scrape: Callable[[list[float]], float]
) -> list[float]:
    """One value per scrape of the window that exposes ``name``: ``per_scrape`` over its series' values."""
    if name is None:
        return []
    values = []
    for scrape in window:
        series = [s.value for s in scrape.series(name) if not math.isnan(s.value)]
        if series:
            values.append(per_scrape(series))
    return values


def _gauges(window: Sequence[PromScrape], inner: Sequence[PromScrape], used: dict[str, str | None]) -> dict[str, Any]:
    """Gauge statistics over the window's scrapes (each scrape one sample, unweighted).

    Means are over the ``inner`` scrapes only (those strictly between the baseline and the final one): the
    baseline is taken before the measured load starts and the final one after it ends, so counting them would
    dilute a mean with idle samples. No inner scrape: the means are null. Maxima are over the whole window.
    ``kv_cache_usage``: per scrape the mean over its series (one per engine), then ``mean_fraction`` = the
    mean over scrapes and ``max_fraction`` = the largest value of any series in any scrape (0..1 fractions).
    ``requests_running`` / ``requests_waiting``: per scrape the sum over series (server-wide), then the mean
    and max over scrapes (requests).
    """
    kv_mean = _gauge_series(inner, used["kv_cache_usage"], lambda v: math.fsum(v) / len(v))
    kv_max = _gauge_series(window, used["kv_cache_usage"], max)
    out: dict[str, Any] = {
        "kv_cache_usage": {
            "mean_fraction": math.fsum(kv_mean) / len(kv_mean) if kv_mean else None,
            "max_fraction": max(kv_max) if kv_max else None,
            "scrapes": len(kv_mean),
        }
    }
    for quantity in ("requests_running", "requests_waiting"):
        values = _gauge_series(window, used[quantity], math.fsum)
        inner_values = _gauge_series(inner, used[quantity], math.fsum)
        out[quantity] = {
            "mean_requests": math.fsum(inner_values) / len(inner_values) if inner_values else None,
            "max_requests": _as_number(max(values)) if values else None,
            "scrapes": len(inner_values),
        }
    return out


def _window_notes(scrape_info: Mapping[str, Any], used: Mapping[str, str | None]) -> list[str]:
    notes = []
    if scrape_info["baseline_phase"] != "start":
        notes.append("no successful start scrape: the baseline is the first successful scrape")
    if scrape_info["final_phase"] != "end":
        notes.append("no successful end scrape: the final figures are the last successful scrape")
    if scrape_info["failed"]:
        notes.append(f"{scrape_info['failed']} of {scrape_info['total']} scrapes of /metrics failed (ignored)")
    if scrape_info["malformed_lines"]:
        notes.append(f"{scrape_info['malformed_lines']} malformed /metrics lines skipped")
    missing = sorted(q for q, name in used.items() if name is None)
    if missing:
        notes.append("the server does not expose: " + ", ".join(missing) + " (null)")
    return notes


def engine_side_summary(scrapes: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The ``server`` section of ``summary.json`` from the scrapes of ``server_metrics.jsonl`` (docs/summary.md).

    ``None`` when fewer than two scrapes succeeded (no window to take deltas over). Failed scrapes are
    counted and otherwise ignored.
    """
    bounds = _select_window(scrapes)
    if bounds is None:
        return None
    first, last = bounds
    window = [parse_prometheus(s["text"]) for s in scrapes[first : last + 1] if _is_ok(s)]
    baseline, final = window[0], window[-1]
    used = {quantity: _pick(final, quantity) for quantity in ALIASES}
    scrape_info = _scrape_info(scrapes, first, last, window)
    notes = _window_notes(scrape_info, used)
    hists = _histograms(final, baseline, used, notes)
    return {
        "source": "prometheus",
        "scrapes": scrape_info,
        "metrics_used": used,
        "latency": {q: histogram_stats(hists[q], "s") for q in LATENCY_QUANTITIES},
        "tokens_per_step": _tokens_per_step(hists["tokens_per_step"]),
        "counters": _counters(final, baseline, used, notes),
        "gauges": _gauges(window, window[1:-1], used),
        "notes": notes,
    }
