"""Every CSV column, declared once: its name, where its value comes from, its unit, kind, label and direction.

``capbench export`` writes one row per run by walking :data:`COLUMNS` (the header is their names, in order), and
the leaderboard reads each column's kind, label, unit, percent flag and better direction from here, so a column's
meaning lives in one place (docs/summary.md, "CSV columns").

A :class:`Column`'s value comes from ``summary.json`` (``summary`` path), from ``run.json`` (``run`` path), or from
a function of both (``derive``). A path that stops early (a missing or null level) gives ``None``: an empty cell,
never 0. Kinds: ``number``, ``text``, ``bool``, ``json`` (a list of numbers as compact JSON text, e.g. the
per-layer expert counts). ``percent``: a fraction (0..1) the leaderboard shows ×100 under a "%" header. ``better``:
``higher`` or ``lower`` is better (the radar and the Pareto front), or ``None`` where it does not apply.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

Kind = Literal["number", "text", "bool", "json"]
Better = Literal["higher", "lower"] | None
Scalar = str | int | float | bool | None
Record = Mapping[str, Any]

PHASES: tuple[str, ...] = ("prefill", "decode", "mixed", "all")
LATENCIES: tuple[tuple[str, str], ...] = (
    ("ttft", "ttft_s"),
    ("tpot", "tpot_s"),
    ("itl", "itl_s"),
    ("e2e_latency", "e2e_latency_s"),
)
LATENCY_STATS: tuple[str, ...] = ("mean", "p50", "p90", "p99", "max")


def get(obj: Any, *path: str) -> Any:
    """``obj[path[0]][path[1]]…``, or ``None`` as soon as a level is missing or null."""
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _scalar(value: Any) -> Scalar:
    """A CSV-safe scalar: numbers and strings pass, anything nested becomes ``None`` (no silent str())."""
    return value if isinstance(value, str | int | float | bool) or value is None else None


def _json_list(value: Any) -> str | None:
    """A list of numbers (or nulls) as a compact JSON text cell (``"[7.5,8.0,null]"``); anything else ``None``."""
    if not isinstance(value, list) or not all(
        v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in value
    ):
        return None
    return orjson.dumps(value).decode()


@dataclass(frozen=True)
class Column:
    """One CSV column (module docstring)."""

    name: str
    kind: Kind
    label: str
    unit: str | None = None
    summary: tuple[str, ...] | None = None
    run: tuple[str, ...] | None = None
    derive: Callable[[Record, Record], Any] | None = None
    percent: bool = False
    better: Better = None
    short: str | None = None
    """A short label (a radar spoke), else :attr:`label`."""

    def value(self, manifest: Record, summary: Record) -> Scalar:
        """This column's cell for a run (``run.json`` and ``summary.json`` as dicts)."""
        if self.derive is not None:
            raw = self.derive(manifest, summary)
        elif self.summary is not None:
            raw = get(summary, *self.summary)
        else:
            assert self.run is not None
            raw = get(manifest, *self.run)
        return _json_list(raw) if self.kind == "json" else _scalar(raw)

    @property
    def header(self) -> str:
        """The label with its display unit, e.g. ``"TTFT p50 (s)"``, ``"Accuracy (%)"``."""
        unit = "%" if self.percent else self.unit
        return f"{self.label} ({unit})" if unit else self.label

    @property
    def short_label(self) -> str:
        return self.short or self.label


def _s(name: str, kind: Kind, label: str, *path: str, unit: str | None = None, **kw: Any) -> Column:
    return Column(name, kind, label, unit=unit, summary=path, **kw)


def _r(name: str, kind: Kind, label: str, *path: str, unit: str | None = None, **kw: Any) -> Column:
    return Column(name, kind, label, unit=unit, run=path, **kw)


def _dataset(manifest: Record, summary: Record) -> Any:
    dataset = get(manifest, "load", "dataset")
    if isinstance(dataset, Mapping):
        name, version = dataset.get("name"), dataset.get("version")
        if name is not None and dataset.get("multi_turn"):
            name = f"{name} (multi-turn)"
        return f"{name}@{version}" if name is not None and version is not None else _scalar(name)
    return _scalar(dataset)


