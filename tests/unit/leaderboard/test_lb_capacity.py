"""Throughput per GPU against tokens/s per user (Pareto front, capacity points, repeat intervals) and the capacity
curve of one search."""

from __future__ import annotations

import math

import pandas as pd

from capbench.leaderboard.plots import PARETO_TRACE, capacity_curve, throughput_interactivity
from capbench.leaderboard.plots.capacity import CAPACITY_TRACE, CURVE_CAPACITY_TRACE

NAN = math.nan


def runs() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "run_id": ["a", "b", "c", "d", "e"],
            "label": ["A", "B", "C", "D", "E"],
            "tokens_per_s_per_user": [100.0, 50.0, 20.0, 40.0, 30.0],
            "output_tokens_per_s_per_gpu": [100.0, 400.0, 900.0, 300.0, NAN],  # d is dominated by b; e unknown
            "capacity_point": pd.array([False, True, False, False, False], dtype="boolean"),
            "ci95_low_output_tokens_per_s_per_gpu": [NAN, 380.0, NAN, NAN, NAN],
            "ci95_high_output_tokens_per_s_per_gpu": [NAN, 430.0, NAN, NAN, NAN],
        }
    )


def trace(fig, name):  # type: ignore[no-untyped-def]
    return next(t for t in fig.data if t.name == name)


def test_the_front_the_capacity_points_and_the_intervals() -> None:
    fig = throughput_interactivity(runs())
    front = trace(fig, PARETO_TRACE)
    assert list(front.x) == [20.0, 50.0, 100.0] and list(front.y) == [900.0, 400.0, 100.0]
    star = trace(fig, CAPACITY_TRACE)
    assert list(star.x) == [50.0] and star.marker.symbol == "star"
    assert list(star.error_y.array) == [30.0] and list(star.error_y.arrayminus) == [20.0]
    plain = trace(fig, "Runs")
    assert sorted(plain.x) == [20.0, 40.0, 100.0]  # e (no per-GPU throughput) is left out, never drawn at 0
    notes = [a.text for a in fig.layout.annotations if a.name == "notes"]
    assert notes and "1 run of 5 not plotted" in notes[0] and "without a GPU count" in notes[0]


def test_nothing_to_plot_says_why() -> None:
    frame = runs().assign(output_tokens_per_s_per_gpu=NAN)
    fig = throughput_interactivity(frame)
    assert not fig.data and "No selected run has both" in fig.layout.annotations[0].text


def probes() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "run_id": ["p1", "p2", "p3", "p4", "x"],
            "capacity_search_id": ["s1", "s1", "s1", "s1", None],
            "capacity_search": ["concurrency"] * 4 + [None],
            "concurrency": [8.0, 1.0, 4.0, 6.0, 2.0],
            "request_rate_per_s": [NAN] * 5,
            "capacity_probe_attainment_fraction": [0.4, 1.0, 1.0, 1.0, NAN],
            "ttft_p99_s": [0.09, 0.02, 0.05, 0.07, 0.01],
            "capacity_point": pd.array([False, False, False, True, False], dtype="boolean"),
        }
    )


def test_the_capacity_curve_orders_the_probes_and_marks_the_capacity() -> None:
    frame = probes()
    fig = capacity_curve(frame, frame.iloc[0].to_dict())
    attainment = trace(fig, "SLO attainment")
    assert list(attainment.x) == [1.0, 4.0, 6.0, 8.0] and list(attainment.y) == [100.0, 100.0, 100.0, 40.0]
    assert list(trace(fig, "TTFT p99").y) == [0.02, 0.05, 0.07, 0.09]
    assert list(trace(fig, CURVE_CAPACITY_TRACE).x) == [6.0]
    other = capacity_curve(frame, frame.iloc[4].to_dict())
    assert not other.data and "not part of a capacity search" in other.layout.annotations[0].text
