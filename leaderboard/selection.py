"""Filters and sorts over every loaded run, with what does not depend on the filters computed once per load.

A filter change used to recompute, over every loaded run, each dimension's display text (100,000 runs: a
factorization and a Python pass per dimension) and the sort key of every selected run. :class:`RunIndex` does
that work once per load instead:

* per filter dimension, the run's code into the dimension's distinct display texts
  (:func:`~capbench.leaderboard.table.dimension_codes`); a selection is then ``allowed[codes]``, where
  ``allowed`` says per distinct text whether the selection holds it: O(runs) in numpy, no text per run;
* per run id, the run's position (whether a picked run is selected is then one look-up, not a pass over the
  selection's ids);
* per sort column and direction (computed on first use, then kept), the order of every run
  (:func:`~capbench.leaderboard.table.sort_runs` over all of them); the selected runs in that order are the
  global order with the others left out.

Both give exactly what :func:`~capbench.leaderboard.table.apply_filters` and then
:func:`~capbench.leaderboard.table.sort_runs` give on the same runs: the sort is stable (equal keys keep the
runs' order, missing values last), so removing runs from the sorted whole leaves the sorted remainder.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from capbench.leaderboard.table import FILTER_DIMENSIONS, check_dimensions, dimension_codes, sort_runs


class RunIndex:
    """Filter codes and sort orders of the runs of ``frame`` (positions ``0..len(frame) - 1``)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.codes: dict[str, tuple[np.ndarray, np.ndarray]] = {
            dimension: dimension_codes(frame, dimension) for dimension in FILTER_DIMENSIONS
        }
        ids = frame["run_id"] if "run_id" in frame.columns else pd.Series([], dtype=object)
        self._positions: dict[str, int] = {str(run_id): i for i, run_id in enumerate(ids)}
        self._orders: dict[tuple[str, bool], np.ndarray] = {}
        self._lock = threading.Lock()

    def position(self, run_id: str | None) -> int | None:
        """The position of the run ``run_id`` (None when no loaded run has that id)."""
        return None if run_id is None else self._positions.get(run_id)

    def mask(self, selections: Mapping[str, Sequence[str] | None]) -> np.ndarray:
        """Per run (by position), whether it matches every dimension's selection (any of its values); an empty or
        ``None`` selection is no constraint. An unknown dimension raises :class:`ValueError` naming it."""
        check_dimensions(selections)
        mask = np.ones(len(self.frame), dtype=bool)
        for dimension, selected in selections.items():
            if not selected:
                continue
            codes, texts = self.codes[dimension]
            chosen = set(selected)
            allowed = np.fromiter((text in chosen for text in texts), dtype=bool, count=len(texts))
            mask &= allowed[codes]
        return mask

    def order(self, column: str, *, descending: bool) -> np.ndarray:
        """The positions of every run sorted by ``column`` as :func:`~capbench.leaderboard.table.sort_runs` sorts
        them (stable, missing last); computed on the first call for a column and direction, then kept."""
        key = (column, descending)
        with self._lock:
            found = self._orders.get(key)
        if found is not None:
            return found
        if column not in self.frame.columns:
            raise ValueError(f"cannot sort by {column!r}: no such column")
        by_position = self.frame[[column]].reset_index(drop=True)
        order = sort_runs(by_position, column, ascending=not descending).index.to_numpy(dtype=np.intp)
        with self._lock:
            self._orders[key] = order
        return order

    def sorted_positions(self, mask: np.ndarray, sort_by: str, *, descending: bool) -> np.ndarray:
        """The positions of the runs where ``mask`` (a :meth:`mask`) is True, sorted by ``sort_by``
        (:meth:`order` with the other runs left out): what sorting the selected runs gives."""
        order = self.order(sort_by, descending=descending)
        return order[mask[order]]
