"""Plotly figures for the CAP leaderboard (no Gradio here: the app places them).

Every figure is a :class:`plotly.graph_objects.Figure`; every text that comes from the results file (run labels,
ceiling sources, notes naming runs) passes through :func:`capbench.leaderboard.escape.plotly_text` first, and hover
text is given as ``hovertext`` with ``hoverinfo="text"`` (no ``hovertemplate``), so a label can neither inject
HTML (plotly renders ``<a href>``) nor template fields (``%{…}``). A value that was not measured is never drawn as
0: it is left out (``None`` in the trace) and a note annotation (``name="notes"``) at the bottom says what is
missing and why.

Figures and their formulas (units in brackets):

* :func:`cap_scatter`: x = cost [USD / 1M output tokens], y = accuracy [%] = 100 × the ``accuracy`` fraction, the
  third dimension (throughput [output tokens/s] or TPOT mean [s]) as marker color (with a color bar) and size
  (size [px] = 10 + 20 × value / max value of the plotted runs). The cost-accuracy Pareto front
  (:func:`capbench.leaderboard.pareto.cost_accuracy_front`: min cost, max accuracy) is its own trace,
  ``"Pareto front"``, a step line (``hv``: with a budget between two front costs the best accuracy is the cheaper
  point's).
* :func:`cap_radar`: the scores of :func:`capbench.leaderboard.radar.normalize` (ratio to the best selected run,
  in [0, 1], 1 = best) per axis, one closed polar trace per run.
* :func:`roofline`: arithmetic intensity I = flops / bytes [FLOP/byte] against achieved throughput
  P = flops / time_s [FLOP/s] per phase, under the roof min(N × peak, N × bandwidth × I) with N = ``num_gpus``
  (1 when 0 or missing: a CPU run) because the ceilings are per GPU; the ridge point is at
  I = peak / bandwidth [FLOP/byte], P = N × peak [FLOP/s].
* :func:`utilization_bars`: S-MBU and S-MFU [%] = 100 × the exported fractions, per phase, against the 100 %
  hardware ceiling.
* :func:`expert_activation`: the mean number of distinct routed experts active per MoE layer per engine step
  [experts] (the ``<phase>_experts_active_per_layer`` JSON lists) against the uniform-routing expectation
  ``<phase>_uniform_experts_expected`` [experts].
* :func:`latency_percentiles`: TTFT, TPOT, ITL and E2E latency mean / p50 / p90 / p99 / max [s], log y axis.
* :func:`throughput_interactivity` and :func:`capacity_curve` (:mod:`.capacity`): output tokens/s per GPU against
  tokens/s per user with their Pareto front, capacity points and repeat intervals; a capacity search's attainment
  and TTFT p99 against load.

Modules: :mod:`.common` (names, formatting, notes), :mod:`.board` (figures over the selected runs),
:mod:`.run` (figures of one run), :mod:`.capacity` (throughput against interactivity, capacity searches).
"""

from capbench.leaderboard.plots.board import cap_radar, cap_scatter
from capbench.leaderboard.plots.capacity import capacity_curve, throughput_interactivity
from capbench.leaderboard.plots.common import (
    ACCURACY_COLUMN,
    ACCURACY_TITLE,
    COST_COLUMN,
    COST_TITLE,
    EXPERT_PHASES,
    LATENCY_METRICS,
    LATENCY_STATS,
    MESSAGE_NAME,
    NOTES_NAME,
    PARETO_TRACE,
    RIDGE_TRACE,
    ROOF_TRACE,
    ROOFLINE_PHASES,
    THIRD_DIMENSIONS,
    UTILIZATION_PHASES,
    empty_figure,
)
from capbench.leaderboard.plots.run import expert_activation, latency_percentiles, roofline, utilization_bars

__all__ = [
    "ACCURACY_COLUMN",
    "ACCURACY_TITLE",
    "COST_COLUMN",
    "COST_TITLE",
    "EXPERT_PHASES",
    "LATENCY_METRICS",
    "LATENCY_STATS",
    "MESSAGE_NAME",
    "NOTES_NAME",
    "PARETO_TRACE",
    "RIDGE_TRACE",
    "ROOFLINE_PHASES",
    "ROOF_TRACE",
    "THIRD_DIMENSIONS",
    "UTILIZATION_PHASES",
    "cap_radar",
    "cap_scatter",
    "capacity_curve",
    "empty_figure",
    "expert_activation",
    "latency_percentiles",
    "roofline",
    "throughput_interactivity",
    "utilization_bars",
]
