"""Pareto fronts over runs: the runs no other run beats on every objective at once.

Dominance rule (each objective is a column and a direction, ``"min"`` or ``"max"``): run *b* dominates run *a*
when *b* is at least as good as *a* on every objective (``b <= a`` for ``"min"``, ``b >= a`` for ``"max"``) and
strictly better on at least one. A run is on the front when no run dominates it. Consequences:

* identical points do not dominate each other (neither is strictly better), so both are on the front;
* a run missing any objective (empty cell, NaN, a non-number, ±inf, or the column absent from the frame) cannot
  be compared: it is off the front and it dominates nobody.

Values are compared in the columns' own units (the CAP front: cost in USD per 1M output tokens, lower is better;
accuracy as the task metric's fraction, higher is better). The runs are visited in lexicographic order of their
objectives and each is compared with the front found so far: O(n log n + n · front size · objectives)
(10,000 runs in about 0.1 s; benchmarks/leaderboard_scale.py).
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
