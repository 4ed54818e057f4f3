"""Flatten scored runs to one CSV row each (docs/summary.md, "CSV columns").

:func:`summary_row` turns a run's manifest and ``summary.json`` into a flat dict whose column names carry
their units (``ttft_p50_s``, ``energy_per_output_token_j``, ``usd_per_1m_output_tokens``); a figure that was
not measured is ``None`` and becomes an empty cell, never 0. :func:`export_runs` reads run directories into
a :class:`pandas.DataFrame` with a stable column order; :func:`write_csv` writes it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from capbench.errors import CapbenchError
from capbench.records.reader import read_json_object, read_manifest
from capbench.records.schema import SUMMARY_FILE

Scalar = str | int | float | bool | None

PHASES: tuple[str, ...] = ("prefill", "decode", "mixed", "all")
LATENCIES: tuple[tuple[str, str], ...] = (
    ("ttft", "ttft_s"),
    ("tpot", "tpot_s"),
    ("itl", "itl_s"),
    ("e2e_latency", "e2e_latency_s"),
)
LATENCY_STATS: tuple[str, ...] = ("mean", "p50", "p90", "p99", "max")


def _get(obj: Any, *path: str) -> Any:
    """obj[path[0]][path[1]]…, or ``None`` as soon as a level is missing or null."""
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _scalar(value: Any) -> Scalar:
    """A CSV-safe scalar: numbers and strings pass, anything nested becomes ``None`` (no silent str())."""
    return value if isinstance(value, str | int | float | bool) or value is None else None


def _dataset(manifest: Mapping[str, Any]) -> Scalar:
    dataset = _get(manifest, "load", "dataset")
    if isinstance(dataset, Mapping):
        name, version = dataset.get("name"), dataset.get("version")
        return f"{name}@{version}" if name is not None and version is not None else _scalar(name)
    return _scalar(dataset)


def _identity(manifest: Mapping[str, Any], summary: Mapping[str, Any]) -> dict[str, Scalar]:
    return {
        "run_id": summary.get("run_id") or manifest.get("run_id"),
        "status": manifest.get("status") or summary.get("status"),
        "spec_version": summary.get("spec_version"),
        "summary_schema_version": summary.get("schema_version"),
        "capbench_version": summary.get("capbench_version"),
        "model": _get(manifest, "model", "name"),
        "model_type": _get(manifest, "model", "config", "model_type"),
        "engine": _get(manifest, "engine", "name"),
        "engine_version": _get(manifest, "engine", "version"),
        "hardware_profile": _get(manifest, "hardware", "profile"),
        "gpu_name": _get(manifest, "hardware", "gpu_name"),
        "num_gpus": _get(manifest, "hardware", "num_gpus"),
        "dtype_weights": _get(manifest, "dtypes", "weights"),
        "dtype_experts": _get(manifest, "dtypes", "experts"),
        "dtype_embeddings": _get(manifest, "dtypes", "embeddings") or _get(manifest, "dtypes", "weights"),
        "dtype_kv": _get(manifest, "dtypes", "kv"),
        "dtype_compute": _get(manifest, "dtypes", "compute"),
        "load_pattern": _get(manifest, "load", "pattern"),
        "concurrency": _get(manifest, "load", "concurrency"),
        "request_rate_per_s": _get(manifest, "load", "request_rate_per_s"),
        "arrival": _get(manifest, "load", "arrival"),
        "burstiness": _get(manifest, "load", "burstiness"),
        "num_requests": _get(manifest, "load", "num_requests"),
        "duration_s": _get(manifest, "load", "duration_s"),
        "max_tokens": _get(manifest, "load", "max_tokens"),
        "seed": _get(manifest, "load", "seed"),
        "dataset": _dataset(manifest),
    }


def _requests(summary: Mapping[str, Any]) -> dict[str, Scalar]:
    req, tp = summary.get("requests") or {}, summary.get("throughput") or {}
    row: dict[str, Scalar] = {
        "measured_requests": req.get("measured"),
        "completed_requests": req.get("completed"),
        "error_requests": req.get("errors"),
        "error_rate": req.get("error_rate"),
        "wall_s": tp.get("wall_s"),
        "requests_per_s": tp.get("requests_per_s"),
        "input_tokens": tp.get("input_tokens"),
        "output_tokens": tp.get("output_tokens"),
        "input_tokens_per_s": tp.get("input_tokens_per_s"),
        "output_tokens_per_s": tp.get("output_tokens_per_s"),
    }
    for prefix, key in LATENCIES:
        for stat in LATENCY_STATS:
            row[f"{prefix}_{stat}_s"] = _get(summary, "latency", key, stat)
    return row


def _load_and_goodput(summary: Mapping[str, Any]) -> dict[str, Scalar]:
    load, good, client = summary.get("load") or {}, summary.get("goodput") or {}, summary.get("client") or {}
    slo = good.get("slo") or {}
    return {
        "mean_in_flight_requests": load.get("mean_in_flight"),
        "max_in_flight_requests": load.get("max_in_flight"),
        "submit_rate_per_s": load.get("submit_rate_per_s"),
        **{f"slo_{key}": slo.get(key) for key in ("ttft_s", "tpot_s", "itl_s", "e2e_latency_s")},
        "goodput_fraction": good.get("fraction"),
        "goodput_requests_per_s": good.get("requests_per_s"),
        "goodput_output_tokens_per_s": good.get("output_tokens_per_s"),
        "client_cpu_fraction": client.get("cpu_utilisation"),
        "client_loop_lag_p99_s": _get(client, "loop_lag_s", "p99"),
        "client_bound": client.get("client_bound"),
    }


def _phases(summary: Mapping[str, Any]) -> dict[str, Scalar]:
    row: dict[str, Scalar] = {}
    for phase in PHASES:
        entry = _get(summary, "phases", phase) or {}
        row[f"{phase}_passes"] = entry.get("passes")
        row[f"{phase}_tokens_per_s"] = entry.get("tokens_per_s")
        row[f"{phase}_step_latency_p50_s"] = _get(entry, "step_latency_s", "p50")
        row[f"{phase}_step_latency_p90_s"] = _get(entry, "step_latency_s", "p90")
        row[f"{phase}_bytes"] = entry.get("bytes")
        row[f"{phase}_flops"] = entry.get("flops")
        row[f"{phase}_time_s"] = entry.get("time_s")
        for metric in ("s_mbu", "s_mfu"):
            row[f"{phase}_{metric}"] = entry.get(metric)
            row[f"{phase}_{metric}_p50"] = entry.get(f"{metric}_p50")
            row[f"{phase}_{metric}_p90"] = entry.get(f"{metric}_p90")
        row[f"{phase}_expert_activation_source"] = entry.get("expert_activation_source")
    return row


def _json_list(value: Any) -> str | None:
    """A list of numbers (or nulls) as a compact JSON text cell (``"[7.5,8.0,null]"``); anything else ``None``."""
    if not isinstance(value, list) or not all(
        v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in value
    ):
        return None
    return orjson.dumps(value).decode()


def _experts(summary: Mapping[str, Any]) -> dict[str, Scalar]:
    """Routed-expert activity; the per-layer lists are JSON text cells (one entry per MoE layer, in order)."""
    experts = summary.get("experts") or {}
    row: dict[str, Scalar] = {
        "expert_activation_source": experts.get("activation_source"),
        "num_experts": experts.get("num_experts"),
        "experts_top_k": experts.get("top_k"),
        "num_moe_layers": experts.get("num_moe_layers"),
    }
    for phase in ("prefill", "decode"):
        row[f"{phase}_mean_experts_active"] = _get(experts, phase, "mean_active")
        row[f"{phase}_uniform_experts_expected"] = _get(experts, phase, "uniform_expectation")
        row[f"{phase}_experts_active_per_layer"] = _json_list(_get(experts, phase, "mean_active_per_layer"))
    row["expert_load_max_over_mean"] = _get(experts, "load_balance", "max_over_mean")
    row["expert_load_cv"] = _get(experts, "load_balance", "cv")
    row["expert_load_max_over_mean_per_layer"] = _json_list(_get(experts, "load_balance", "max_over_mean_per_layer"))
    return row


def _hardware_energy_cost(summary: Mapping[str, Any]) -> dict[str, Scalar]:
    energy, cost = summary.get("energy") or {}, summary.get("cost") or {}
    ceilings = _get(summary, "hardware", "ceilings") or {}
    return {
        "ceiling_memory_bandwidth_bytes_per_s": ceilings.get("memory_bandwidth_bytes_per_s"),
        "ceiling_peak_flops_per_s": ceilings.get("peak_flops_per_s"),
        "ceiling_compute_dtype": ceilings.get("compute_dtype"),
        "ceiling_source": ceilings.get("source"),
        "energy_source": energy.get("energy_source"),
        "power_sampling_period_s": energy.get("sampling_period_s"),
        "energy_coverage_fraction": energy.get("coverage_fraction"),
        "energy_j": energy.get("energy_j"),
        "mean_power_w": energy.get("mean_power_w"),
        "energy_per_output_token_j": energy.get("energy_per_output_token_j"),
        "energy_per_request_j": energy.get("energy_per_request_j"),
        "prefill_energy_j": _get(energy, "phase_energy_j", "prefill"),
        "decode_energy_j": _get(energy, "phase_energy_j", "decode"),
        "mixed_energy_j": _get(energy, "phase_energy_j", "mixed"),
        "usd_per_gpu_hour": cost.get("usd_per_gpu_hour"),
        "usd_per_gpu_hour_source": cost.get("usd_per_gpu_hour_source"),
        "usd_per_kwh": _get(cost, "inputs", "usd_per_kwh"),
        "energy_cost_source": cost.get("energy_cost_source"),
        "energy_usd": cost.get("energy_usd"),
        "total_usd": cost.get("total_usd"),
        "usd_per_1m_output_tokens": cost.get("usd_per_1m_output_tokens"),
        "usd_per_request": cost.get("usd_per_request"),
        "deployment_capital_usd": cost.get("deployment_capital_usd"),
    }


def _server(summary: Mapping[str, Any]) -> dict[str, Scalar]:
    """Engine-side figures from the server's ``/metrics`` (``summary["server"]``; all empty when not scraped)."""
    server = summary.get("server") or {}
    row: dict[str, Scalar] = {}
    for key in ("ttft_s", "tpot_s", "itl_s", "queue_time_s", "e2e_latency_s"):
        prefix = key.removesuffix("_s")
        row[f"server_{prefix}_mean_s"] = _get(server, "latency", key, "mean_s")
        if key == "ttft_s":
            row["server_ttft_p99_s"] = _get(server, "latency", key, "p99_s")
    row["server_step_mean_tokens"] = _get(server, "tokens_per_step", "mean_tokens")
    row["server_generation_tokens"] = _get(server, "counters", "generation_tokens")
    row["server_preemptions"] = _get(server, "counters", "preemptions")
    row["server_prefix_cache_hit_rate"] = _get(server, "counters", "prefix_cache_hit_rate")
    row["server_kv_cache_usage_mean_fraction"] = _get(server, "gauges", "kv_cache_usage", "mean_fraction")
    row["server_kv_cache_usage_max_fraction"] = _get(server, "gauges", "kv_cache_usage", "max_fraction")
    row["server_max_running_requests"] = _get(server, "gauges", "requests_running", "max_requests")
    row["server_max_waiting_requests"] = _get(server, "gauges", "requests_waiting", "max_requests")
    return row


