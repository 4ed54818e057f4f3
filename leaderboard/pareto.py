"""Pareto fronts over runs: the runs no other run beats on every objective at once.

Dominance rule (each objective is a column and a direction, ``"min"`` or ``"max"``): run *b* dominates run *a*
when *b* is at least as good as *a* on every objective (``b <= a`` for ``"min"``, ``b >= a`` for ``"max"``) and
strictly better on at least one. A run is on the front when no run dominates it. Consequences:

* identical points do not dominate each other (neither is strictly better), so both are on the front;
* a run missing any objective (empty cell, NaN, a non-number, ±inf, or the column absent from the frame) cannot
  be compared: it is off the front and it dominates nobody.

Values are compared in the columns' own units (the CAP front: cost in USD per 1M output tokens, lower is better;
accuracy as the task metric's fraction, higher is better). The runs are visited in lexicographic order of their
objectives and each is compared with the front found so far: O(n log n + n · front size · objectives); with two
objectives (the CAP front, throughput against interactivity) a prefix-minimum sweep decides every run at once in
O(n log n) (100,000 runs: benchmarks/leaderboard_browser.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

Direction = Literal["min", "max"]


def _objective_values(frame: pd.DataFrame, column: str, direction: Direction) -> np.ndarray:
    """The column as float64 with "smaller is better" orientation; NaN where not comparable."""
    if direction not in ("min", "max"):
        raise ValueError(f"objective {column!r}: direction must be 'min' or 'max', not {direction!r}")
    if column not in frame.columns:
        return np.full(len(frame), np.nan)
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    values = np.where(np.isfinite(values), values, np.nan)
    return values if direction == "min" else -values


def pareto_mask(frame: pd.DataFrame, objectives: Sequence[tuple[str, Direction]]) -> pd.Series:
    """Boolean Series on ``frame``'s index: True = on the Pareto front (not dominated by any other row).

    See the module docstring for the dominance rule. Rows missing any objective are False.
    """
    if not objectives:
        raise ValueError("pareto_mask needs at least one objective")
    if len(frame) == 0:
        return pd.Series(np.zeros(0, dtype=bool), index=frame.index, dtype=bool)
    # points[i, j]: row i's value on objective j, oriented so that smaller is better.
    points = np.column_stack([_objective_values(frame, column, direction) for column, direction in objectives])
    comparable = np.flatnonzero(~np.isnan(points).any(axis=1))
    on_front = np.zeros(len(frame), dtype=bool)
    if points.shape[1] == 2:
        on_front[_front_2d(points[comparable, 0], points[comparable, 1], comparable)] = True
        return pd.Series(on_front, index=frame.index, dtype=bool)
    # A dominating point precedes the point it dominates in lexicographic order, and dominance is transitive,
    # so in that order a point is dominated exactly when a point already on the front dominates it.
    order = comparable[np.lexsort(points[comparable].T[::-1])]
    front = np.empty((0, points.shape[1]))
    for row in order:
        point = points[row]
        if len(front) and ((front <= point).all(axis=1) & (front < point).any(axis=1)).any():
            continue
        on_front[row] = True
        front = np.vstack([front, point])
    return pd.Series(on_front, index=frame.index, dtype=bool)


def _front_2d(first: np.ndarray, second: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The ``rows`` on the front of two smaller-is-better objectives, in O(n log n) without a Python loop.

    Sorted by (first, second), a point is dominated exactly when a point of a strictly smaller ``first`` has a
    ``second`` <= its own (the prefix minimum over the earlier groups of equal ``first``), or a point of the same
    ``first`` has a strictly smaller ``second`` (it is not its group's minimum). Identical points share the fate.
    """
    if len(rows) == 0:
        return rows
    order = np.lexsort((second, first))
    a, b = first[order], second[order]
    starts = np.r_[True, a[1:] != a[:-1]]
    group = np.cumsum(starts) - 1
    group_min = b[starts]  # sorted by second within a group: its first point holds the minimum
    before = np.r_[np.inf, np.minimum.accumulate(group_min)[:-1]]  # min second over strictly smaller firsts
    on = (b == group_min[group]) & (b < before[group])
    return rows[order[on]]


def cost_accuracy_front(
    frame: pd.DataFrame, cost_column: str = "usd_per_1m_output_tokens", accuracy_column: str = "accuracy"
) -> pd.DataFrame:
    """The rows on the (min cost, max accuracy) front, sorted by cost ascending (ties: higher accuracy first)."""
    mask = pareto_mask(frame, [(cost_column, "min"), (accuracy_column, "max")])
    front = frame.loc[mask]
    if len(front) == 0:
        return front
    order = np.lexsort(
        (
            -pd.to_numeric(front[accuracy_column], errors="coerce").to_numpy(dtype="float64"),
            pd.to_numeric(front[cost_column], errors="coerce").to_numpy(dtype="float64"),
        )
    )
    return front.iloc[order]
