"""Figures of throughput against interactivity and of capacity searches.

* :func:`throughput_interactivity`: x = tokens/s per user [tokens/s] (1 / median TPOT), y = output tokens/s per
  GPU [output tokens/s/GPU]; the Pareto front over both (higher is better on each) is the trace
  ``"Pareto front"``; runs at a capacity found by ``capbench capacity`` are their own trace
  (``"At capacity"``, stars); runs with repeats carry their 95 % intervals as error bars (``ci95_low_*`` /
  ``ci95_high_*``). Runs missing either value (a server whose GPU count is unknown has no per-GPU throughput) are
  left out, and a note says how many.
* :func:`capacity_curve`: the probes of one capacity search: SLO attainment [%] (left axis) and TTFT p99 [s]
  (right axis) against the load (concurrency, or request rate [requests/s]), each run a point, the capacity
  marked (trace ``"Capacity"``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from capbench.leaderboard.pareto import pareto_mask
from capbench.leaderboard.plots.common import (
    PARETO_TRACE,
    add_notes,
    cell_text,
    count_runs,
    fmt_value,
    frame_column,
    frame_labels,
    message_figure,
    percent,
)
from capbench.summary.columns import BY_NAME

PER_USER = "tokens_per_s_per_user"
PER_GPU = "output_tokens_per_s_per_gpu"
CAPACITY_TRACE = "At capacity"
CURVE_CAPACITY_TRACE = "Capacity"


def _bool(value: object) -> bool:
    """A bool cell: True only for a true value (missing, NaN or text other than "true" is False)."""
    if value is None or value is pd.NA:
        return False
    if isinstance(value, bool | np.bool_):
        return bool(value)
    return isinstance(value, str) and value.strip().lower() == "true"


def _error(frame: pd.DataFrame, name: str, rows: list[int], means: list[float | None]) -> dict[str, object] | None:
    """Asymmetric error bars from a figure's 95 % interval columns, where the runs have repeats."""
    lows = frame_column(frame, f"ci95_low_{name}")
    highs = frame_column(frame, f"ci95_high_{name}")
    if not any(lows[i] is not None for i in rows):
        return None
    plus = [None if highs[i] is None or means[i] is None else highs[i] - means[i] for i in rows]  # type: ignore[operator]
    minus = [None if lows[i] is None or means[i] is None else means[i] - lows[i] for i in rows]  # type: ignore[operator]
    return {"type": "data", "symmetric": False, "array": plus, "arrayminus": minus, "visible": True}


def throughput_interactivity(frame: pd.DataFrame) -> go.Figure:
    """Per-GPU throughput against per-user speed, with the Pareto front and the capacity points (module doc)."""
    title = "Throughput per GPU vs tokens/s per user"
    if len(frame) == 0:
        return message_figure(["No runs selected."], title)
    users = frame_column(frame, PER_USER)
    gpus = frame_column(frame, PER_GPU)
    labels = frame_labels(frame)
    capacity = [_bool(v) for v in (frame["capacity_point"] if "capacity_point" in frame else [False] * len(frame))]
    plotted = [i for i in range(len(frame)) if users[i] is not None and gpus[i] is not None]
    notes = []
    no_gpu = sum(1 for i in range(len(frame)) if gpus[i] is None)
    if len(plotted) < len(frame):
        notes.append(
            f"{count_runs(len(frame) - len(plotted))} of {len(frame)} not plotted: "
            f"{count_runs(no_gpu)} without a GPU count (no per-GPU throughput), the rest without a TPOT."
        )
    if not plotted:
        return message_figure(["No selected run has both a per-GPU throughput and a per-user speed.", *notes], title)

    def hover(i: int) -> str:
        return "<br>".join(
            [
                f"<b>{labels[i]}</b>",
                f"per GPU: {fmt_value(gpus[i], 'output tokens/s')}",
                f"per user: {fmt_value(users[i], 'tokens/s')}",
                *(["at capacity (capbench capacity)"] if capacity[i] else []),
            ]
        )

    fig = go.Figure()
    for name, rows, marker in (
        ("Runs", [i for i in plotted if not capacity[i]], {"size": 11, "color": "#1f77b4"}),
        (CAPACITY_TRACE, [i for i in plotted if capacity[i]], {"size": 18, "color": "#2ca02c", "symbol": "star"}),
    ):
        if not rows:
            continue
        fig.add_trace(
            go.Scatter(
                name=name,
                x=np.array([users[i] for i in rows], dtype=np.float64),  # measured: a typed array, sent as base64
                y=np.array([gpus[i] for i in rows], dtype=np.float64),
                mode="markers",
                marker={**marker, "line": {"width": 1, "color": "#333333"}},
                error_x=_error(frame, PER_USER, rows, users),
                error_y=_error(frame, PER_GPU, rows, gpus),
                hovertext=[hover(i) for i in rows],
                hoverinfo="text",
            )
        )
    points = pd.DataFrame(
        {PER_USER: [users[i] for i in plotted], PER_GPU: [gpus[i] for i in plotted]},
        index=pd.Index(plotted, dtype="int64"),
        dtype="float64",
    )
    mask = pareto_mask(points, [(PER_USER, "max"), (PER_GPU, "max")])
    front = sorted((int(i) for i in points.index[mask.to_numpy()]), key=lambda i: users[i] or 0.0)
    fig.add_trace(
        go.Scatter(
            name=PARETO_TRACE,
            x=[users[i] for i in front],
            y=[gpus[i] for i in front],
            mode="lines+markers",
            line={"shape": "vh", "color": "#d62728", "width": 2, "dash": "dot"},
            marker={"size": 16, "symbol": "circle-open", "color": "#d62728", "line": {"width": 3}},
            hovertext=[hover(i) for i in front],
            hoverinfo="text",
        )
    )
    fig.update_layout(
        title={"text": title},
        xaxis={"title": {"text": BY_NAME[PER_USER].header}},
        yaxis={"title": {"text": BY_NAME[PER_GPU].header}},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "left", "x": 0.0},
        template="plotly_white",
    )
    add_notes(fig, notes)
    return fig


