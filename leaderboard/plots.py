"""Plotly figures for the CAP leaderboard (no Gradio here: the app places them).

Every figure is a :class:`plotly.graph_objects.Figure`; every text that comes from the results file (run labels,
ceiling sources, notes naming runs) passes through :func:`capbench.leaderboard.escape.plotly_text` first, and hover
text is given as ``hovertext`` with ``hoverinfo="text"`` (no ``hovertemplate``), so a label can neither inject
HTML (plotly renders ``<a href>``) nor template fields (``%{…}``). A value that was not measured is never drawn as
0: it is left out (``None`` in the trace) and a note annotation (``name="notes"``) at the bottom says what is
missing and why.

Figures and their formulas (units in brackets):

* :func:`cap_scatter`: x = cost [USD / 1M output tokens], y = accuracy [%] = 100 × the ``accuracy`` fraction, the
  third dimension (throughput [output tokens/s] or TPOT mean [s]) as marker colour (with a colour bar) and size
  (size [px] = 10 + 20 × value / max value of the plotted runs). The cost-accuracy Pareto front
  (:func:`capbench.leaderboard.pareto.cost_accuracy_front`: min cost, max accuracy) is its own trace,
  ``"Pareto front"``, a step line (``hv``: with a budget between two front costs the best accuracy is the cheaper
  point's).
* :func:`cap_radar`: the scores of :func:`capbench.leaderboard.radar.normalise` (ratio to the best selected run,
  in [0, 1], 1 = best) per axis, one closed polar trace per run.
* :func:`roofline`: arithmetic intensity I = flops / bytes [FLOP/byte] against achieved throughput
  P = flops / time_s [FLOP/s] per phase, under the roof min(N × peak, N × bandwidth × I) with N = ``num_gpus``
  (1 when 0 or missing: a CPU run) because the ceilings are per GPU; the ridge point is at
  I = peak / bandwidth [FLOP/byte], P = N × peak [FLOP/s].
* :func:`utilisation_bars`: S-MBU and S-MFU [%] = 100 × the exported fractions, per phase, against the 100 %
  hardware ceiling.
* :func:`expert_activation`: the mean number of distinct routed experts active per MoE layer per engine step
  [experts] (the ``<phase>_experts_active_per_layer`` JSON lists) against the uniform-routing expectation
  ``<phase>_uniform_experts_expected`` [experts].
* :func:`latency_percentiles`: TTFT, TPOT, ITL and E2E latency mean / p50 / p90 / p99 / max [s], log y axis.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Literal

import pandas as pd
import plotly.graph_objects as go

from capbench.leaderboard.escape import plotly_text
from capbench.leaderboard.pareto import cost_accuracy_front
from capbench.leaderboard.radar import NORMALISATION, RadarData
from capbench.leaderboard.table import MISSING, cell_number
from capbench.summary.columns import BY_NAME

COST_COLUMN = "usd_per_1m_output_tokens"
ACCURACY_COLUMN = "accuracy"
COST_TITLE = BY_NAME["usd_per_1m_output_tokens"].header
ACCURACY_TITLE = BY_NAME["accuracy"].header
PARETO_TRACE = "Pareto front"
ROOF_TRACE = "Roof"
RIDGE_TRACE = "Ridge point"
NOTES_NAME = "notes"
MESSAGE_NAME = "message"

#: The third dimension of :func:`cap_scatter`: column -> (title with unit, short name for notes).
THIRD_DIMENSIONS: dict[str, tuple[str, str]] = {
    "output_tokens_per_s": ("Throughput (output tokens/s)", "throughput"),
    "tpot_mean_s": ("TPOT mean (s)", "TPOT"),
}
ROOFLINE_PHASES: tuple[str, ...] = ("prefill", "decode", "mixed")
UTILISATION_PHASES: tuple[str, ...] = ("prefill", "decode", "mixed", "all")
EXPERT_PHASES: tuple[str, ...] = ("prefill", "decode")
LATENCY_METRICS: tuple[tuple[str, str], ...] = (
    ("ttft", "TTFT"),
    ("tpot", "TPOT"),
    ("itl", "ITL"),
    ("e2e_latency", "E2E latency"),
)
LATENCY_STATS: tuple[str, ...] = ("mean", "p50", "p90", "p99", "max")

_MARKER_MIN_PX = 10.0
_MARKER_SPAN_PX = 20.0
_PHASE_COLOURS: dict[str, str] = {"prefill": "#1f77b4", "decode": "#ff7f0e", "mixed": "#2ca02c", "all": "#7f7f7f"}


# --- value helpers -------------------------------------------------------------------------------------------


def _text(value: object) -> str | None:
    """Non-empty text (stripped), a number as text, or ``None`` when missing. Not escaped."""
    if isinstance(value, str):
        return value.strip() or None
    number = cell_number(value)
    if number is None:
        return None
    return str(int(number)) if number.is_integer() else f"{number:.4g}"


def _fmt(value: float | None, unit: str = "") -> str:
    """4 significant digits with the unit, or "—"."""
    if value is None:
        return MISSING
    return f"{value:.4g} {unit}".rstrip()


def _row_label(row: Mapping[str, object]) -> str:
    """The run's ``label`` (table.add_derived), else its ``run_id``, else "run"; escaped for plotly."""
    return plotly_text(_text(row.get("label")) or _text(row.get("run_id")) or "run")


