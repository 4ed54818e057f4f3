"""What the browser receives of a large selection: one page of the table, and a bounded set of runs to plot.

The filters and the sort apply to every loaded run first (:mod:`capbench.leaderboard.table`); only then is the
selection cut:

* the table: page ``p`` (1-based) holds rows ``(p - 1) × page_rows`` to ``p × page_rows - 1`` of the sorted
  selection; there are ``max(1, ceil(selected / page_rows))`` pages and a page number outside ``1..pages`` is
  clamped into it;
* the figures: at most ``limit`` runs are drawn (:func:`plot_sample`): every run a figure must show (each
  Pareto front's runs, the runs at capacity) and, for the rest of the budget, runs evenly spaced through the
  sorted selection (every ``k``-th run). A front computed on the sample is the selection's front, because the
  sample holds every front run and dominance is transitive.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

PAGE_ROWS = 50
"""Runs per table page."""

PLOT_RUNS = 2000
"""The most runs a figure over the selection draws (the browser gets their points, not 100,000)."""


def page_count(selected: int, page_rows: int = PAGE_ROWS) -> int:
    """Pages of ``selected`` runs: ``max(1, ceil(selected / page_rows))`` (an empty selection has one page)."""
    if page_rows < 1:
        raise ValueError(f"page_rows must be at least 1, not {page_rows}")
    return max(1, math.ceil(selected / page_rows))


def clamp_page(page: float | None, selected: int, page_rows: int = PAGE_ROWS) -> int:
    """``page`` as a page number in ``1..page_count`` (missing or not finite: 1)."""
    if page is None or not math.isfinite(page):
        return 1
    return min(max(1, int(page)), page_count(selected, page_rows))


def page_of(frame: pd.DataFrame, page: int, page_rows: int = PAGE_ROWS) -> pd.DataFrame:
    """Rows ``(page - 1) × page_rows`` up to ``page × page_rows`` (exclusive) of ``frame``, in its order."""
    start = (clamp_page(page, len(frame), page_rows) - 1) * page_rows
    return frame.iloc[start : start + page_rows]


def plot_sample(frame: pd.DataFrame, keep: pd.Series | np.ndarray, limit: int = PLOT_RUNS) -> pd.DataFrame:
    """At most ``max(limit, kept)`` rows of ``frame`` in its order: every row where ``keep`` is True, then rows
    evenly spaced through the others (every ``ceil(others / room)``-th, ``room = limit - kept``).

    ``frame`` itself when it has at most ``limit`` rows.
    """
    if len(frame) <= limit:
        return frame
    kept = np.asarray(keep, dtype=bool)
    others = np.flatnonzero(~kept)
    room = max(0, limit - int(kept.sum()))
    chosen = kept.copy()
    if room and len(others):
        step = math.ceil(len(others) / room)
        chosen[others[::step]] = True
    return frame.iloc[np.flatnonzero(chosen)]