def _identity() -> list[Column]:
    return [
        Column("run_id", "text", "Run ID", derive=lambda m, s: s.get("run_id") or m.get("run_id")),
        Column("status", "text", "Status", derive=lambda m, s: m.get("status") or s.get("status")),
        _s("spec_version", "text", "Metric spec version", "spec_version"),
        _s("summary_schema_version", "number", "Summary schema version", "schema_version"),
        _s("capbench_version", "text", "capbench version", "capbench_version"),
        _r("model", "text", "Model", "model", "name"),
        _r("model_type", "text", "Model type", "model", "config", "model_type"),
        _r("engine", "text", "Engine", "engine", "name"),
        _r("engine_version", "text", "Engine version", "engine", "version"),
        _s("hardware_profile", "text", "Hardware profile", "hardware", "profile"),
        _s("gpu_name", "text", "GPU", "hardware", "gpu_name"),
        _s("num_gpus", "number", "GPUs", "hardware", "num_gpus", unit="GPUs"),
        _s("hardware_profile_selected_by", "text", "Hardware profile chosen by", "hardware", "profile_selected_by"),
        _r("dtype_weights", "text", "Weights dtype", "dtypes", "weights"),
        _r("dtype_experts", "text", "Experts dtype", "dtypes", "experts"),
        Column(
            "dtype_embeddings",
            "text",
            "Embeddings dtype",
            derive=lambda m, s: get(m, "dtypes", "embeddings") or get(m, "dtypes", "weights"),
        ),
        _r("dtype_kv", "text", "KV-cache dtype", "dtypes", "kv"),
        _r("dtype_compute", "text", "Compute dtype", "dtypes", "compute"),
        _r("load_pattern", "text", "Load pattern", "load", "pattern"),
        _r("concurrency", "number", "Concurrency", "load", "concurrency", unit="requests"),
        _r("request_rate_per_s", "number", "Request rate", "load", "request_rate_per_s", unit="requests/s"),
        _r("arrival", "text", "Arrival process", "load", "arrival"),
        _r("burstiness", "number", "Burstiness (gamma shape)", "load", "burstiness"),
        _r("num_requests", "number", "Requests asked", "load", "num_requests", unit="requests"),
        _r("duration_s", "number", "Duration asked", "load", "duration_s", unit="s"),
        _r("max_tokens", "number", "Max tokens", "load", "max_tokens", unit="tokens"),
        _r("seed", "number", "Seed", "load", "seed"),
        Column("dataset", "text", "Dataset", derive=_dataset),
    ]


def _accuracy() -> list[Column]:
    return [
        _r("top_k_override", "number", "Top-k override", "model", "top_k_override"),  # experts per token
        _s("accuracy_task", "text", "Accuracy task", "accuracy", "task"),
        _s("accuracy_metric", "text", "Accuracy metric", "accuracy", "metric"),
        _s("accuracy", "number", "Accuracy", "accuracy", "value", percent=True, better="higher"),
        _s("accuracy_stderr", "number", "Accuracy standard error", "accuracy", "stderr", percent=True),
        _s("accuracy_samples", "number", "Accuracy samples", "accuracy", "n", unit="samples"),
        _s("accuracy_no_answer_rate", "number", "No-answer rate", "accuracy", "no_answer_rate", unit="fraction"),
        _s("accuracy_failed_requests", "number", "Failed accuracy requests", "accuracy", "failed_requests"),
        _s("fixed_prompt_tokens", "number", "Fixed prompt length", "fixed_length", "prompt_tokens", unit="tokens"),
        _s("fixed_output_tokens", "number", "Fixed output length", "fixed_length", "output_tokens", unit="tokens"),
        _s("fixed_length_exact", "bool", "Fixed lengths exact", "fixed_length", "exact"),
    ]


def _workload() -> list[Column]:
    """What the run really sent (summary.json ``workload``): prompt and output tokens of its measured requests."""
    columns = []
    for key, label in (("prompt", "Prompt tokens"), ("output", "Output tokens")):
        for stat in ("mean", "p50", "p90", "p99", "max"):
            path = ("workload", f"{key}_tokens", stat)
            columns.append(_s(f"{key}_{stat}_tokens", "number", f"{label} {stat}", *path, unit="tokens"))
    columns.append(_r("replay_speed", "number", "Trace replay speed", "load", "dataset", "replay_speed"))
    columns.append(_s("measured_sessions", "number", "Multi-turn sessions", "sessions", "sessions", unit="sessions"))
    columns.append(
        _r("think_time_s", "number", "Think time between turns", "load", "dataset", "think_time_s", unit="s")
    )
    return columns