def _frame_column(frame: pd.DataFrame, column: str) -> list[float | None]:
    """The column's values as finite floats or ``None``; all ``None`` when the frame lacks the column."""
    if column not in frame.columns:
        return [None] * len(frame)
    return [cell_number(value) for value in frame[column].tolist()]


def _frame_labels(frame: pd.DataFrame) -> list[str]:
    """Per row: the ``label`` column, else ``run_id``, else "row N"; escaped for plotly."""
    labels: list[str] = []
    label_values = frame["label"].tolist() if "label" in frame.columns else [None] * len(frame)
    run_ids = frame["run_id"].tolist() if "run_id" in frame.columns else [None] * len(frame)
    for position, (label, run_id) in enumerate(zip(label_values, run_ids, strict=True)):
        labels.append(plotly_text(_text(label) or _text(run_id) or f"row {position + 1}"))
    return labels


def _runs(count: int) -> str:
    return f"{count} run" if count == 1 else f"{count} runs"


# --- layout helpers ------------------------------------------------------------------------------------------


def _add_notes(fig: go.Figure, notes: Sequence[str]) -> None:
    """One left-aligned annotation below the plot, one note per line. ``notes`` must already be escaped."""
    if not notes:
        return
    fig.add_annotation(
        name=NOTES_NAME,
        text="<br>".join(notes),
        xref="paper",
        yref="paper",
        x=0.0,
        y=-0.18,
        xanchor="left",
        yanchor="top",
        align="left",
        showarrow=False,
        font={"size": 11, "color": "#555555"},
    )
    fig.update_layout(margin={"b": 90 + 16 * len(notes)})


def _message_figure(lines: Sequence[str], title: str | None = None) -> go.Figure:
    """A figure with no data and hidden axes whose centred annotation shows ``lines`` (already escaped)."""
    fig = go.Figure()
    fig.add_annotation(
        name=MESSAGE_NAME,
        text="<br>".join(lines),
        xref="paper",
        yref="paper",
        x=0.5,
        y=0.5,
        xanchor="center",
        yanchor="middle",
        showarrow=False,
        font={"size": 15},
    )
    fig.update_layout(
        title={"text": title} if title else None,
        xaxis={"visible": False},
        yaxis={"visible": False},
        template="plotly_white",
    )
    return fig


def empty_figure(message: str) -> go.Figure:
    """A figure with no data that shows ``message`` (plain text: it is escaped here) in its centre."""
    return _message_figure([plotly_text(message)])


# --- CAP scatter ---------------------------------------------------------------------------------------------