def _accuracy(manifest: Mapping[str, Any], summary: Mapping[str, Any]) -> dict[str, Scalar]:
    """The accuracy axis (``summary["accuracy"]``; all empty for a performance-only run) and the top-k override."""
    acc = summary.get("accuracy") or {}
    fixed = summary.get("fixed_length") or {}
    return {
        "top_k_override": _get(manifest, "model", "top_k_override"),
        "accuracy_task": acc.get("task"),
        "accuracy_metric": acc.get("metric"),
        "accuracy": acc.get("value"),
        "accuracy_stderr": acc.get("stderr"),
        "accuracy_samples": acc.get("n"),
        "accuracy_no_answer_rate": acc.get("no_answer_rate"),
        "accuracy_failed_requests": acc.get("failed_requests"),
        "fixed_prompt_tokens": fixed.get("prompt_tokens"),
        "fixed_output_tokens": fixed.get("output_tokens"),
        "fixed_length_exact": fixed.get("exact"),
    }


def _versions(manifest: Mapping[str, Any]) -> dict[str, Scalar]:
    """Package versions that shaped the numbers (``run.json`` ``versions``: capbench's environment; ``engine.versions``:
    a launched vLLM's own environment) and the locks those environments were built from."""
    own, engine = manifest.get("versions") or {}, _get(manifest, "engine", "versions") or {}
    return {
        "python_version": own.get("python"),
        "torch_version": _get(own, "packages", "torch"),
        "transformers_version": _get(own, "packages", "transformers"),
        "lm_eval_version": _get(own, "packages", "lm_eval"),
        "lock_sha256": _get(own, "lock", "sha256"),
        "lock_matches": _get(own, "lock", "matches"),
        "engine_torch_version": _get(engine, "packages", "torch"),
        "engine_transformers_version": _get(engine, "packages", "transformers"),
        "engine_lock_sha256": _get(engine, "lock", "sha256"),
        "engine_lock_matches": _get(engine, "lock", "matches"),
    }