def _capacity() -> list[Column]:
    """A capacity search's probes (``capbench export`` of a capacity directory; empty for other runs): which
    search, its verdict on this run's load, and on the run at the capacity, the cost there."""
    return [
        _s("capacity_search_id", "text", "Capacity search", "capacity", "search_id"),
        _s("capacity_search", "text", "Capacity searched over", "capacity", "search"),
        _s("capacity_point", "bool", "Run at capacity", "capacity", "capacity_point"),
        _s("capacity_probe_verdict", "text", "Capacity probe verdict", "capacity", "verdict"),
        _s("capacity_probe_attainment_fraction", "number", "Probe SLO attainment", "capacity", "attainment",
           unit="fraction", percent=True),
        _s("capacity_max_concurrency", "number", "Capacity (concurrency)", "capacity", "max_concurrency",
           unit="requests", better="higher"),
        _s("capacity_max_request_rate_per_s", "number", "Capacity (request rate)", "capacity",
           "max_request_rate_per_s", unit="requests/s", better="higher"),
        _s("usd_per_1m_output_tokens_at_capacity", "number", "Cost at capacity", "capacity",
           "usd_per_1m_output_tokens_at_capacity", unit="USD / 1M output tokens", better="lower",
           short="Cost at capacity"),
    ]  # fmt: skip


def _requests() -> list[Column]:
    columns = [
        _s("measured_requests", "number", "Measured requests", "requests", "measured", unit="requests"),
        _s("completed_requests", "number", "Completed requests", "requests", "completed", unit="requests"),
        _s("error_requests", "number", "Failed requests", "requests", "errors", unit="requests"),
        _s("error_rate", "number", "Error rate", "requests", "error_rate", unit="fraction", better="lower"),
        _s("wall_s", "number", "Measured wall time", "throughput", "wall_s", unit="s"),
        _s("requests_per_s", "number", "Requests per second", "throughput", "requests_per_s", unit="requests/s"),
        _s("input_tokens", "number", "Input tokens", "throughput", "input_tokens", unit="tokens"),
        _s("output_tokens", "number", "Output tokens", "throughput", "output_tokens", unit="tokens"),
        _s("input_tokens_per_s", "number", "Input throughput", "throughput", "input_tokens_per_s", unit="tokens/s"),
        _s(
            "output_tokens_per_s",
            "number",
            "Throughput",
            "throughput",
            "output_tokens_per_s",
            unit="output tokens/s",
            better="higher",
            short="Throughput",
        ),
        _s("output_tokens_per_s_per_gpu", "number", "Throughput per GPU", "throughput", "output_tokens_per_s_per_gpu",
           unit="output tokens/s/GPU", better="higher", short="Tok/s/GPU"),
        _s("tokens_per_s_per_user", "number", "Tokens/s per user", "throughput", "tokens_per_s_per_user",
           unit="tokens/s", better="higher", short="Tok/s/user"),
    ]  # fmt: skip
    names = {"ttft": "TTFT", "tpot": "TPOT", "itl": "ITL", "e2e_latency": "E2E latency"}
    for prefix, key in LATENCIES:
        for stat in LATENCY_STATS:
            columns.append(
                _s(f"{prefix}_{stat}_s", "number", f"{names[prefix]} {stat}", "latency", key, stat, unit="s",
                   better="lower", short=names[prefix])
            )  # fmt: skip
    return columns