def cap_scatter(
    frame: pd.DataFrame, *, third: Literal["output_tokens_per_s", "tpot_mean_s"] = "output_tokens_per_s"
) -> go.Figure:
    """Cost [USD / 1M output tokens] against accuracy [%], with the third dimension as marker size and colour.

    Runs missing cost or accuracy are left out, and a note says how many and which value they lack. Runs whose
    third value is missing are drawn in grey at the smallest size in their own trace. The cost-accuracy Pareto
    front is the trace named ``"Pareto front"``. An empty selection gives a figure with a centred message.
    """
    if third not in THIRD_DIMENSIONS:
        raise ValueError(f"third must be one of {sorted(THIRD_DIMENSIONS)}, not {third!r}")
    third_title, third_name = THIRD_DIMENSIONS[third]
    title = f"Cost vs accuracy (marker size and colour: {third_title})"
    if len(frame) == 0:
        return _message_figure(["No runs selected."], title)

    costs = _frame_column(frame, COST_COLUMN)
    accuracies = _frame_column(frame, ACCURACY_COLUMN)
    thirds = _frame_column(frame, third)
    percents = [None if value is None else 100.0 * value for value in accuracies]
    labels = _frame_labels(frame)

    plotted = [i for i in range(len(frame)) if costs[i] is not None and accuracies[i] is not None]
    no_cost = sum(1 for value in costs if value is None)
    no_accuracy = sum(1 for value in accuracies if value is None)
    left_out = len(frame) - len(plotted)
    notes: list[str] = []
    if left_out:
        reasons = []
        if no_cost:
            reasons.append(f"{_runs(no_cost)} without cost")
        if no_accuracy:
            reasons.append(f"{_runs(no_accuracy)} without accuracy (performance-only)")
        notes.append(f"{_runs(left_out)} of {len(frame)} not plotted: " + ", ".join(reasons) + ".")
    if not plotted:
        lines = ["No selected run has both a cost and an accuracy.", *notes]
        return _message_figure(lines, title)

    def hover(i: int) -> str:
        return "<br>".join(
            [
                f"<b>{labels[i]}</b>",
                f"Cost: {_fmt(costs[i], 'USD / 1M output tokens')}",
                f"Accuracy: {_fmt(percents[i], '%')}",
                f"{third_title}: {_fmt(thirds[i])}",
            ]
        )

    fig = go.Figure()
    with_third = [i for i in plotted if thirds[i] is not None]
    without_third = [i for i in plotted if thirds[i] is None]
    if with_third:
        values = [thirds[i] or 0.0 for i in with_third]
        largest = max(values)
        sizes = [
            _MARKER_MIN_PX + _MARKER_SPAN_PX * (max(value, 0.0) / largest if largest > 0 else 0.0) for value in values
        ]
        fig.add_trace(
            go.Scatter(
                name="Runs",
                x=[costs[i] for i in with_third],
                y=[percents[i] for i in with_third],
                mode="markers",
                marker={
                    "size": sizes,
                    "color": values,
                    "colorscale": "Viridis",
                    "showscale": True,
                    "colorbar": {"title": {"text": third_title}},
                    "line": {"width": 1, "color": "#333333"},
                },
                hovertext=[hover(i) for i in with_third],
                hoverinfo="text",
            )
        )
    if without_third:
        fig.add_trace(
            go.Scatter(
                name=f"Runs ({third_name} not measured)",
                x=[costs[i] for i in without_third],
                y=[percents[i] for i in without_third],
                mode="markers",
                marker={"size": _MARKER_MIN_PX, "color": "#bbbbbb", "line": {"width": 1, "color": "#333333"}},
                hovertext=[hover(i) for i in without_third],
                hoverinfo="text",
            )
        )
        notes.append(f"{_runs(len(without_third))} without {third_name}: grey, smallest size.")

    points = pd.DataFrame(
        {COST_COLUMN: [costs[i] for i in plotted], ACCURACY_COLUMN: [accuracies[i] for i in plotted]},
        index=pd.Index(plotted, dtype="int64"),
        dtype="float64",
    )
    front = cost_accuracy_front(points, COST_COLUMN, ACCURACY_COLUMN)
    front_rows = [int(i) for i in front.index]
    fig.add_trace(
        go.Scatter(
            name=PARETO_TRACE,
            x=[costs[i] for i in front_rows],
            y=[percents[i] for i in front_rows],
            mode="lines+markers",
            line={"shape": "hv", "color": "#d62728", "width": 2, "dash": "dot"},
            marker={"size": 16, "symbol": "circle-open", "color": "#d62728", "line": {"width": 3}},
            hovertext=[hover(i) for i in front_rows],
            hoverinfo="text",
        )
    )
    fig.update_layout(
        title={"text": title},
        xaxis={"title": {"text": COST_TITLE}},
        yaxis={"title": {"text": ACCURACY_TITLE}},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "left", "x": 0.0},
        template="plotly_white",
    )
    _add_notes(fig, notes)
    return fig


# --- CAP radar -----------------------------------------------------------------------------------------------


