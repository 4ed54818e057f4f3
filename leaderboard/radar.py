"""Radar (spider) chart scores: each CAP axis scaled to [0, 1] relative to the best selected run.

Normalization, per axis, over the runs in the selection that measured it (a value that is empty, not finite or
negative counts as unmeasured; every CAP axis is a non-negative quantity, so a negative value is invalid and is
reported in a note):

* higher is better (accuracy, throughput):  ``score = v / max(v)``
* lower is better (cost, TPOT, energy):      ``score = min(v) / v``

So 1 = the best selected run on that axis and a run at half the best's throughput (or twice its cost) scores
0.5. The scale is a ratio, unit-free, so the axes' units (accuracy fraction, USD per 1M output tokens,
output tokens/s, s per output token, J per output token) cancel. With one run every score is 1.0, and an axis
on which all runs are equal is 1.0 for all. Zero best (no division by zero): higher-is-better with ``max = 0``
gives every run 1.0 (all are 0, all equal); lower-is-better with ``min = 0`` gives 1.0 to the runs at 0 and 0.0
to every run above it (infinitely worse than free). Never min-max scaling: it is undefined for one run and
gives the worst run 0 however close it is to the best.

An axis that no selected run measured is left out of the chart with a note; a run with some axes unmeasured
keeps NaN there (a gap in its outline, never 0) and is named in a note. Notes are plain text (run labels come
from the file): escape them for the place they are shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from capbench.summary.columns import BY_NAME


@dataclass(frozen=True)
class RadarAxis:
    """One radar spoke: the frame column, its label, the raw value's unit, and its better direction."""

    column: str
    label: str
    unit: str
    higher_is_better: bool

    @classmethod
    def of(cls, name: str) -> RadarAxis:
        """The spoke of a declared CSV column: its short label, unit (``fraction`` for a percent column) and
        better direction, all from :mod:`capbench.summary.columns`."""
        spec = BY_NAME[name]
        if spec.better is None:
            raise ValueError(f"column {name!r} declares no better direction: it cannot be a radar axis")
        return cls(name, spec.short_label, "fraction" if spec.percent else spec.unit or "", spec.better == "higher")


CAP_AXES: tuple[RadarAxis, ...] = tuple(
    RadarAxis.of(name)
    for name in (
        "accuracy",
        "usd_per_1m_output_tokens",
        "output_tokens_per_s",
        "tpot_mean_s",
        "energy_per_output_token_j",
        "deployment_capital_usd",
    )
)
"""Cost (per token, and the deployment's capital: docs/metrics.md §5), accuracy and performance (throughput,
time per output token, energy per output token)."""

NORMALIZATION: str = (
    "Each axis is the ratio to the best selected run (higher-is-better: value / best; lower-is-better: "
    "best / value), so 1 = best on that axis; gaps = not measured."
)


@dataclass(frozen=True)
class RadarData:
    """Scores for :func:`cap_radar`-style plots.

    ``axes``: the axes drawn (measured by at least one selected run), in the order given. ``scores``: index =
    the frame's index, one column per drawn axis (``axis.column``), values in [0, 1], NaN = unmeasured.
    ``best``: the best raw value per drawn axis (in the axis's unit). ``notes``: axes left out and why, values
    treated as unmeasured, runs with gaps (plain text).
    """

    axes: tuple[RadarAxis, ...]
    scores: pd.DataFrame
    best: dict[str, float]
    notes: tuple[str, ...]


def _run_names(frame: pd.DataFrame) -> pd.Series:
    """A readable name per row for notes: the ``label`` column, else ``run_id``, else the index."""
    names = pd.Series([str(index) for index in frame.index], index=frame.index, dtype=object)
    for column in ("run_id", "label"):
        if column in frame.columns:
            values = frame[column]
            present = values.notna() & (values.astype(str) != "")
            names = names.where(~present, values.astype(str))
    return names


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def normalize(frame: pd.DataFrame, axes: Sequence[RadarAxis] = CAP_AXES) -> RadarData:
    """Scores in [0, 1] per run and axis, relative to the best run of ``frame`` (formula: module docstring)."""
    if len(frame) == 0:
        return RadarData(axes=(), scores=pd.DataFrame(index=frame.index), best={}, notes=("No runs selected.",))
    drawn: list[RadarAxis] = []
    scores: dict[str, np.ndarray] = {}
    best: dict[str, float] = {}
    notes: list[str] = []
    for axis in axes:
        if axis.column in frame.columns:
            raw = pd.to_numeric(frame[axis.column], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        else:
            raw = np.full(len(frame), np.nan)
        negative = raw < 0
        if negative.any():
            notes.append(
                f"{axis.label}: {_count(int(negative.sum()), 'negative value')} treated as unmeasured "
                "(it cannot be negative)."
            )
        values = np.where(np.isfinite(raw) & ~negative, raw, np.nan)
        measured = ~np.isnan(values)
        if not measured.any():
            notes.append(f"{axis.label} left out: not measured for any selected run.")
            continue
        drawn.append(axis)
        if axis.higher_is_better:
            top = float(np.nanmax(values))
            score = values / top if top > 0 else np.where(measured, 1.0, np.nan)
        else:
            top = float(np.nanmin(values))
            # min = 0: the free runs score 1, every positive value is infinitely worse (0).
            score = top / values if top > 0 else np.where(measured, np.where(values == 0, 1.0, 0.0), np.nan)
        scores[axis.column] = score
        best[axis.column] = top
    score_frame = pd.DataFrame(scores, index=frame.index, columns=[axis.column for axis in drawn], dtype="float64")
    if drawn:
        names = _run_names(frame)
        for index, row in score_frame.iterrows():
            missing = [axis.label for axis in drawn if np.isnan(row[axis.column])]
            if missing:
                notes.append(f"{names[index]}: no {', '.join(missing)} (gap in its outline).")
    return RadarData(axes=tuple(drawn), scores=score_frame, best=best, notes=tuple(notes))