def _load_and_goodput() -> list[Column]:
    columns = [
        _s("mean_in_flight_requests", "number", "Mean requests in flight", "load", "mean_in_flight", unit="requests"),
        _s("max_in_flight_requests", "number", "Max requests in flight", "load", "max_in_flight", unit="requests"),
        _s("submit_rate_per_s", "number", "Submission rate", "load", "submit_rate_per_s", unit="requests/s"),
    ]
    for key in ("ttft_s", "tpot_s", "itl_s", "e2e_latency_s"):
        columns.append(_s(f"slo_{key}", "number", f"SLO {key.removesuffix('_s')}", "goodput", "slo", key, unit="s"))
    columns += [
        _s("goodput_fraction", "number", "Goodput", "goodput", "fraction", unit="fraction", better="higher"),
        _s("goodput_requests_per_s", "number", "Goodput", "goodput", "requests_per_s", unit="requests/s"),
        _s("goodput_output_tokens_per_s", "number", "Goodput", "goodput", "output_tokens_per_s", unit="tokens/s"),
        _s("client_cpu_fraction", "number", "Client CPU", "client", "cpu_util", unit="fraction of one core"),
        _s("client_loop_lag_p99_s", "number", "Client loop lag p99", "client", "loop_lag_p99_s", unit="s"),
        _s("client_bound", "bool", "Client bound", "client", "client_bound"),
    ]
    return columns


def _phases() -> list[Column]:
    columns = []
    for phase in PHASES:
        title = phase.capitalize() if phase != "all" else "All passes"
        columns += [
            _s(f"{phase}_passes", "number", f"{title} passes", "phases", phase, "passes", unit="passes"),
            _s(f"{phase}_tokens_per_s", "number", f"{title} tokens/s", "phases", phase, "tokens_per_s",
               unit="tokens/s"),
            _s(f"{phase}_step_latency_p50_s", "number", f"{title} step latency p50", "phases", phase,
               "step_latency_s", "p50", unit="s"),
            _s(f"{phase}_step_latency_p90_s", "number", f"{title} step latency p90", "phases", phase,
               "step_latency_s", "p90", unit="s"),
            _s(f"{phase}_bytes", "number", f"{title} bytes moved", "phases", phase, "bytes", unit="bytes"),
            _s(f"{phase}_flops", "number", f"{title} FLOPs", "phases", phase, "flops", unit="FLOP"),
            _s(f"{phase}_time_s", "number", f"{title} step time", "phases", phase, "time_s", unit="s"),
            _s(f"{phase}_arithmetic_intensity_flop_per_byte", "number", f"{title} arithmetic intensity", "phases",
               phase, "arithmetic_intensity_flop_per_byte", unit="FLOP/byte"),
            _s(f"{phase}_achieved_flops_per_s", "number", f"{title} achieved FLOP/s", "phases", phase,
               "achieved_flops_per_s", unit="FLOP/s"),
        ]  # fmt: skip
        for metric, label in (("s_mbu", "S-MBU"), ("s_mfu", "S-MFU")):
            columns.append(_s(f"{phase}_{metric}", "number", f"{title} {label}", "phases", phase, metric,
                              percent=True, better="higher"))  # fmt: skip
            for stat in ("p50", "p90"):
                columns.append(_s(f"{phase}_{metric}_{stat}", "number", f"{title} {label} {stat}", "phases", phase,
                                  f"{metric}_{stat}", percent=True))  # fmt: skip
        columns.append(_s(f"{phase}_expert_activation_source", "text", f"{title} expert activation source",
                          "phases", phase, "expert_activation_source"))  # fmt: skip
    return columns


def _experts() -> list[Column]:
    columns = [
        _s("expert_activation_source", "text", "Expert activation source", "experts", "activation_source"),
        _s("num_experts", "number", "Routed experts per MoE layer", "experts", "num_experts", unit="experts"),
        _s("experts_top_k", "number", "Experts per token", "experts", "top_k", unit="experts"),
        _s("num_moe_layers", "number", "MoE layers", "experts", "num_moe_layers", unit="layers"),
    ]
    for phase in ("prefill", "decode"):
        title = phase.capitalize()
        columns += [
            _s(f"{phase}_mean_experts_active", "number", f"{title} experts active (mean)", "experts", phase,
               "mean_active", unit="experts"),
            _s(f"{phase}_uniform_experts_expected", "number", f"{title} experts expected (uniform routing)",
               "experts", phase, "uniform_expectation", unit="experts"),
            _s(f"{phase}_experts_active_per_layer", "json", f"{title} experts active per layer", "experts", phase,
               "mean_active_per_layer", unit="experts"),
        ]  # fmt: skip
    columns += [
        _s("expert_load_max_over_mean", "number", "Expert load max/mean", "experts", "load_balance", "max_over_mean"),
        _s("expert_load_cv", "number", "Expert load CV", "experts", "load_balance", "cv"),
        _s("expert_load_max_over_mean_per_layer", "json", "Expert load max/mean per layer", "experts",
           "load_balance", "max_over_mean_per_layer"),
    ]  # fmt: skip
    return columns


