"""Radar normalization: ratio to the best selected run, gaps for unmeasured values, notes for what is left out."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from capbench.leaderboard.radar import CAP_AXES, NORMALIZATION, RadarAxis, normalize

ACC, COST, TPUT, TPOT, ENERGY = (
    "accuracy",
    "usd_per_1m_output_tokens",
    "output_tokens_per_s",
    "tpot_mean_s",
    "energy_per_output_token_j",
)
NAN = math.nan
CAPITAL = "deployment_capital_usd"


def runs(**columns: list[float]) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    return pd.DataFrame({"label": [f"run{i}" for i in range(n)], **columns})


def scores(frame: pd.DataFrame, column: str) -> list[float]:
    return normalize(frame).scores[column].tolist()


def same(actual: list[float], expected: list[float]) -> bool:
    """Element-wise equal within 1e-12, NaN only where NaN is expected."""
    return len(actual) == len(expected) and all(
        (math.isnan(a) and math.isnan(e)) or (not math.isnan(a) and not math.isnan(e) and abs(a - e) < 1e-12)
        for a, e in zip(actual, expected, strict=True)
    )


def test_cap_axes() -> None:
    directions = {axis.column: axis.higher_is_better for axis in CAP_AXES}
    assert directions == {ACC: True, COST: False, TPUT: True, TPOT: False, ENERGY: False, CAPITAL: False}
    assert "best" in NORMALIZATION


def test_one_run_scores_one_everywhere() -> None:
    frame = runs(**{ACC: [0.42], COST: [3.5], TPUT: [17.0], TPOT: [0.05], ENERGY: [1.25], CAPITAL: [3.0e4]})
    radar = normalize(frame)
    assert [axis.column for axis in radar.axes] == [ACC, COST, TPUT, TPOT, ENERGY, CAPITAL]
    assert radar.scores.to_numpy().tolist() == [[1.0, 1.0, 1.0, 1.0, 1.0, 1.0]]
    assert radar.best == {ACC: 0.42, COST: 3.5, TPUT: 17.0, TPOT: 0.05, ENERGY: 1.25, CAPITAL: 3.0e4}
    assert radar.notes == ()


def test_constant_axis_scores_one() -> None:
    frame = runs(**{TPOT: [0.02, 0.02, 0.02], TPUT: [5.0, 5.0, 5.0]})
    assert scores(frame, TPOT) == [1.0, 1.0, 1.0]
    assert scores(frame, TPUT) == [1.0, 1.0, 1.0]


def test_three_run_hand_example() -> None:
    frame = runs(
        **{
            ACC: [0.6, 0.8, 0.4],  # best (max) 0.8: 0.6/0.8 = 0.75, 1.0, 0.4/0.8 = 0.5
            COST: [2.0, 4.0, 1.0],  # best (min) 1.0: 1/2 = 0.5, 1/4 = 0.25, 1.0
            TPUT: [100.0, 50.0, 200.0],  # best (max) 200: 0.5, 0.25, 1.0
            TPOT: [0.02, 0.01, 0.04],  # best (min) 0.01: 0.5, 1.0, 0.25
            ENERGY: [0.3, NAN, 0.6],  # best (min) 0.3: 1.0, gap, 0.5
            CAPITAL: [1.0e4, 2.0e4, 4.0e4],  # best (min) 10,000: 1.0, 0.5, 0.25
        }
    )
    radar = normalize(frame)
    assert same(radar.scores[ACC].tolist(), [0.75, 1.0, 0.5])
    assert same(radar.scores[COST].tolist(), [0.5, 0.25, 1.0])
    assert same(radar.scores[TPUT].tolist(), [0.5, 0.25, 1.0])
    assert same(radar.scores[TPOT].tolist(), [0.5, 1.0, 0.25])
    assert same(radar.scores[ENERGY].tolist(), [1.0, NAN, 0.5])
    assert same(radar.scores[CAPITAL].tolist(), [1.0, 0.5, 0.25])
    assert radar.best == {ACC: 0.8, COST: 1.0, TPUT: 200.0, TPOT: 0.01, ENERGY: 0.3, CAPITAL: 1.0e4}
    assert len(radar.notes) == 1 and "run1" in radar.notes[0] and "Energy" in radar.notes[0]


def test_scores_follow_the_frame_index() -> None:
    frame = runs(**{COST: [2.0, 1.0]})
    frame.index = pd.Index(["x", "y"])
    radar = normalize(frame)
    assert radar.scores.index.tolist() == ["x", "y"]
    assert radar.scores[COST].to_dict() == {"x": 0.5, "y": 1.0}


def test_zero_best_lower_is_better() -> None:
    # Min cost 0: the free run scores 1, a positive cost 0 (no division by zero), unmeasured stays a gap.
    with np.errstate(all="raise"):
        values = scores(runs(**{COST: [0.0, 2.0, NAN, 0.0]}), COST)
    assert same(values, [1.0, 0.0, NAN, 1.0])


def test_zero_best_higher_is_better() -> None:
    with np.errstate(all="raise"):
        values = scores(runs(**{TPUT: [0.0, 0.0, NAN]}), TPUT)
    assert same(values, [1.0, 1.0, NAN])


def test_negative_value_is_unmeasured_with_note() -> None:
    frame = runs(**{ENERGY: [-1.0, 2.0, 4.0]})
    radar = normalize(frame)
    assert same(radar.scores[ENERGY].tolist(), [NAN, 1.0, 0.5])  # best is 2.0, not -1.0
    assert radar.best[ENERGY] == 2.0
    assert any("Energy" in note and "negative" in note for note in radar.notes)
    assert any("run0" in note for note in radar.notes)  # the run with the gap is named


def test_axis_with_nothing_measured_left_out_with_note() -> None:
    frame = runs(**{ACC: [0.5, 0.7], ENERGY: [NAN, NAN]})  # cost, throughput, TPOT columns absent altogether
    radar = normalize(frame)
    assert [axis.column for axis in radar.axes] == [ACC]
    assert list(radar.scores.columns) == [ACC]
    assert set(radar.best) == {ACC}
    for label in ("Energy", "Cost", "Throughput", "TPOT"):
        assert any(note.startswith(label) and "left out" in note for note in radar.notes), label


def test_all_negative_axis_is_left_out() -> None:
    radar = normalize(runs(**{ACC: [0.5], TPOT: [-0.1]}))
    assert [axis.column for axis in radar.axes] == [ACC]
    assert any("TPOT" in note and "negative" in note for note in radar.notes)
    assert any("TPOT" in note and "left out" in note for note in radar.notes)


def test_scores_in_unit_interval_and_never_zero_for_missing() -> None:
    rng = np.random.default_rng(0)
    frame = runs(**{ACC: list(rng.uniform(0, 1, 20)), COST: list(rng.uniform(0.1, 5, 20))})
    frame.loc[3, ACC] = NAN
    radar = normalize(frame)
    values = radar.scores.to_numpy()
    finite = values[~np.isnan(values)]
    assert ((finite > 0) & (finite <= 1)).all()
    assert math.isnan(radar.scores.loc[3, ACC])
    assert (radar.scores.max() == 1.0).all()


def test_custom_axes_and_text_values() -> None:
    axis = RadarAxis("score", "Score", "pt", higher_is_better=True)
    frame = pd.DataFrame({"run_id": ["a", "b"], "score": ["4", "abc"]})
    radar = normalize(frame, [axis])
    assert same(radar.scores["score"].tolist(), [1.0, NAN])
    assert any(note.startswith("b:") for note in radar.notes)  # named by run_id when there is no label


def test_empty_selection() -> None:
    radar = normalize(runs(**{ACC: [0.5]}).iloc[0:0])
    assert radar.axes == ()
    assert radar.scores.empty
    assert radar.best == {}
    assert radar.notes


@pytest.mark.parametrize("column", [ACC, TPUT])
def test_higher_is_better_ratio(column: str) -> None:
    assert same(scores(runs(**{column: [1.0, 4.0, 2.0]}), column), [0.25, 1.0, 0.5])


@pytest.mark.parametrize("column", [COST, TPOT, ENERGY])
def test_lower_is_better_ratio(column: str) -> None:
    assert same(scores(runs(**{column: [1.0, 4.0, 2.0]}), column), [1.0, 0.25, 0.5])
