"""Figures over the selected runs: the CAP scatter (cost, accuracy, a third dimension, the Pareto front) and
the CAP radar."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from capbench.leaderboard.escape import plotly_text
from capbench.leaderboard.pareto import cost_accuracy_front
from capbench.leaderboard.plots.common import (
    ACCURACY_COLUMN,
    ACCURACY_TITLE,
    COST_COLUMN,
    COST_TITLE,
    MARKER_MIN_PX,
    MARKER_SPAN_PX,
    PARETO_TRACE,
    THIRD_DIMENSIONS,
    add_notes,
    count_runs,
    fmt_value,
    frame_column,
    frame_labels,
    message_figure,
)
from capbench.leaderboard.radar import NORMALIZATION, RadarData
from capbench.leaderboard.table import cell_number


def _floats(values: Sequence[float | None], rows: Sequence[int]) -> np.ndarray:
    """``values`` at ``rows`` (every one measured) as a float64 array: plotly validates it at once and sends it
    to the browser as a typed array (base64), where a list is checked and written as text value by value."""
    return np.array([values[i] for i in rows], dtype=np.float64)


def cap_scatter(
    frame: pd.DataFrame, *, third: Literal["output_tokens_per_s", "tpot_mean_s"] = "output_tokens_per_s"
) -> go.Figure:
    """Cost [USD / 1M output tokens] against accuracy [%], with the third dimension as marker size and color.

    Runs missing cost or accuracy are left out, and a note says how many and which value they lack. Runs whose
    third value is missing are drawn in grey at the smallest size in their own trace. The cost-accuracy Pareto
    front is the trace named ``"Pareto front"``. An empty selection gives a figure with a centered message.
    """
    if third not in THIRD_DIMENSIONS:
        raise ValueError(f"third must be one of {sorted(THIRD_DIMENSIONS)}, not {third!r}")
    third_title, third_name = THIRD_DIMENSIONS[third]
    title = f"Cost vs accuracy (marker size and color: {third_title})"
    if len(frame) == 0:
        return message_figure(["No runs selected."], title)

    costs = frame_column(frame, COST_COLUMN)
    accuracies = frame_column(frame, ACCURACY_COLUMN)
    thirds = frame_column(frame, third)
    percents = [None if value is None else 100.0 * value for value in accuracies]
    labels = frame_labels(frame)

    plotted = [i for i in range(len(frame)) if costs[i] is not None and accuracies[i] is not None]
    no_cost = sum(1 for value in costs if value is None)
    no_accuracy = sum(1 for value in accuracies if value is None)
    left_out = len(frame) - len(plotted)
    notes: list[str] = []
    if left_out:
        reasons = []
        if no_cost:
            reasons.append(f"{count_runs(no_cost)} without cost")
        if no_accuracy:
            reasons.append(f"{count_runs(no_accuracy)} without accuracy (performance-only)")
        notes.append(f"{count_runs(left_out)} of {len(frame)} not plotted: " + ", ".join(reasons) + ".")
    if not plotted:
        lines = ["No selected run has both a cost and an accuracy.", *notes]
        return message_figure(lines, title)

    def hover(i: int) -> str:
        return "<br>".join(
            [
                f"<b>{labels[i]}</b>",
                f"Cost: {fmt_value(costs[i], 'USD / 1M output tokens')}",
                f"Accuracy: {fmt_value(percents[i], '%')}",
                f"{third_title}: {fmt_value(thirds[i])}",
            ]
        )

    fig = go.Figure()
    with_third = [i for i in plotted if thirds[i] is not None]
    without_third = [i for i in plotted if thirds[i] is None]
    if with_third:
        values = [thirds[i] or 0.0 for i in with_third]
        largest = max(values)
        sizes = [
            MARKER_MIN_PX + MARKER_SPAN_PX * (max(value, 0.0) / largest if largest > 0 else 0.0) for value in values
        ]
        fig.add_trace(
            go.Scatter(
                name="Runs",
                x=_floats(costs, with_third),
                y=_floats(percents, with_third),
                mode="markers",
                marker={
                    "size": np.array(sizes, dtype=np.float64),
                    "color": np.array(values, dtype=np.float64),
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
                x=_floats(costs, without_third),
                y=_floats(percents, without_third),
                mode="markers",
                marker={"size": MARKER_MIN_PX, "color": "#bbbbbb", "line": {"width": 1, "color": "#333333"}},
                hovertext=[hover(i) for i in without_third],
                hoverinfo="text",
            )
        )
        notes.append(f"{count_runs(len(without_third))} without {third_name}: grey, smallest size.")

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
    add_notes(fig, notes)
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
    return plotly_text(f"{label} (best {fmt_value(value, shown_unit)})")


def cap_radar(frame: pd.DataFrame, radar: RadarData) -> go.Figure:
    """One closed polar trace per run of ``frame`` over the axes of ``radar`` (scores in [0, 1], 1 = best run).

    Axis titles carry the best raw value with its unit; a missing score is a gap (``None``), never 0; the
    normalization sentence and ``radar.notes`` are an annotation on the figure.
    """
    title = "CAP radar (score = ratio to the best selected run, 1 = best)"
    notes = [plotly_text(NORMALIZATION), *(plotly_text(note) for note in radar.notes)]
    if len(frame) == 0:
        return message_figure(["No runs selected."], title)
    if not radar.axes:
        return message_figure(["No CAP axis was measured for the selected runs.", *notes[1:]], title)

    scores = radar.scores if radar.scores.index.equals(frame.index) else radar.scores.reindex(frame.index)
    thetas = [_axis_title(axis.label, axis.unit, radar.best.get(axis.column)) for axis in radar.axes]
    labels = frame_labels(frame)
    raws = {axis.column: frame_column(frame, axis.column) for axis in radar.axes}

    fig = go.Figure()
    for position, label in enumerate(labels):
        r: list[float | None] = []
        hovers: list[str] = []
        for axis in radar.axes:
            score = cell_number(scores[axis.column].iloc[position]) if axis.column in scores.columns else None
            r.append(score)
            raw, unit = _shown(axis.unit, raws[axis.column][position])
            hovers.append(
                f"<b>{label}</b><br>{plotly_text(axis.label)}: {fmt_value(raw, plotly_text(unit))}"
                f"<br>score {fmt_value(score)}"
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
    add_notes(fig, notes)
    return fig