def _hardware_energy_cost() -> list[Column]:
    c, e, k = "hardware", "energy", "cost"
    return [
        _s("ceiling_memory_bandwidth_bytes_per_s", "number", "Memory bandwidth ceiling", c, "ceilings",
           "memory_bandwidth_bytes_per_s", unit="bytes/s"),
        _s("ceiling_peak_flops_per_s", "number", "Peak FLOP/s ceiling", c, "ceilings", "peak_flops_per_s",
           unit="FLOP/s"),
        _s("ceiling_compute_dtype", "text", "Ceiling compute dtype", c, "ceilings", "compute_dtype"),
        _s("ceiling_source", "text", "Ceiling source", c, "ceilings", "source"),
        _s("energy_source", "text", "Energy source", e, "energy_source"),
        _s("power_sampling_period_s", "number", "Power sampling period", e, "sampling_period_s", unit="s"),
        _s("energy_coverage_fraction", "number", "Energy coverage", e, "coverage_fraction", unit="fraction"),
        _s("energy_j", "number", "Energy", e, "energy_j", unit="J"),
        _s("mean_power_w", "number", "Mean power", e, "mean_power_w", unit="W"),
        _s("energy_per_output_token_j", "number", "Energy", e, "energy_per_output_token_j",
           unit="J / output token", better="lower", short="Energy"),
        _s("energy_per_request_j", "number", "Energy per request", e, "energy_per_request_j", unit="J"),
        _s("prefill_energy_j", "number", "Prefill energy", e, "phase_energy_j", "prefill", unit="J"),
        _s("decode_energy_j", "number", "Decode energy", e, "phase_energy_j", "decode", unit="J"),
        _s("mixed_energy_j", "number", "Mixed energy", e, "phase_energy_j", "mixed", unit="J"),
        _s("usd_per_gpu_hour", "number", "GPU-hour price", k, "usd_per_gpu_hour", unit="USD"),
        _s("usd_per_gpu_hour_source", "text", "GPU-hour price source", k, "usd_per_gpu_hour_source"),
        _s("usd_per_kwh", "number", "Electricity price", k, "inputs", "usd_per_kwh", unit="USD/kWh"),
        _s("energy_cost_source", "text", "Energy cost source", k, "energy_cost_source"),
        _s("energy_usd", "number", "Energy cost", k, "energy_usd", unit="USD"),
        _s("total_usd", "number", "Total cost", k, "total_usd", unit="USD"),
        _s("usd_per_1m_output_tokens", "number", "Cost", k, "usd_per_1m_output_tokens",
           unit="USD / 1M output tokens", better="lower", short="Cost"),
        _s("usd_per_request", "number", "Cost per request", k, "usd_per_request", unit="USD"),
        _s("deployment_capital_usd", "number", "Deployment capital", k, "deployment_capital_usd", unit="USD",
           better="lower", short="Capital"),
    ]  # fmt: skip


def _server() -> list[Column]:
    columns = []
    for key in ("ttft_s", "tpot_s", "itl_s", "queue_time_s", "e2e_latency_s"):
        prefix = key.removesuffix("_s")
        columns.append(_s(f"server_{prefix}_mean_s", "number", f"Engine-side {prefix} mean", "server", "latency",
                          key, "mean_s", unit="s"))  # fmt: skip
        if key == "ttft_s":
            columns.append(_s("server_ttft_p99_s", "number", "Engine-side ttft p99", "server", "latency", key,
                              "p99_s", unit="s"))  # fmt: skip
    g = ("server", "gauges")
    columns += [
        _s("server_step_mean_tokens", "number", "Tokens per engine step", "server", "tokens_per_step",
           "mean_tokens", unit="tokens"),
        _s("server_generation_tokens", "number", "Engine generated tokens", "server", "counters",
           "generation_tokens", unit="tokens"),
        _s("server_preemptions", "number", "Preemptions", "server", "counters", "preemptions"),
        _s("server_prefix_cache_hit_rate", "number", "Prefix-cache hit rate", "server", "counters",
           "prefix_cache_hit_rate", unit="fraction"),
        _s("server_kv_cache_usage_mean_fraction", "number", "KV-cache usage mean", *g, "kv_cache_usage",
           "mean_fraction", unit="fraction"),
        _s("server_kv_cache_usage_max_fraction", "number", "KV-cache usage max", *g, "kv_cache_usage",
           "max_fraction", unit="fraction"),
        _s("server_max_running_requests", "number", "Max running requests", *g, "requests_running",
           "max_requests", unit="requests"),
        _s("server_max_waiting_requests", "number", "Max waiting requests", *g, "requests_waiting",
           "max_requests", unit="requests"),
    ]  # fmt: skip
    return columns


