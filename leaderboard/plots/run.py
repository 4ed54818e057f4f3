"""Figures of one run: roofline, S-MBU / S-MFU bars, expert activation per layer, latency percentiles."""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping

import pandas as pd
import plotly.graph_objects as go

from capbench.leaderboard.escape import plotly_text
from capbench.leaderboard.plots.common import (
    EXPERT_PHASES,
    LATENCY_METRICS,
    LATENCY_STATS,
    PHASE_COLORS,
    RIDGE_TRACE,
    ROOF_TRACE,
    ROOFLINE_PHASES,
    UTILIZATION_PHASES,
    add_notes,
    cell_text,
    fmt_value,
    message_figure,
    percent,
    row_label,
)
from capbench.leaderboard.table import MISSING, cell_number

# --- per-run figures -----------------------------------------------------------------------------------------


def _num_gpus(row: Mapping[str, object]) -> int:
    """The GPU count the per-GPU ceilings are multiplied by: ``num_gpus`` when ≥ 1, else 1 (CPU or unknown)."""
    count = cell_number(row.get("num_gpus"))
    return int(count) if count is not None and count >= 1 else 1


def roofline(row: Mapping[str, object]) -> go.Figure:
    """Roofline of one run on log-log axes: arithmetic intensity [FLOP/byte] vs achieved throughput [FLOP/s].

    The roof is min(N × peak, N × bandwidth × I) from ``ceiling_peak_flops_per_s`` [FLOP/s] and
    ``ceiling_memory_bandwidth_bytes_per_s`` [bytes/s] (per GPU; N = ``num_gpus``), with its ridge point at
    I = peak / bandwidth. Each phase (prefill, decode, mixed) with a positive
    ``<phase>_arithmetic_intensity_flop_per_byte`` and ``<phase>_achieved_flops_per_s`` (computed by the metrics,
    docs/metrics.md) is one marker at that point, with S-MBU and S-MFU in its hover.
    Missing ceilings or phase data are named in a note.
    """
    label = row_label(row)
    title = f"Roofline (FLOP/s vs FLOP/byte)<br><sup>{label}</sup>"
    notes: list[str] = []
    fig = go.Figure()
    xs: list[float] = []

    points: list[tuple[str, float, float, str]] = []
    for phase in ROOFLINE_PHASES:
        values = {
            part: cell_number(row.get(f"{phase}_{part}"))
            for part in ("arithmetic_intensity_flop_per_byte", "achieved_flops_per_s", "bytes", "time_s")
        }
        intensity, achieved = values["arithmetic_intensity_flop_per_byte"], values["achieved_flops_per_s"]
        if intensity is None or achieved is None:
            notes.append(f"{phase}: no arithmetic intensity or achieved FLOP/s measured, not plotted.")
            continue
        if intensity <= 0 or achieved <= 0:
            notes.append(f"{phase}: a value ≤ 0 cannot be placed on log axes.")
            continue
        bandwidth_used = values["bytes"] / values["time_s"] if values["bytes"] and values["time_s"] else None
        hover = "<br>".join(
            [
                f"<b>{label}</b> · {phase}",
                f"Arithmetic intensity: {fmt_value(intensity, 'FLOP/byte')}",
                f"Achieved: {fmt_value(achieved, 'FLOP/s')}",
                f"Achieved bandwidth: {fmt_value(bandwidth_used, 'bytes/s')}",
                f"S-MBU: {fmt_value(percent(row.get(f'{phase}_s_mbu')), '%')}",
                f"S-MFU: {fmt_value(percent(row.get(f'{phase}_s_mfu')), '%')}",
            ]
        )
        points.append((phase, intensity, achieved, hover))
        xs.append(intensity)

    bandwidth = cell_number(row.get("ceiling_memory_bandwidth_bytes_per_s"))
    peak = cell_number(row.get("ceiling_peak_flops_per_s"))
    if bandwidth is not None and peak is not None and bandwidth > 0 and peak > 0:
        gpus = _num_gpus(row)
        ridge = peak / bandwidth
        xs.append(ridge)
        x_min, x_max = min(xs) / 10.0, max(xs) * 10.0
        dtype = plotly_text(cell_text(row.get("ceiling_compute_dtype")) or MISSING)
        source = plotly_text(cell_text(row.get("ceiling_source")) or MISSING)
        scale = f" × {gpus} GPUs" if gpus > 1 else ""
        roof_hover = (
            f"Peak: {fmt_value(peak, 'FLOP/s')}{scale} ({dtype})<br>Bandwidth: {fmt_value(bandwidth, 'bytes/s')}{scale}"
            f"<br>Source: {source}"
        )
        fig.add_trace(
            go.Scatter(
                name=ROOF_TRACE + (f" ({gpus} GPUs)" if gpus > 1 else ""),
                x=[x_min, ridge, x_max],
                y=[gpus * bandwidth * x_min, gpus * peak, gpus * peak],
                mode="lines",
                line={"color": "#333333", "width": 2},
                hovertext=[roof_hover] * 3,
                hoverinfo="text",
            )
        )
        fig.add_trace(
            go.Scatter(
                name=RIDGE_TRACE,
                x=[ridge],
                y=[gpus * peak],
                mode="markers",
                marker={"symbol": "diamond", "size": 10, "color": "#333333"},
                hovertext=[f"Ridge point: {fmt_value(ridge, 'FLOP/byte')}, {fmt_value(gpus * peak, 'FLOP/s')}"],
                hoverinfo="text",
            )
        )
    else:
        missing_ceilings = [
            name
            for name, value in (("memory bandwidth", bandwidth), ("peak FLOP/s", peak))
            if value is None or value <= 0
        ]
        notes.insert(0, f"No hardware ceiling for {' and '.join(missing_ceilings)}: roof not drawn.")

    if not points and not fig.data:
        return message_figure(["No hardware ceilings and no phase bytes/FLOPs/time for this run.", *notes], title)
    for phase, intensity, achieved, hover in points:
        fig.add_trace(
            go.Scatter(
                name=phase,
                x=[intensity],
                y=[achieved],
                mode="markers",
                marker={"size": 13, "color": PHASE_COLORS[phase], "line": {"width": 1, "color": "#333333"}},
                hovertext=[hover],
                hoverinfo="text",
            )
        )
    fig.update_layout(
        title={"text": title},
        xaxis={"title": {"text": "Arithmetic intensity (FLOP/byte)"}, "type": "log"},
        yaxis={"title": {"text": "Achieved throughput (FLOP/s)"}, "type": "log"},
        template="plotly_white",
    )
    add_notes(fig, notes)
    return fig


