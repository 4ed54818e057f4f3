"""Print a run's ``summary.json`` as tables on the console.

A value that was not measured prints as "—" (never 0), and the summary's notes, which explain every null,
are printed under the tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

DASH = "—"


def fmt(value: Any, unit: str = "", scale: float = 1.0) -> str:
    """Format a number for display (full precision stays in the files); None -> "—".

    Integers print with thousands separators; floats with 3 significant digits, or as whole numbers with
    separators from 1,000 up.
    """
    if value is None:
        return DASH
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    scaled = value * scale
    whole = (isinstance(value, int) and scale == 1.0) or abs(scaled) >= 1000
    text = f"{scaled:,.0f}" if whole else f"{scaled:.3g}"
    return f"{text} {unit}".rstrip()


def _get(d: Mapping[str, Any] | None, *keys: str) -> Any:
    for key in keys:
        if not isinstance(d, Mapping):
            return None
        d = d.get(key)
    return d


def latency_table(summary: Mapping[str, Any]) -> Table:
    table = Table(title="Request latency (client-observed, warm-up excluded)", title_justify="left")
    table.add_column("metric")
    for col in ("mean", "p50", "p90", "p99"):
        table.add_column(col, justify="right")
    rows = [
        ("TTFT", "ttft_s"),
        ("TPOT", "tpot_s"),
        ("inter-token latency", "itl_s"),
        ("end-to-end latency", "e2e_latency_s"),
    ]
    for label, key in rows:
        stats = _get(summary, "latency", key)
        table.add_row(label, *(fmt(_get(stats, c), "ms", 1e3) for c in ("mean", "p50", "p90", "p99")))
    for phase in ("prefill", "decode", "mixed"):
        stats = _get(summary, "phases", phase, "step_latency_s")
        if stats is not None:
            table.add_row(f"{phase} step", *(fmt(_get(stats, c), "ms", 1e3) for c in ("mean", "p50", "p90", "p99")))
    return table


def engine_vs_client_table(summary: Mapping[str, Any]) -> Table:
    """Engine-side figures (the server's own ``/metrics``, ``summary["server"]``) next to capbench's.

    Client-side latencies come from ``summary["latency"]`` (client-observed: they include the network and
    the HTTP layer); tokens per engine step from capbench's pass records (``phases.all``: tokens / passes)
    when the run has them. Engine-side quantiles are interpolated within histogram buckets, so coarse.
    """
    table = Table(
        title="Engine-side (server /metrics) vs client-side",
        title_justify="left",
        caption="engine-side percentiles are interpolated within the server's histogram buckets (coarse)",
        caption_justify="left",
    )
    table.add_column("metric")
    table.add_column("client-side", justify="right")
    table.add_column("engine-side", justify="right")
    server = summary.get("server") or {}
    for label, client_key, server_key, stats in (
        ("TTFT", "ttft_s", "ttft_s", ("mean", "p50", "p99")),
        ("TPOT", "tpot_s", "tpot_s", ("mean", "p50", "p99")),
        # vLLM's queue-time buckets start at 0.3 s: its percentiles say little, the mean is exact.
        ("queue time", None, "queue_time_s", ("mean",)),
    ):
        for stat in stats:
            client = _get(summary, "latency", client_key, stat) if client_key else None
            engine = _get(server, "latency", server_key, f"{stat}_s")
            table.add_row(f"{label} {stat}", fmt(client, "ms", 1e3), fmt(engine, "ms", 1e3))
    all_phase = _get(summary, "phases", "all") or {}
    tokens, passes = all_phase.get("tokens"), all_phase.get("passes")
    client_step = tokens / passes if isinstance(tokens, int | float) and isinstance(passes, int) and passes else None
    table.add_row(
        "tokens per engine step (mean)", fmt(client_step), fmt(_get(server, "tokens_per_step", "mean_tokens"))
    )
    table.add_row("preemptions", DASH, fmt(_get(server, "counters", "preemptions")))
    kv_max = _get(server, "gauges", "kv_cache_usage", "max_fraction")
    table.add_row("KV cache usage (max)", DASH, fmt(kv_max, "%", 100))
    return table


def phase_table(summary: Mapping[str, Any]) -> Table:
    table = Table(title="Engine passes by phase (time-weighted)", title_justify="left")
    for col in ("phase", "passes", "tokens/s", "S-MBU", "S-MFU", "experts"):
        table.add_column(col, justify="left" if col == "phase" else "right")
    for phase, data in (summary.get("phases") or {}).items():
        table.add_row(
            phase,
            fmt(data.get("passes")),
            fmt(data.get("tokens_per_s")),
            fmt(data.get("s_mbu"), "%", 100),
            fmt(data.get("s_mfu"), "%", 100),
            str(data.get("expert_activation_source") or DASH),
        )
    return table


def turns_table(sessions: Mapping[str, Any]) -> Table:
    """Multi-turn runs: TTFT and prompt tokens by turn (``summary.json`` ``sessions``)."""
    title = (
        f"Turns ({fmt(sessions.get('sessions'))} sessions; failed {fmt(sessions.get('sessions_failed'))}, "
        f"cut at the end {fmt(sessions.get('sessions_cut'))})"
    )
    table = Table(title=title, title_justify="left")
    for col in ("turn", "requests", "errors", "TTFT p50", "TTFT p99", "prompt tokens mean"):
        table.add_column(col, justify="right")
    for row in sessions.get("by_turn") or []:
        ttft, prompt = row.get("ttft_s") or {}, row.get("prompt_tokens") or {}
        table.add_row(
            str(row.get("turn")),
            fmt(row.get("requests")),
            fmt(row.get("errors")),
            fmt(ttft.get("p50"), "s"),
            fmt(ttft.get("p99"), "s"),
            fmt(prompt.get("mean")),
        )
    return table


def likelihood_table(group: Mapping[str, Any]) -> Table:
    """Log-likelihood requests (``summary.json`` ``loglikelihood``): prompt-only, so their latency is the prefill's
    and their throughput is prompt tokens/s."""
    title = (
        f"Log-likelihood requests ({fmt(group.get('completed'))} completed, {fmt(group.get('failed'))} failed; "
        f"{fmt(group.get('prompt_tokens'))} prompt tokens)"
    )
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    for col in ("mean", "p50", "p90", "p99"):
        table.add_column(col, justify="right")
    latency = group.get("latency_s") or {}
    table.add_row("latency", *(fmt(latency.get(c), "ms", 1e3) for c in ("mean", "p50", "p90", "p99")))
    table.add_row("prompt tokens/s", fmt(group.get("prompt_tokens_per_s")), "", "", "")
    table.add_row("requests/s", fmt(group.get("requests_per_s")), "", "", "")
    return table


def accuracy_text(acc: Mapping[str, Any]) -> str:
    """``62.5 % ± 3.4 % (n = 200)``, or a dash when the task was not scored."""
    if acc.get("value") is None:
        return DASH
    stderr = acc.get("stderr")
    spread = f" ± {fmt(stderr, '%', 100)}" if stderr is not None else ""
    return f"{fmt(acc['value'], '%', 100)}{spread} (n = {acc.get('n')})"


def overview_table(summary: Mapping[str, Any]) -> Table:
    table = Table(title="Run", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    req = summary.get("requests") or {}
    thr = summary.get("throughput") or {}
    table.add_row("status", str(summary.get("status")))
    acc = summary.get("accuracy")
    if acc:
        table.add_row(f"accuracy: {acc.get('task')} ({acc.get('metric') or 'not scored'})", accuracy_text(acc))
        table.add_row(
            "accuracy: no answer / failed requests",
            f"{fmt(acc.get('no_answer_rate'), '%', 100)} / {fmt(acc.get('failed_requests'))}",
        )
    table.add_row(
        "requests (measured / errors / warm-up)",
        f"{fmt(req.get('measured'))} / {fmt(req.get('errors'))} / {fmt(req.get('warmup'))}",
    )
    workload = summary.get("workload") or {}
    for key, label in (("prompt_tokens", "prompt"), ("output_tokens", "output")):
        stats = workload.get(key) or {}
        if stats.get("count"):
            table.add_row(
                f"{label} tokens: mean / p50 / p99 / max",
                " / ".join(fmt(stats.get(stat)) for stat in ("mean", "p50", "p99", "max")),
            )
    table.add_row("wall time", fmt(thr.get("wall_s"), "s"))
    table.add_row("output tokens/s", fmt(thr.get("output_tokens_per_s")))
    table.add_row("requests/s", fmt(thr.get("requests_per_s")))
    load = summary.get("load") or {}
    table.add_row("in flight: mean / max", f"{fmt(load.get('mean_in_flight'))} / {fmt(load.get('max_in_flight'))}")
    good = summary.get("goodput") or {}
    if good.get("slo"):
        bounds = ", ".join(f"{k} ≤ {v:g}" for k, v in good["slo"].items())
        table.add_row(f"goodput ({bounds})", f"{fmt(good.get('fraction'), '%', 100)} of requests")
    experts = summary.get("experts") or {}
    decode = experts.get("decode") or {}
    table.add_row(
        "decode experts per layer: measured vs uniform",
        f"{fmt(decode.get('mean_active'))} vs {fmt(decode.get('uniform_expectation'))}"
        f" of {fmt(experts.get('num_experts'))}",
    )
    energy = summary.get("energy") or {}
    table.add_row("energy per output token", fmt(energy.get("energy_per_output_token_j"), "J"))
    cost = summary.get("cost") or {}
    table.add_row("cost per 1M output tokens", fmt(cost.get("usd_per_1m_output_tokens"), "USD"))
    hw = summary.get("hardware") or {}
    table.add_row("ceilings from", str(hw.get("profile") or DASH))
    return table


def print_summary(summary: Mapping[str, Any], console: Console) -> None:
    """Print the overview and latency tables (and the turns and log-likelihood tables when the run has them), the
    phase table, the engine-side table when the run scraped the server's
    ``/metrics``, then the notes that explain nulls."""
    console.print(overview_table(summary))
    console.print(latency_table(summary))
    if summary.get("sessions"):
        console.print(turns_table(summary["sessions"]))
    if summary.get("loglikelihood"):
        console.print(likelihood_table(summary["loglikelihood"]))
    if summary.get("phases"):
        console.print(phase_table(summary))
    if summary.get("server"):
        console.print(engine_vs_client_table(summary))
        for note in summary["server"].get("notes") or []:
            console.print(f"[dim]note (server metrics): {note}[/]")
    for note in summary.get("notes") or []:
        console.print(f"[dim]note: {note}[/]")
