"""Markdown for one run's provenance, energy and cost, and for the load warnings.

Every value that comes from the results file (names, versions, sources, file names, and numbers after
formatting) passes through :func:`capbench.leaderboard.escape.escape_markdown`, so a model called
``<script>…`` or ``[x](http://…)`` shows as that text; only the field labels are Markdown. A value that was
not measured shows as "—" (U+2014), never 0.

Units: memory bandwidth in GB/s (1 GB = 10⁹ bytes), peak compute in TFLOP/s (10¹² FLOP/s), energy in joules
per output token, cost in US dollars per 10⁶ output tokens and per GPU-hour, accuracy and its standard error
in percent of the task metric (100 × fraction).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from capbench.leaderboard.data import LoadWarning
from capbench.leaderboard.escape import escape_markdown
from capbench.leaderboard.table import MISSING, cell_number, cell_text, format_number, format_value, load_text

MAX_WARNINGS_SHOWN = 100
"""warnings_markdown lists at most this many, then says how many more there are."""


def _esc(text: str | None) -> str:
    """Escaped text, "—" when missing (the dash itself needs no escaping)."""
    return MISSING if text is None or text == MISSING else escape_markdown(text)


def _value(row: Mapping[str, object], column: str) -> str:
    """The column's display text (:func:`format_value`), escaped."""
    return _esc(format_value(column, row.get(column)))


def _scaled(row: Mapping[str, object], column: str, scale: float, unit: str) -> str:
    number = cell_number(row.get(column))
    return MISSING if number is None else f"{escape_markdown(format_number(number / scale))} {unit}"


def _with_unit(row: Mapping[str, object], column: str, unit: str) -> str:
    text = _value(row, column)
    return text if text == MISSING else f"{text} {unit}"


def _gpus(row: Mapping[str, object]) -> str:
    name, count = cell_text(row.get("gpu_name")), cell_number(row.get("num_gpus"))
    if name is None and (count is None or count == 0):
        return "none (CPU)" if count == 0 else MISSING
    return f"{_esc(name)} × {_value(row, 'num_gpus')}"


def _engine(row: Mapping[str, object]) -> str:
    engine, version = cell_text(row.get("engine")), cell_text(row.get("engine_version"))
    return f"{_esc(engine)} {_esc(version)}" if version is not None else _esc(engine)


def _dtypes(row: Mapping[str, object]) -> str:
    parts = ("weights", "experts", "embeddings", "kv", "compute")
    return ", ".join(f"{part} {_value(row, f'dtype_{part}')}" for part in parts)


def _versions(row: Mapping[str, object]) -> str:
    """Python, torch, transformers, lm-eval (and a launched engine's own torch/transformers), and the locks."""
    parts = [
        f"Python {_value(row, 'python_version')}",
        f"torch {_value(row, 'torch_version')}",
        f"transformers {_value(row, 'transformers_version')}",
        f"lm-eval {_value(row, 'lm_eval_version')}",
        f"lock {_value(row, 'lock_sha256')} (matches: {_value(row, 'lock_matches')})",
    ]
    if cell_text(row.get("engine_torch_version")) is not None:
        parts.append(
            f"engine: torch {_value(row, 'engine_torch_version')}, transformers "
            f"{_value(row, 'engine_transformers_version')}, lock {_value(row, 'engine_lock_sha256')} "
            f"(matches: {_value(row, 'engine_lock_matches')})"
        )
    return "; ".join(parts)


def _accuracy(row: Mapping[str, object]) -> str:
    value = _with_unit(row, "accuracy", "%")
    if value == MISSING:
        return MISSING
    return f"{value} ± {_with_unit(row, 'accuracy_stderr', '%')} (n = {_value(row, 'accuracy_samples')})"


def _task(row: Mapping[str, object]) -> str:
    task = cell_text(row.get("accuracy_task"))
    if task is None:
        return "none (performance only)"
    return f"{escape_markdown(task)}, metric {_value(row, 'accuracy_metric')}"


def _cost(row: Mapping[str, object]) -> str:
    per_token = _with_unit(row, "usd_per_1m_output_tokens", "USD / 1M output tokens")
    cpu = row.get("num_gpus") == 0
    per_hour = _with_unit(row, "usd_per_gpu_hour", "USD / machine-hour (CPU run)" if cpu else "USD / GPU-hour")
    return f"{per_token} (at {per_hour}, source: {_value(row, 'usd_per_gpu_hour_source')})"


def run_details_markdown(row: Mapping[str, object]) -> str:
    """One run's provenance, configuration, accuracy, energy and cost as a Markdown list (values escaped)."""
    load = row.get("load")
    load = cell_text(load) if load is not None else load_text(row)
    ceilings = (
        f"memory bandwidth {_scaled(row, 'ceiling_memory_bandwidth_bytes_per_s', 1e9, 'GB/s')}, "
        f"peak {_scaled(row, 'ceiling_peak_flops_per_s', 1e12, 'TFLOP/s')} "
        f"({_value(row, 'ceiling_compute_dtype')}), source: {_value(row, 'ceiling_source')}"
    )
    source_row = cell_number(row.get("source_row"))
    lines = [
        f"#### Run {_value(row, 'run_id')}",
        "",
        f"- **Model:** {_value(row, 'model')}",
        f"- **Engine:** {_engine(row)}",
        f"- **Hardware profile:** {_value(row, 'hardware_profile')}",
        f"- **GPUs:** {_gpus(row)}",
        f"- **Ceilings used:** {ceilings}",
        f"- **Spec version:** {_value(row, 'spec_version')}; **summary schema version:** "
        f"{_value(row, 'summary_schema_version')}; **capbench version:** {_value(row, 'capbench_version')}",
        f"- **Status:** {_value(row, 'status')}",
        f"- **Versions:** {_versions(row)}",
        f"- **Dtypes:** {_dtypes(row)}",
        f"- **Load:** {_esc(load)}; **dataset:** {_value(row, 'dataset')}",
        f"- **Top-k override:** {_value(row, 'top_k_override')}",
        f"- **Accuracy task:** {_task(row)}",
        f"- **Accuracy:** {_accuracy(row)}",
        f"- **Energy:** {_with_unit(row, 'energy_per_output_token_j', 'J / output token')} "
        f"(source: {_value(row, 'energy_source')})",
        f"- **Cost:** {_cost(row)}",
        f"- **Source:** {_value(row, 'source_file')}, row "
        f"{MISSING if source_row is None else escape_markdown(format_number(source_row))}",
    ]
    return "\n".join(lines) + "\n"


def warnings_markdown(warnings: Sequence[LoadWarning]) -> str:
    """A Markdown list of the load warnings ("" when none), each escaped; at most :data:`MAX_WARNINGS_SHOWN`."""
    if not warnings:
        return ""
    count = len(warnings)
    lines = [f"**{count} {'problem' if count == 1 else 'problems'} while loading the results:**", ""]
    lines.extend(f"- {escape_markdown(str(warning))}" for warning in warnings[:MAX_WARNINGS_SHOWN])
    if count > MAX_WARNINGS_SHOWN:
        lines.append(f"- … and {count - MAX_WARNINGS_SHOWN} more")
    return "\n".join(lines) + "\n"