def utilization_bars(row: Mapping[str, object]) -> go.Figure:
    """Grouped bars of S-MBU and S-MFU [%] per phase, with a dashed line at 100 % (the hardware ceiling).

    A phase appears when either value was measured; a value that was not measured has no bar (``None``, never
    0) and is named in a note.
    """
    label = row_label(row)
    phases: list[str] = []
    mbu: list[float | None] = []
    mfu: list[float | None] = []
    missing: list[str] = []
    for phase in UTILIZATION_PHASES:
        phase_mbu, phase_mfu = percent(row.get(f"{phase}_s_mbu")), percent(row.get(f"{phase}_s_mfu"))
        if phase_mbu is None and phase_mfu is None:
            missing.append(f"{phase} (S-MBU and S-MFU)")
            continue
        phases.append(phase)
        mbu.append(phase_mbu)
        mfu.append(phase_mfu)
        missing.extend(
            f"{phase} {name}" for name, value in (("S-MBU", phase_mbu), ("S-MFU", phase_mfu)) if value is None
        )
    title = f"Utilization vs hardware ceilings (%)<br><sup>{label}</sup>"
    notes = [f"Not measured (no bar): {', '.join(missing)}."] if missing else []
    if not phases:
        return message_figure(["No S-MBU or S-MFU measured for this run."], title)

    fig = go.Figure()
    for name, values in (("S-MBU", mbu), ("S-MFU", mfu)):
        fig.add_trace(
            go.Bar(
                name=name,
                x=phases,
                y=values,
                hovertext=[
                    f"<b>{label}</b><br>{phase} {name}: {fmt_value(value, '%')}"
                    for phase, value in zip(phases, values, strict=True)
                ],
                hoverinfo="text",
            )
        )
    top = max([value for value in (*mbu, *mfu) if value is not None], default=0.0)
    fig.add_hline(
        y=100.0,
        line={"dash": "dash", "color": "#d62728", "width": 2},
        annotation_text="100 % = hardware ceiling",
        annotation_position="top left",
    )
    fig.update_layout(
        title={"text": title},
        barmode="group",
        xaxis={"title": {"text": "Phase"}},
        yaxis={"title": {"text": "Utilization (% of hardware ceiling)"}, "range": [0.0, max(110.0, 1.1 * top)]},
        template="plotly_white",
    )
    add_notes(fig, notes)
    return fig


def _per_layer(cell: object) -> tuple[list[float | None] | None, str | None]:
    """Parse a ``<phase>_experts_active_per_layer`` cell: ``(values, None)``, or ``(None, why)``.

    Accepts a JSON list text (or an already-parsed list) of numbers and nulls; a null or non-finite entry is
    ``None``. Anything else (bad JSON, not a list, a text or bool entry) is reported, never raised.
    """
    parsed: object
    if isinstance(cell, str):
        if not cell.strip():
            return None, "not measured"
        try:
            parsed = json.loads(cell)
        except (ValueError, RecursionError):
            return None, "not a valid JSON list"
    elif cell is None or cell is pd.NA or (isinstance(cell, float) and math.isnan(cell)):
        return None, "not measured"
    else:
        parsed = cell
    if not isinstance(parsed, list | tuple):
        return None, "not a JSON list"
    values: list[float | None] = []
    for entry in parsed:
        if entry is None:
            values.append(None)
        elif isinstance(entry, bool) or not isinstance(entry, numbers.Real):
            return None, "a list entry is not a number"
        else:
            values.append(cell_number(entry))
    if not values:
        return None, "an empty list"
    return values, None