def summary_row(manifest: Mapping[str, Any], summary: Mapping[str, Any]) -> dict[str, Scalar]:
    """One run as one flat row: identity and load from ``run.json``, figures from ``summary.json``.

    Every key is always present (a stable schema); ``None`` = not measured.
    """
    row = {
        **_identity(manifest, summary),
        **_accuracy(manifest, summary),
        **_requests(summary),
        **_load_and_goodput(summary),
        **_phases(summary),
        **_experts(summary),
        **_hardware_energy_cost(summary),
        **_server(summary),
        **_versions(manifest),
    }
    return {key: _scalar(value) for key, value in row.items()}


COLUMNS: tuple[str, ...] = tuple(summary_row({}, {}))
"""Every column :func:`summary_row` writes, in order."""


def _load_run(run_dir: Path) -> dict[str, Scalar]:
    if not run_dir.exists():
        raise CapbenchError(f"run directory {run_dir} does not exist")
    if not run_dir.is_dir():
        raise CapbenchError(f"{run_dir} is not a directory (expected a capbench run directory)")
    manifest = read_manifest(run_dir)
    path = run_dir / SUMMARY_FILE
    if not path.is_file():
        raise CapbenchError(f"{run_dir} has no {SUMMARY_FILE}: score it first with `capbench score {run_dir}`")
    summary = read_json_object(path, fix=f"; re-score with `capbench score {run_dir}`")
    return summary_row(manifest, summary)