def _shown(unit: str, value: float | None) -> tuple[float | None, str]:
    """A radar axis value in the unit the rest of the leaderboard shows: a ``fraction`` as percent."""
    if unit == "fraction":
        return (None if value is None else value * 100.0), "%"
    return value, unit


def _axis_title(label: str, unit: str, best: float | None) -> str:
    """``"Cost (best 0.0123 USD/1M tok)"``, ``"Accuracy (best 82 %)"``; escaped."""
    value, shown_unit = _shown(unit, best)
    return plotly_text(f"{label} (best {_fmt(value, shown_unit)})")


def cap_radar(frame: pd.DataFrame, radar: RadarData) -> go.Figure:
    """One closed polar trace per run of ``frame`` over the axes of ``radar`` (scores in [0, 1], 1 = best run).

    Axis titles carry the best raw value with its unit; a missing score is a gap (``None``), never 0; the
    normalisation sentence and ``radar.notes`` are an annotation on the figure.
    """
    title = "CAP radar (score = ratio to the best selected run, 1 = best)"
    notes = [plotly_text(NORMALISATION), *(plotly_text(note) for note in radar.notes)]
    if len(frame) == 0:
        return _message_figure(["No runs selected."], title)
    if not radar.axes:
        return _message_figure(["No CAP axis was measured for the selected runs.", *notes[1:]], title)

    scores = radar.scores if radar.scores.index.equals(frame.index) else radar.scores.reindex(frame.index)
    thetas = [_axis_title(axis.label, axis.unit, radar.best.get(axis.column)) for axis in radar.axes]
    labels = _frame_labels(frame)
    raws = {axis.column: _frame_column(frame, axis.column) for axis in radar.axes}

    fig = go.Figure()
    for position, label in enumerate(labels):
        r: list[float | None] = []
        hovers: list[str] = []
        for axis in radar.axes:
            score = cell_number(scores[axis.column].iloc[position]) if axis.column in scores.columns else None
            r.append(score)
            raw, unit = _shown(axis.unit, raws[axis.column][position])
            hovers.append(
                f"<b>{label}</b><br>{plotly_text(axis.label)}: {_fmt(raw, plotly_text(unit))}<br>score {_fmt(score)}"
            )
        fig.add_trace(
            go.Scatterpolar(
                name=label,
                r=[*r, r[0]],
                theta=[*thetas, thetas[0]],
                mode="lines+markers",
                fill="toself",
                opacity=0.6,
                connectgaps=False,
                hovertext=[*hovers, hovers[0]],
                hoverinfo="text",
            )
        )
    fig.update_layout(
        title={"text": title},
        polar={"radialaxis": {"range": [0.0, 1.0], "tickformat": ".1f"}},
        template="plotly_white",
        showlegend=True,
    )
    _add_notes(fig, notes)
    return fig


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
    label = _row_label(row)
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
                f"Arithmetic intensity: {_fmt(intensity, 'FLOP/byte')}",
                f"Achieved: {_fmt(achieved, 'FLOP/s')}",
                f"Achieved bandwidth: {_fmt(bandwidth_used, 'bytes/s')}",
                f"S-MBU: {_fmt(_percent(row.get(f'{phase}_s_mbu')), '%')}",
                f"S-MFU: {_fmt(_percent(row.get(f'{phase}_s_mfu')), '%')}",
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
        dtype = plotly_text(_text(row.get("ceiling_compute_dtype")) or MISSING)
        source = plotly_text(_text(row.get("ceiling_source")) or MISSING)
        scale = f" × {gpus} GPUs" if gpus > 1 else ""
        roof_hover = (
            f"Peak: {_fmt(peak, 'FLOP/s')}{scale} ({dtype})<br>Bandwidth: {_fmt(bandwidth, 'bytes/s')}{scale}"
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
                hovertext=[f"Ridge point: {_fmt(ridge, 'FLOP/byte')}, {_fmt(gpus * peak, 'FLOP/s')}"],
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
        return _message_figure(["No hardware ceilings and no phase bytes/FLOPs/time for this run.", *notes], title)
    for phase, intensity, achieved, hover in points:
        fig.add_trace(
            go.Scatter(
                name=phase,
                x=[intensity],
                y=[achieved],
                mode="markers",
                marker={"size": 13, "color": _PHASE_COLOURS[phase], "line": {"width": 1, "color": "#333333"}},
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
    _add_notes(fig, notes)
    return fig


def _percent(value: object) -> float | None:
    """100 × a measured fraction, or ``None``."""
    number = cell_number(value)
    return None if number is None else 100.0 * number


def utilisation_bars(row: Mapping[str, object]) -> go.Figure:
    """Grouped bars of S-MBU and S-MFU [%] per phase, with a dashed line at 100 % (the hardware ceiling).

    A phase appears when either value was measured; a value that was not measured has no bar (``None``, never
    0) and is named in a note.
    """
    label = _row_label(row)
    phases: list[str] = []
    mbu: list[float | None] = []
    mfu: list[float | None] = []
    missing: list[str] = []
    for phase in UTILISATION_PHASES:
        phase_mbu, phase_mfu = _percent(row.get(f"{phase}_s_mbu")), _percent(row.get(f"{phase}_s_mfu"))
        if phase_mbu is None and phase_mfu is None:
            missing.append(f"{phase} (S-MBU and S-MFU)")
            continue
        phases.append(phase)
        mbu.append(phase_mbu)
        mfu.append(phase_mfu)
        missing.extend(
            f"{phase} {name}" for name, value in (("S-MBU", phase_mbu), ("S-MFU", phase_mfu)) if value is None
        )
    title = f"Utilisation vs hardware ceilings (%)<br><sup>{label}</sup>"
    notes = [f"Not measured (no bar): {', '.join(missing)}."] if missing else []
    if not phases:
        return _message_figure(["No S-MBU or S-MFU measured for this run."], title)

    fig = go.Figure()
    for name, values in (("S-MBU", mbu), ("S-MFU", mfu)):
        fig.add_trace(
            go.Bar(
                name=name,
                x=phases,
                y=values,
                hovertext=[
                    f"<b>{label}</b><br>{phase} {name}: {_fmt(value, '%')}"
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
        yaxis={"title": {"text": "Utilisation (% of hardware ceiling)"}, "range": [0.0, max(110.0, 1.1 * top)]},
        template="plotly_white",
    )
    _add_notes(fig, notes)
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
    label = _row_label(row)
    top_k, num_experts = cell_number(row.get("experts_top_k")), cell_number(row.get("num_experts"))
    num_layers = cell_number(row.get("num_moe_layers"))
    title = f"Experts active per MoE layer per step (top-k {_fmt(top_k)} of {_fmt(num_experts)})<br><sup>{label}</sup>"
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
            notes.append(f"{phase}: {len(values)} layers in the list but num_moe_layers is {_fmt(num_layers)}.")
    expected = {phase: cell_number(row.get(f"{phase}_uniform_experts_expected")) for phase in EXPERT_PHASES}
    if not series and all(value is None for value in expected.values()):
        return _message_figure(["No expert activation measured for this run.", *notes], title)

    layer_count = max([len(values) for values in series.values()] + [int(num_layers or 0), 1])
    fig = go.Figure()
    for phase, values in series.items():
        fig.add_trace(
            go.Bar(
                name=f"{phase} measured",
                x=list(range(len(values))),
                y=values,
                marker={"color": _PHASE_COLOURS[phase]},
                hovertext=[
                    f"<b>{label}</b><br>{phase}, layer {layer}: {_fmt(value, 'experts')}"
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
                line={"dash": "dash", "color": _PHASE_COLOURS[phase], "width": 2},
                hovertext=[f"{phase} uniform-routing expectation: {_fmt(value, 'experts')}"] * 2,
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
    _add_notes(fig, notes)
    return fig


def latency_percentiles(row: Mapping[str, object]) -> go.Figure:
    """TTFT, TPOT, ITL and E2E latency: mean, p50, p90, p99 and max [s] as grouped bars on a log y axis.

    A value that was not measured, or is ≤ 0 (not drawable on a log axis), has no bar and is named in a note.
    """
    label = _row_label(row)
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
        return _message_figure(["No request latency measured for this run.", *notes], title)

    fig = go.Figure()
    for stat in LATENCY_STATS:
        fig.add_trace(
            go.Bar(
                name=stat,
                x=names,
                y=table[stat],
                hovertext=[
                    f"<b>{label}</b><br>{name} {stat}: {_fmt(value, 's')}"
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
    _add_notes(fig, notes)
    return fig