def expert_activation(row: Mapping[str, object]) -> go.Figure:
    """Mean distinct routed experts active per MoE layer per engine step [experts], prefill and decode bars.

    Each phase's uniform-routing expectation ``<phase>_uniform_experts_expected`` [experts] is a dashed line over
    all layers; ``experts_top_k`` and ``num_experts`` are in the title. Unreadable or missing lists are notes.
    """
    label = row_label(row)
    top_k, num_experts = cell_number(row.get("experts_top_k")), cell_number(row.get("num_experts"))
    num_layers = cell_number(row.get("num_moe_layers"))
    title = (
        f"Experts active per MoE layer per step (top-k {fmt_value(top_k)} of {fmt_value(num_experts)})"
        f"<br><sup>{label}</sup>"
    )
    notes: list[str] = []
    series: dict[str, list[float | None]] = {}
    for phase in EXPERT_PHASES:
        column = f"{phase}_experts_active_per_layer"
        values, problem = _per_layer(row.get(column))
        if values is None:
            notes.append(f"{phase}: per-layer activation {problem}.")
            continue
        series[phase] = values
        gaps = sum(1 for value in values if value is None)
        if gaps:
            notes.append(f"{phase}: {gaps} of {len(values)} layers not measured (no bar).")
        if num_layers is not None and len(values) != int(num_layers):
            notes.append(f"{phase}: {len(values)} layers in the list but num_moe_layers is {fmt_value(num_layers)}.")
    expected = {phase: cell_number(row.get(f"{phase}_uniform_experts_expected")) for phase in EXPERT_PHASES}
    if not series and all(value is None for value in expected.values()):
        return message_figure(["No expert activation measured for this run.", *notes], title)

    layer_count = max([len(values) for values in series.values()] + [int(num_layers or 0), 1])
    fig = go.Figure()
    for phase, values in series.items():
        fig.add_trace(
            go.Bar(
                name=f"{phase} measured",
                x=list(range(len(values))),
                y=values,
                marker={"color": PHASE_COLORS[phase]},
                hovertext=[
                    f"<b>{label}</b><br>{phase}, layer {layer}: {fmt_value(value, 'experts')}"
                    for layer, value in enumerate(values)
                ],
                hoverinfo="text",
            )
        )
    for phase, value in expected.items():
        if value is None:
            notes.append(f"{phase}: no uniform-routing expectation.")
            continue
        fig.add_trace(
            go.Scatter(
                name=f"{phase} uniform expectation",
                x=[-0.5, layer_count - 0.5],
                y=[value, value],
                mode="lines",
                line={"dash": "dash", "color": PHASE_COLORS[phase], "width": 2},
                hovertext=[f"{phase} uniform-routing expectation: {fmt_value(value, 'experts')}"] * 2,
                hoverinfo="text",
            )
        )
    fig.update_layout(
        title={"text": title},
        barmode="group",
        xaxis={"title": {"text": "MoE layer (index)"}, "dtick": 1 if layer_count <= 64 else None},
        yaxis={"title": {"text": "Mean distinct experts active per step (experts)"}, "rangemode": "tozero"},
        template="plotly_white",
    )
    add_notes(fig, notes)
    return fig


def latency_percentiles(row: Mapping[str, object]) -> go.Figure:
    """TTFT, TPOT, ITL and E2E latency: mean, p50, p90, p99 and max [s] as grouped bars on a log y axis.

    A value that was not measured, or is ≤ 0 (not drawable on a log axis), has no bar and is named in a note.
    """
    label = row_label(row)
    title = f"Request latency (s, log scale)<br><sup>{label}</sup>"
    names = [name for _, name in LATENCY_METRICS]
    table: dict[str, list[float | None]] = {stat: [] for stat in LATENCY_STATS}
    notes: list[str] = []
    for metric, name in LATENCY_METRICS:
        missing: list[str] = []
        not_positive: list[str] = []
        for stat in LATENCY_STATS:
            value = cell_number(row.get(f"{metric}_{stat}_s"))
            if value is None:
                missing.append(stat)
            elif value <= 0:
                not_positive.append(stat)
                value = None
            table[stat].append(value)
        if len(missing) == len(LATENCY_STATS):
            notes.append(f"{name}: not measured.")
        elif missing:
            notes.append(f"{name}: {', '.join(missing)} not measured.")
        if not_positive:
            notes.append(f"{name}: {', '.join(not_positive)} ≤ 0 s, not drawable on a log axis.")
    if all(value is None for values in table.values() for value in values):
        return message_figure(["No request latency measured for this run.", *notes], title)

    fig = go.Figure()
    for stat in LATENCY_STATS:
        fig.add_trace(
            go.Bar(
                name=stat,
                x=names,
                y=table[stat],
                hovertext=[
                    f"<b>{label}</b><br>{name} {stat}: {fmt_value(value, 's')}"
                    for name, value in zip(names, table[stat], strict=True)
                ],
                hoverinfo="text",
            )
        )
    fig.update_layout(
        title={"text": title},
        barmode="group",
        xaxis={"title": {"text": "Latency metric"}},
        yaxis={"title": {"text": "Latency (s, log scale)"}, "type": "log"},
        template="plotly_white",
    )
    add_notes(fig, notes)
    return fig