def _versions() -> list[Column]:
    return [
        _r("python_version", "text", "Python", "versions", "python"),
        _r("torch_version", "text", "torch", "versions", "packages", "torch"),
        _r("transformers_version", "text", "transformers", "versions", "packages", "transformers"),
        _r("lm_eval_version", "text", "lm-eval", "versions", "packages", "lm_eval"),
        _r("lock_sha256", "text", "Lock", "versions", "lock", "sha256"),
        _r("lock_matches", "bool", "Environment matches its lock", "versions", "lock", "matches"),
        _r("engine_torch_version", "text", "Engine torch", "engine", "versions", "packages", "torch"),
        _r("engine_transformers_version", "text", "Engine transformers", "engine", "versions", "packages",
           "transformers"),
        _r("engine_lock_sha256", "text", "Engine lock", "engine", "versions", "lock", "sha256"),
        _r("engine_lock_matches", "bool", "Engine environment matches its lock", "engine", "versions", "lock",
           "matches"),
    ]  # fmt: skip


HEADLINE: tuple[str, ...] = (
    "output_tokens_per_s",
    "output_tokens_per_s_per_gpu",
    "tokens_per_s_per_user",
    "requests_per_s",
    "goodput_fraction",
    "ttft_p50_s",
    "ttft_p99_s",
    "tpot_p50_s",
    "tpot_p99_s",
    "prefill_s_mbu",
    "prefill_s_mfu",
    "decode_s_mbu",
    "decode_s_mfu",
    "energy_per_output_token_j",
    "usd_per_1m_output_tokens",
    "accuracy",
)
"""The headline figures: what a run of several repeats reports as mean, standard deviation and 95 % interval
(``summary.json`` ``repeats.metrics``; :mod:`capbench.summary.repeats`), and what a capacity search reports at the
capacity (``capacity.json`` ``at_capacity``)."""


def _repeats(base: tuple[Column, ...]) -> list[Column]:
    """Per headline figure ``std_<name>``, ``ci95_low_<name>`` and ``ci95_high_<name>`` (same unit), and
    ``num_repeats``: empty for a single run."""
    by_name = {c.name: c for c in base}
    columns = [_s("num_repeats", "number", "Repeats", "repeats", "n", unit="runs")]
    for name in HEADLINE:
        head = by_name[name]
        for stat, label in (("std", "std"), ("ci95_low", "95% CI low"), ("ci95_high", "95% CI high")):
            columns.append(
                _s(f"{stat}_{name}", "number", f"{head.label} {label}", "repeats", "metrics", name, stat,
                   unit=head.unit, percent=head.percent)
            )  # fmt: skip
    return columns


_BASE: tuple[Column, ...] = (
    *_identity(),
    *_accuracy(),
    *_workload(),
    *_capacity(),
    *_requests(),
    *_load_and_goodput(),
    *_phases(),
    *_experts(),
    *_hardware_energy_cost(),
    *_server(),
    *_versions(),
)
COLUMNS: tuple[Column, ...] = (*_BASE, *_repeats(_BASE))
"""Every CSV column, in the export's order."""

BY_NAME: Mapping[str, Column] = {column.name: column for column in COLUMNS}
NAMES: tuple[str, ...] = tuple(BY_NAME)


def column(name: str) -> Column:
    """The declared column ``name``; a clear error for an unknown one."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"no CSV column {name!r} is declared in capbench.summary.columns") from None


__all__ = ["BY_NAME", "COLUMNS", "LATENCIES", "LATENCY_STATS", "NAMES", "PHASES", "Column", "column", "get"]
