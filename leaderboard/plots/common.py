"""Shared pieces of the leaderboard figures: trace and annotation names, phase colors, value formatting
(4 significant digits with the unit, or the missing mark), escaped run labels, the note annotation and the
message-only figure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go

from capbench.leaderboard.escape import plotly_text
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
UTILIZATION_PHASES: tuple[str, ...] = ("prefill", "decode", "mixed", "all")
EXPERT_PHASES: tuple[str, ...] = ("prefill", "decode")
LATENCY_METRICS: tuple[tuple[str, str], ...] = (
    ("ttft", "TTFT"),
    ("tpot", "TPOT"),
    ("itl", "ITL"),
    ("e2e_latency", "E2E latency"),
)
LATENCY_STATS: tuple[str, ...] = ("mean", "p50", "p90", "p99", "max")

MARKER_MIN_PX = 10.0
MARKER_SPAN_PX = 20.0
PHASE_COLORS: dict[str, str] = {"prefill": "#1f77b4", "decode": "#ff7f0e", "mixed": "#2ca02c", "all": "#7f7f7f"}


# --- value helpers -------------------------------------------------------------------------------------------


def cell_text(value: object) -> str | None:
    """Non-empty text (stripped), a number as text, or ``None`` when missing. Not escaped."""
    if isinstance(value, str):
        return value.strip() or None
    number = cell_number(value)
    if number is None:
        return None
    return str(int(number)) if number.is_integer() else f"{number:.4g}"


def percent(value: object) -> float | None:
    """100 × a measured fraction, or ``None``."""
    number = cell_number(value)
    return None if number is None else 100.0 * number


def fmt_value(value: float | None, unit: str = "") -> str:
    """4 significant digits with the unit, or "—"."""
    if value is None:
        return MISSING
    return f"{value:.4g} {unit}".rstrip()


def row_label(row: Mapping[str, object]) -> str:
    """The run's ``label`` (table.add_derived), else its ``run_id``, else "run"; escaped for plotly."""
    return plotly_text(cell_text(row.get("label")) or cell_text(row.get("run_id")) or "run")


def frame_column(frame: pd.DataFrame, column: str) -> list[float | None]:
    """The column's values as finite floats or ``None``; all ``None`` when the frame lacks the column."""
    if column not in frame.columns:
        return [None] * len(frame)
    return [cell_number(value) for value in frame[column].tolist()]


def frame_labels(frame: pd.DataFrame) -> list[str]:
    """Per row: the ``label`` column, else ``run_id``, else "row N"; escaped for plotly."""
    labels: list[str] = []
    label_values = frame["label"].tolist() if "label" in frame.columns else [None] * len(frame)
    run_ids = frame["run_id"].tolist() if "run_id" in frame.columns else [None] * len(frame)
    for position, (label, run_id) in enumerate(zip(label_values, run_ids, strict=True)):
        labels.append(plotly_text(cell_text(label) or cell_text(run_id) or f"row {position + 1}"))
    return labels


def count_runs(count: int) -> str:
    return f"{count} run" if count == 1 else f"{count} runs"


# --- layout helpers ------------------------------------------------------------------------------------------


def add_notes(fig: go.Figure, notes: Sequence[str]) -> None:
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


def message_figure(lines: Sequence[str], title: str | None = None) -> go.Figure:
    """A figure with no data and hidden axes whose centered annotation shows ``lines`` (already escaped)."""
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
    """A figure with no data that shows ``message`` (plain text: it is escaped here) in its center."""
    return message_figure([plotly_text(message)])