def capacity_curve(frame: pd.DataFrame, row: Mapping[str, object]) -> go.Figure:
    """The capacity search ``row`` belongs to, over all its runs in ``frame`` (module docstring)."""
    title = "Capacity search: attainment and TTFT p99 against load"
    search_id = cell_text(row.get("capacity_search_id"))
    if search_id is None or "capacity_search_id" not in frame:
        return message_figure(["This run is not part of a capacity search (capbench capacity)."], title)
    probes = frame[frame["capacity_search_id"].astype(str) == search_id]
    rate = cell_text(row.get("capacity_search")) == "rate"
    load_column = "request_rate_per_s" if rate else "concurrency"
    loads = frame_column(probes, load_column)
    attainment = frame_column(probes, "capacity_probe_attainment_fraction")
    attainment_pct = [percent(a) for a in attainment]
    ttft = frame_column(probes, "ttft_p99_s")
    order = sorted((i for i in range(len(probes)) if loads[i] is not None), key=lambda i: loads[i] or 0.0)
    labels = frame_labels(probes)
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            name="SLO attainment",
            x=[loads[i] for i in order],
            y=[attainment_pct[i] for i in order],
            mode="lines+markers",
            hovertext=[f"{labels[i]}<br>attainment {fmt_value(attainment[i])}" for i in order],
            hoverinfo="text",
        )
    )
    fig.add_trace(
        go.Scatter(
            name="TTFT p99",
            x=[loads[i] for i in order],
            y=[ttft[i] for i in order],
            mode="lines+markers",
            yaxis="y2",
            line={"dash": "dash"},
            hovertext=[f"{labels[i]}<br>TTFT p99 {fmt_value(ttft[i], 's')}" for i in order],
            hoverinfo="text",
        )
    )
    chosen = [i for i in order if _bool(probes["capacity_point"].iloc[i])] if "capacity_point" in probes else []
    if chosen:
        fig.add_trace(
            go.Scatter(
                name=CURVE_CAPACITY_TRACE,
                x=[loads[i] for i in chosen],
                y=[attainment_pct[i] for i in chosen],
                mode="markers",
                marker={"size": 20, "symbol": "star", "color": "#2ca02c", "line": {"width": 1, "color": "#333"}},
                hovertext=[f"capacity: {fmt_value(loads[i])}" for i in chosen],
                hoverinfo="text",
            )
        )
    notes = [] if chosen else ["No load of this search met the target: no capacity."]
    fig.update_layout(
        title={"text": title},
        xaxis={"title": {"text": "Request rate (requests/s)" if rate else "Concurrency (requests)"}},
        yaxis={"title": {"text": "SLO attainment (%)"}, "range": [0, 105]},
        yaxis2={"title": {"text": "TTFT p99 (s)"}, "overlaying": "y", "side": "right"},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "left", "x": 0.0},
        template="plotly_white",
    )
    add_notes(fig, notes)
    return fig