def export_runs(run_dirs: Iterable[Path | str]) -> pd.DataFrame:
    """One row per run directory (each must hold ``run.json`` and ``summary.json``).

    Columns: :data:`COLUMNS` in order, then any others in first-seen order (union over runs). A column
    whose values are all integers (or missing) becomes pandas' nullable ``Int64``, so counts are written
    as integers and a missing value stays an empty cell; floats are written at full precision.
    """
    rows = [_load_run(Path(run_dir)) for run_dir in run_dirs]
    if not rows:
        raise CapbenchError("no run directories given")
    columns = list(COLUMNS)
    seen = set(columns)
    for row in rows:
        for key in row:
            if key not in seen:
                seen.add(key)
                columns.append(key)
    frame = pd.DataFrame.from_records(rows, columns=columns)
    for column in columns:
        values = [row.get(column) for row in rows]
        present = [v for v in values if v is not None]
        if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
            frame[column] = pd.array(values, dtype="Int64")  # counts stay integers, missing stays empty
    return frame


def write_csv(frame: pd.DataFrame, output: Path | str | None) -> None:
    """Write ``frame`` as CSV to ``output`` (``None`` or ``-`` = stdout); empty cells for missing values."""
    if output is None or str(output) == "-":
        frame.to_csv(sys.stdout, index=False)
        return
    path = Path(output)
    try:
        with path.open("w", newline="", encoding="utf-8") as f:
            frame.to_csv(f, index=False)
    except OSError as exc:
        raise CapbenchError(f"cannot write the CSV to {path}: {exc.strerror or exc}") from exc
