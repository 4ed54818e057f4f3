"""Pareto front: hand-checked dominance, ties, missing values, min/max directions."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capbench.leaderboard.pareto import Direction, cost_accuracy_front, pareto_mask

COST = "usd_per_1m_output_tokens"
CAP: list[tuple[str, Direction]] = [(COST, "min"), ("accuracy", "max")]

# Five runs (cost USD/1M tokens: lower is better; accuracy: higher is better):
#   A: cost 1.0, accuracy 0.60  -> front: the cheapest; only A has cost <= 1.0.
#   B: cost 2.0, accuracy 0.80  -> front: the only cheaper run (A) is less accurate.
#   C: cost 3.0, accuracy 0.70  -> dominated by B (2.0 < 3.0 and 0.80 > 0.70).
#   D: cost 4.0, accuracy 0.90  -> front: the most accurate; nobody has accuracy >= 0.90.
#   E: cost 2.5, accuracy 0.80  -> dominated by B (2.0 < 2.5, accuracy equal 0.80 = 0.80).
# Front = {A, B, D}; by cost ascending: A, B, D.
FIVE = pd.DataFrame(
    {"run_id": list("ABCDE"), COST: [1.0, 2.0, 3.0, 4.0, 2.5], "accuracy": [0.60, 0.80, 0.70, 0.90, 0.80]},
    index=[10, 11, 12, 13, 14],  # not 0..n-1: the mask must follow the frame's index
)


def front_ids(frame: pd.DataFrame, objectives: list[tuple[str, Direction]]) -> set[str]:
    mask = pareto_mask(frame, objectives)
    return set(frame.loc[mask, "run_id"])


def test_five_point_example() -> None:
    mask = pareto_mask(FIVE, CAP)
    assert mask.dtype == bool
    assert list(mask.index) == [10, 11, 12, 13, 14]
    assert mask.tolist() == [True, True, False, True, False]


def test_cost_accuracy_front_sorted_by_cost() -> None:
    front = cost_accuracy_front(FIVE.iloc[::-1])  # input order must not matter
    assert list(front["run_id"]) == ["A", "B", "D"]
    assert list(front.index) == [10, 11, 13]


def test_direction_matters() -> None:
    # Both maximized: D (cost 4.0, accuracy 0.90) is >= everyone on both and strictly better, so only D.
    assert front_ids(FIVE, [(COST, "max"), ("accuracy", "max")]) == {"D"}
    # Both minimized: A (1.0, 0.60) is <= everyone on both and strictly better than each, so only A.
    assert front_ids(FIVE, [(COST, "min"), ("accuracy", "min")]) == {"A"}


def test_identical_points_both_on_front() -> None:
    frame = pd.DataFrame({"run_id": ["X", "Y", "Z"], COST: [1.0, 1.0, 2.0], "accuracy": [0.7, 0.7, 0.6]})
    # X and Y are equal (neither strictly better); both dominate Z.
    assert pareto_mask(frame, CAP).tolist() == [True, True, False]


def test_identical_points_both_dominated() -> None:
    frame = pd.DataFrame({"run_id": ["X", "Y", "W"], COST: [2.0, 2.0, 1.0], "accuracy": [0.7, 0.7, 0.7]})
    # W is as accurate and cheaper than both copies.
    assert pareto_mask(frame, CAP).tolist() == [False, False, True]


def test_tie_on_one_objective() -> None:
    frame = pd.DataFrame({"run_id": ["P", "Q"], COST: [1.0, 1.0], "accuracy": [0.5, 0.6]})
    # Same cost, Q more accurate: Q dominates P.
    assert pareto_mask(frame, CAP).tolist() == [False, True]


def test_missing_values_are_off_the_front_and_dominate_nobody() -> None:
    frame = pd.concat(
        [
            FIVE,
            pd.DataFrame(
                {
                    "run_id": ["N1", "N2", "N3"],
                    COST: [math.nan, 0.5, None],
                    "accuracy": [0.99, math.nan, None],
                },
                index=[20, 21, 22],
            ),
        ]
    )
    mask = pareto_mask(frame, CAP)
    # N1 (accuracy 0.99) would dominate D and N2 (cost 0.5) would dominate A if they counted: they do not.
    assert mask.to_dict() == {10: True, 11: True, 12: False, 13: True, 14: False, 20: False, 21: False, 22: False}


def test_non_numeric_and_infinite_values_are_missing() -> None:
    frame = pd.DataFrame({"run_id": ["A", "B", "C"], COST: ["1.0", "abc", math.inf], "accuracy": [0.5, 0.9, 0.9]})
    assert pareto_mask(frame, CAP).tolist() == [True, False, False]


def test_absent_column_gives_no_front() -> None:
    frame = FIVE.drop(columns=["accuracy"])
    assert not pareto_mask(frame, CAP).any()
    assert cost_accuracy_front(frame).empty


def test_max_min_mix_three_objectives() -> None:
    # Throughput (tok/s) max, TPOT (s) min, cost min:
    #   P: 100, 0.02, 1.0 -> dominated by Q (120 > 100, TPOT and cost equal)
    #   Q: 120, 0.02, 1.0 -> front
    #   R:  80, 0.01, 2.0 -> front: the lowest TPOT
    #   S: 120, 0.03, 0.5 -> front: the lowest cost
    #   T:  70, 0.03, 2.5 -> dominated by R (80 > 70, 0.01 < 0.03, 2.0 < 2.5)
    frame = pd.DataFrame(
        {
            "run_id": list("PQRST"),
            "output_tokens_per_s": [100.0, 120.0, 80.0, 120.0, 70.0],
            "tpot_mean_s": [0.02, 0.02, 0.01, 0.03, 0.03],
            COST: [1.0, 1.0, 2.0, 0.5, 2.5],
        }
    )
    objectives: list[tuple[str, Direction]] = [("output_tokens_per_s", "max"), ("tpot_mean_s", "min"), (COST, "min")]
    assert front_ids(frame, objectives) == {"Q", "R", "S"}


def test_empty_frame() -> None:
    empty = FIVE.iloc[0:0]
    assert pareto_mask(empty, CAP).empty
    assert cost_accuracy_front(empty).empty


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="at least one objective"):
        pareto_mask(FIVE, [])
    with pytest.raises(ValueError, match="direction"):
        pareto_mask(FIVE, [(COST, "lowest")])  # type: ignore[list-item]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([0.5, 1.0, 2.0, 3.0, math.nan]), st.sampled_from([0.1, 0.5, 0.9, math.nan])),
        max_size=30,
    )
)
def test_front_equals_the_all_pairs_definition(points: list[tuple[float, float]]) -> None:
    frame = pd.DataFrame(points, columns=["cost", "acc"])
    expected = []
    for i, (cost, acc) in enumerate(points):
        if math.isnan(cost) or math.isnan(acc):
            expected.append(False)
            continue
        dominated = any(
            c <= cost and a >= acc and (c < cost or a > acc)
            for j, (c, a) in enumerate(points)
            if j != i and not (math.isnan(c) or math.isnan(a))
        )
        expected.append(not dominated)
    assert pareto_mask(frame, [("cost", "min"), ("acc", "max")]).tolist() == expected
