"""Leaderboard figures: values placed where the formulas say, gaps never drawn as 0, file text always escaped.

Expectations are computed by hand here (ratios of the inputs, a Pareto front known by inspection), not by
calling the module's helpers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import pytest

from capbench.leaderboard.plots import (
    cap_radar,
    cap_scatter,
    empty_figure,
    expert_activation,
    latency_percentiles,
    roofline,
    utilization_bars,
)
from capbench.leaderboard.radar import NORMALIZATION, RadarAxis, RadarData, normalize

HOSTILE = '<a href="http://evil.example">x</a><script>'
HOSTILE_ESCAPED = '&lt;a href="http://evil.example"&gt;x&lt;/a&gt;&lt;script&gt;'

BANDWIDTH = 3.35e12  # bytes/s per GPU
PEAK = 9.894e14  # FLOP/s per GPU


# --- helpers -------------------------------------------------------------------------------------------------


def _strings(obj: Any) -> Iterator[str]:
    """Every string inside parsed JSON (keys and values)."""
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield key
            yield from _strings(value)
    elif isinstance(obj, list):
        for item in obj:
            yield from _strings(item)


def _payload(fig: go.Figure) -> dict[str, Any]:
    """The figure as plotly serializes it (raises if it cannot), parsed back."""
    parsed = json.loads(fig.to_json())
    assert isinstance(parsed, dict)
    return parsed


def _trace(fig: go.Figure, name: str) -> Any:
    matches = [trace for trace in fig.data if trace.name == name]
    assert len(matches) == 1, f"expected one trace named {name!r}, got {[t.name for t in fig.data]}"
    return matches[0]


def _names(fig: go.Figure) -> list[str]:
    return [str(trace.name) for trace in fig.data]


def _annotations(fig: go.Figure) -> str:
    return "\n".join(str(annotation.text) for annotation in fig.layout.annotations)


def _close(actual: Any, expected: list[float | None]) -> None:
    values = list(actual)
    assert len(values) == len(expected), (values, expected)
    for got, want in zip(values, expected, strict=True):
        if want is None:
            assert got is None, (values, expected)
        else:
            assert got is not None and math.isclose(got, want, rel_tol=1e-12), (values, expected)


def _is_message_figure(fig: go.Figure) -> bool:
    annotations = list(fig.layout.annotations)
    return (
        len(fig.data) == 0
        and len(annotations) >= 1
        and annotations[0].x == 0.5
        and annotations[0].y == 0.5
        and annotations[0].xref == "paper"
    )


# --- empty_figure --------------------------------------------------------------------------------------------


def test_empty_figure_centers_the_escaped_message() -> None:
    fig = empty_figure("No runs match <b>this</b>")
    assert _is_message_figure(fig)
    assert fig.layout.annotations[0].text == "No runs match &lt;b&gt;this&lt;/b&gt;"
    _payload(fig)


# --- roofline ------------------------------------------------------------------------------------------------


def _roofline_row(**overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "run_id": "r1",
        "num_gpus": 1,
        "ceiling_memory_bandwidth_bytes_per_s": BANDWIDTH,
        "ceiling_peak_flops_per_s": PEAK,
        "ceiling_compute_dtype": "bfloat16",
        "ceiling_source": "H100 SXM5 datasheet",
        "prefill_bytes": 2.0e9,
        "prefill_flops": 4.0e11,
        "prefill_time_s": 0.5,
        "prefill_arithmetic_intensity_flop_per_byte": 4.0e11 / 2.0e9,  # the metrics' output, from these three
        "prefill_achieved_flops_per_s": 4.0e11 / 0.5,
        "prefill_s_mbu": 0.25,
        "prefill_s_mfu": 0.125,
        "decode_bytes": 1.0e10,
        "decode_flops": 2.0e10,
        "decode_time_s": 4.0,
        "decode_arithmetic_intensity_flop_per_byte": 2.0e10 / 1.0e10,
        "decode_achieved_flops_per_s": 2.0e10 / 4.0,
        "decode_s_mbu": 0.75,
        "decode_s_mfu": float("nan"),
    }
    row.update(overrides)
    return row


def test_roofline_places_each_phase_at_intensity_and_achieved_flops() -> None:
    fig = roofline(_roofline_row())
    prefill, decode = _trace(fig, "prefill"), _trace(fig, "decode")
    _close(prefill.x, [4.0e11 / 2.0e9])  # 200 FLOP/byte
    _close(prefill.y, [4.0e11 / 0.5])  # 8e11 FLOP/s
    _close(decode.x, [2.0e10 / 1.0e10])
    _close(decode.y, [2.0e10 / 4.0])
    assert "mixed" not in _names(fig)
    assert "mixed" in _annotations(fig)
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    assert "FLOP/byte" in fig.layout.xaxis.title.text and "FLOP/s" in fig.layout.yaxis.title.text
    # S-MBU and S-MFU in the hover, as percent; the unmeasured S-MFU is a dash, not 0.
    assert "25 %" in prefill.hovertext[0] and "12.5 %" in prefill.hovertext[0]
    assert "75 %" in decode.hovertext[0] and "S-MFU: —" in decode.hovertext[0]
    _payload(fig)


def test_roofline_roof_bends_at_the_ridge_point() -> None:
    fig = roofline(_roofline_row())
    roof = _trace(fig, "Roof")
    ridge = PEAK / BANDWIDTH
    x, y = list(roof.x), list(roof.y)
    assert math.isclose(x[1], ridge) and math.isclose(y[1], PEAK)
    assert math.isclose(y[0], BANDWIDTH * x[0])  # memory-bound slope below the ridge
    assert math.isclose(y[2], PEAK) and x[2] > ridge  # flat compute roof above it
    assert x[0] < 2.0 and x[2] > 200.0  # spans both phase markers
    _close(_trace(fig, "Ridge point").x, [ridge])
    _close(_trace(fig, "Ridge point").y, [PEAK])


def test_roofline_roof_is_per_gpu_ceiling_times_gpu_count() -> None:
    fig = roofline(_roofline_row(num_gpus=4))
    roof = _trace(fig, "Roof (4 GPUs)")
    assert math.isclose(roof.x[1], PEAK / BANDWIDTH)
    assert math.isclose(roof.y[1], 4 * PEAK)
    assert math.isclose(roof.y[0], 4 * BANDWIDTH * roof.x[0])


def test_roofline_without_ceilings_keeps_markers_and_says_why_no_roof() -> None:
    row = _roofline_row(ceiling_memory_bandwidth_bytes_per_s=None, ceiling_peak_flops_per_s=float("nan"))
    fig = roofline(row)
    assert sorted(_names(fig)) == ["decode", "prefill"]
    text = _annotations(fig)
    assert "memory bandwidth" in text and "peak FLOP/s" in text and "roof not drawn" in text
    _payload(fig)


def test_roofline_skips_a_phase_without_intensity_or_with_zero_flops() -> None:
    row = _roofline_row(decode_arithmetic_intensity_flop_per_byte=float("nan"), prefill_achieved_flops_per_s=0.0)
    fig = roofline(row)
    assert "decode" not in _names(fig) and "prefill" not in _names(fig)
    text = _annotations(fig)
    assert "decode: no arithmetic intensity or achieved FLOP/s measured" in text
    assert "prefill: a value ≤ 0 cannot be placed on log axes" in text


def test_roofline_of_an_empty_row_is_a_message() -> None:
    fig = roofline({})
    assert _is_message_figure(fig)
    _payload(fig)


# --- utilization_bars ----------------------------------------------------------------------------------------


def test_utilization_bars_are_percent_and_a_missing_value_has_no_bar() -> None:
    row = {
        "run_id": "r1",
        "prefill_s_mbu": 0.5,
        "prefill_s_mfu": 0.25,
        "decode_s_mbu": 0.8,
        "decode_s_mfu": float("nan"),
        "mixed_s_mbu": None,
    }
    fig = utilization_bars(row)
    mbu, mfu = _trace(fig, "S-MBU"), _trace(fig, "S-MFU")
    assert list(mbu.x) == ["prefill", "decode"] and list(mfu.x) == ["prefill", "decode"]
    _close(mbu.y, [50.0, 80.0])
    _close(mfu.y, [25.0, None])  # None, not 0
    assert "decode S-MFU" in _annotations(fig)
    assert "mixed" in _annotations(fig)
    ceiling = [shape for shape in fig.layout.shapes if shape.y0 == 100.0 and shape.y1 == 100.0]
    assert len(ceiling) == 1 and ceiling[0].line.dash == "dash"
    assert fig.layout.yaxis.range[1] >= 100.0
    assert "%" in fig.layout.yaxis.title.text
    payload = _payload(fig)
    assert [trace["y"] for trace in payload["data"] if trace["name"] == "S-MFU"] == [[25.0, None]]


def test_utilization_bars_axis_reaches_values_above_the_ceiling() -> None:
    fig = utilization_bars({"decode_s_mbu": 1.5})
    assert fig.layout.yaxis.range[1] >= 150.0


def test_utilization_bars_of_an_unmeasured_run_is_a_message() -> None:
    fig = utilization_bars({"run_id": "r1"})
    assert _is_message_figure(fig)
    _payload(fig)


# --- expert_activation ---------------------------------------------------------------------------------------


def _expert_row(**overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "run_id": "r1",
        "num_experts": 8,
        "experts_top_k": 2,
        "num_moe_layers": 4,
        "prefill_experts_active_per_layer": "[7.5, 8.0, null, 8.0]",
        "decode_experts_active_per_layer": "[2.5, 3.0, 2.75, 2.0]",
        "prefill_uniform_experts_expected": 7.9,
        "decode_uniform_experts_expected": 3.1,
    }
    row.update(overrides)
    return row


def test_expert_activation_bars_are_the_parsed_lists_and_lines_the_expectation() -> None:
    fig = expert_activation(_expert_row())
    prefill, decode = _trace(fig, "prefill measured"), _trace(fig, "decode measured")
    assert list(prefill.x) == [0, 1, 2, 3]
    _close(prefill.y, [7.5, 8.0, None, 8.0])
    _close(decode.y, [2.5, 3.0, 2.75, 2.0])
    for phase, expected in (("prefill", 7.9), ("decode", 3.1)):
        line = _trace(fig, f"{phase} uniform expectation")
        _close(line.y, [expected, expected])
        assert line.line.dash == "dash"
        assert line.x[0] < 0 and line.x[-1] > 3  # spans all four layers
    assert "top-k 2 of 8" in fig.layout.title.text
    assert "prefill: 1 of 4 layers not measured" in _annotations(fig)
    _payload(fig)


@pytest.mark.parametrize(
    "cell", ["[1, 2", '{"a": 1}', '["x"]', "[true]", "[[1]]", "7", "[]", "nan", "[" * 100_000 + "]" * 100_000]
)
def test_expert_activation_bad_json_is_a_note_not_an_exception(cell: str) -> None:
    fig = expert_activation(_expert_row(decode_experts_active_per_layer=cell))
    assert "decode measured" not in _names(fig)
    assert "prefill measured" in _names(fig)
    assert "decode: per-layer activation" in _annotations(fig)
    _payload(fig)


def test_expert_activation_layer_count_mismatch_is_noted() -> None:
    fig = expert_activation(_expert_row(num_moe_layers=6))
    assert "4 layers in the list but num_moe_layers is 6" in _annotations(fig)


def test_expert_activation_of_an_unmeasured_run_is_a_message() -> None:
    fig = expert_activation({"run_id": "r1", "prefill_experts_active_per_layer": "", "num_experts": 8})
    assert _is_message_figure(fig)
    assert "not measured" in _annotations(fig)
    _payload(fig)


# --- latency_percentiles -------------------------------------------------------------------------------------


def test_latency_percentiles_bars_per_statistic_with_gaps_for_missing_values() -> None:
    row: dict[str, object] = {"run_id": "r1"}
    for metric, base in (("ttft", 0.1), ("tpot", 0.01), ("e2e_latency", 2.0)):
        for factor, stat in enumerate(("mean", "p50", "p90", "p99", "max"), start=1):
            row[f"{metric}_{stat}_s"] = base * factor
    row["tpot_p99_s"] = float("nan")
    row["e2e_latency_max_s"] = 0.0  # not drawable on a log axis
    fig = latency_percentiles(row)
    assert _names(fig) == ["mean", "p50", "p90", "p99", "max"]
    p99, maximum = _trace(fig, "p99"), _trace(fig, "max")
    assert list(p99.x) == ["TTFT", "TPOT", "ITL", "E2E latency"]
    _close(p99.y, [0.4, None, None, 8.0])
    _close(maximum.y, [0.5, 0.05, None, None])
    text = _annotations(fig)
    assert "ITL: not measured" in text and "TPOT: p99 not measured" in text and "E2E latency: max ≤ 0 s" in text
    assert fig.layout.yaxis.type == "log" and "(s" in fig.layout.yaxis.title.text
    _payload(fig)


def test_latency_percentiles_of_an_unmeasured_run_is_a_message() -> None:
    fig = latency_percentiles({"run_id": "r1"})
    assert _is_message_figure(fig)
    _payload(fig)


# --- cap_scatter ---------------------------------------------------------------------------------------------


def _five_runs() -> pd.DataFrame:
    # (cost USD/1M tok, accuracy fraction): A, B, D are the front; C and E are dominated by B.
    return pd.DataFrame(
        {
            "run_id": ["A", "B", "C", "D", "E"],
            "label": ["run A", "run B", "run C", "run D", "run E"],
            "usd_per_1m_output_tokens": [1.0, 2.0, 3.0, 4.0, 2.5],
            "accuracy": [0.50, 0.70, 0.60, 0.90, 0.65],
            "output_tokens_per_s": [100.0, 400.0, 50.0, 200.0, 300.0],
            "tpot_mean_s": [0.02, 0.01, float("nan"), 0.03, 0.04],
        }
    )


def test_cap_scatter_pareto_trace_holds_exactly_the_front() -> None:
    fig = cap_scatter(_five_runs())
    front = _trace(fig, "Pareto front")
    _close(front.x, [1.0, 2.0, 4.0])
    _close(front.y, [50.0, 70.0, 90.0])
    assert front.line.shape == "hv"
    assert [text.split("<br>")[0] for text in front.hovertext] == ["<b>run A</b>", "<b>run B</b>", "<b>run D</b>"]
    runs = _trace(fig, "Runs")
    assert sorted(zip(runs.x, runs.y, strict=True)) == [(1.0, 50.0), (2.0, 70.0), (2.5, 65.0), (3.0, 60.0), (4.0, 90.0)]
    assert fig.layout.xaxis.title.text == "Cost (USD / 1M output tokens)"
    assert fig.layout.yaxis.title.text == "Accuracy (%)"
    _payload(fig)


def test_cap_scatter_third_dimension_is_color_and_size() -> None:
    frame = _five_runs()
    fig = cap_scatter(frame)
    runs = _trace(fig, "Runs")
    by_cost = dict(zip(runs.x, zip(runs.marker.color, runs.marker.size, strict=True), strict=True))
    for cost, throughput in zip(frame["usd_per_1m_output_tokens"], frame["output_tokens_per_s"], strict=True):
        assert by_cost[cost][0] == throughput
    sizes = {cost: size for cost, (_, size) in by_cost.items()}
    assert sizes[2.0] == max(sizes.values())  # 400 tokens/s, the largest
    assert sizes[3.0] == min(sizes.values())  # 50 tokens/s, the smallest
    assert sizes[3.0] > 0
    assert runs.marker.colorbar.title.text == "Throughput (output tokens/s)"


def test_cap_scatter_tpot_third_puts_unmeasured_runs_in_their_own_trace() -> None:
    fig = cap_scatter(_five_runs(), third="tpot_mean_s")
    assert _trace(fig, "Runs").marker.colorbar.title.text == "TPOT mean (s)"
    grey = _trace(fig, "Runs (TPOT not measured)")
    _close(grey.x, [3.0])
    assert "without TPOT" in _annotations(fig)
    assert len(_trace(fig, "Runs").x) == 4


def test_cap_scatter_leaves_out_runs_missing_cost_or_accuracy_and_says_how_many() -> None:
    frame = _five_runs()
    extra = pd.DataFrame(
        {
            "run_id": ["F", "G"],
            "label": ["run F", "run G"],
            # F would dominate everything if its missing accuracy were taken as a number; G likewise for cost.
            "usd_per_1m_output_tokens": [0.5, float("nan")],
            "accuracy": [float("nan"), 0.99],
            "output_tokens_per_s": [999.0, 999.0],
            "tpot_mean_s": [0.001, 0.001],
        }
    )
    fig = cap_scatter(pd.concat([frame, extra], ignore_index=True))
    for trace in fig.data:
        assert 0.5 not in list(trace.x)
        assert 99.0 not in list(trace.y)
        assert 0.0 not in list(trace.y)
    _close(_trace(fig, "Pareto front").x, [1.0, 2.0, 4.0])
    text = _annotations(fig)
    assert "2 runs of 7 not plotted" in text
    assert "1 run without cost" in text and "1 run without accuracy" in text
    assert "run F" not in json.dumps(_payload(fig)["data"])


def test_cap_scatter_uses_run_id_when_there_is_no_label_column() -> None:
    fig = cap_scatter(_five_runs().drop(columns=["label"]))
    assert "<b>A</b>" in "".join(_trace(fig, "Runs").hovertext)


@pytest.mark.parametrize(
    "frame",
    [
        pd.DataFrame(),
        _five_runs().iloc[0:0],
        pd.DataFrame({"run_id": ["A"], "usd_per_1m_output_tokens": [1.0]}),  # no accuracy column at all
    ],
)
def test_cap_scatter_with_nothing_to_plot_is_a_message(frame: pd.DataFrame) -> None:
    fig = cap_scatter(frame)
    assert _is_message_figure(fig)
    if len(frame):
        assert "1 run of 1 not plotted" in _annotations(fig)
    _payload(fig)


def test_cap_scatter_rejects_an_unknown_third_dimension() -> None:
    with pytest.raises(ValueError, match="third"):
        cap_scatter(_five_runs(), third="energy_per_output_token_j")  # type: ignore[arg-type]


# --- cap_radar -----------------------------------------------------------------------------------------------

_ACC = RadarAxis("accuracy", "Accuracy", "fraction", higher_is_better=True)
_COST = RadarAxis("usd_per_1m_output_tokens", "Cost", "USD/1M tok", higher_is_better=False)


def _radar_input(index: list[int]) -> tuple[pd.DataFrame, RadarData]:
    frame = pd.DataFrame(
        {
            "run_id": ["r1", "r2", "r3"],
            "label": ["one", "two", "three"],
            "accuracy": [0.8, 0.4, 0.6],
            "usd_per_1m_output_tokens": [0.0123, 0.0246, float("nan")],
        },
        index=index,
    )
    scores = pd.DataFrame(
        {"accuracy": [1.0, 0.5, 0.75], "usd_per_1m_output_tokens": [1.0, 0.5, float("nan")]}, index=index
    )
    radar = RadarData(
        axes=(_ACC, _COST),
        scores=scores,
        best={"accuracy": 0.8, "usd_per_1m_output_tokens": 0.0123},
        notes=("three: no Cost (gap in its outline).",),
    )
    return frame, radar


def test_cap_radar_one_closed_trace_per_run_with_gaps_as_none() -> None:
    frame, radar = _radar_input([10, 20, 30])
    fig = cap_radar(frame, radar)
    assert _names(fig) == ["one", "two", "three"]
    _close(_trace(fig, "one").r, [1.0, 1.0, 1.0])
    _close(_trace(fig, "two").r, [0.5, 0.5, 0.5])
    _close(_trace(fig, "three").r, [0.75, None, 0.75])  # the NaN cost score is a gap, not 0
    theta = list(_trace(fig, "one").theta)
    assert theta == ["Accuracy (best 80 %)", "Cost (best 0.0123 USD/1M tok)", "Accuracy (best 80 %)"]
    assert list(fig.layout.polar.radialaxis.range) == [0.0, 1.0]
    text = _annotations(fig)
    assert NORMALIZATION in text and "three: no Cost" in text
    payload = _payload(fig)
    assert [trace["r"] for trace in payload["data"] if trace["name"] == "three"] == [[0.75, None, 0.75]]


def test_cap_radar_matches_scores_by_index_not_position() -> None:
    frame, radar = _radar_input([10, 20, 30])
    shuffled = RadarData(radar.axes, radar.scores.loc[[30, 10, 20]], radar.best, radar.notes)
    fig = cap_radar(frame, shuffled)
    _close(_trace(fig, "two").r, [0.5, 0.5, 0.5])
    _close(_trace(fig, "three").r, [0.75, None, 0.75])


def test_cap_radar_with_normalize_draws_every_run() -> None:
    frame, _ = _radar_input([0, 1, 2])
    fig = cap_radar(frame, normalize(frame))
    assert _names(fig) == ["one", "two", "three"]
    _close(_trace(fig, "two").r, [0.4 / 0.8, 0.0123 / 0.0246, 0.4 / 0.8])


def test_cap_radar_with_nothing_to_draw_is_a_message() -> None:
    empty = pd.DataFrame({"run_id": pd.Series([], dtype=object)})
    fig = cap_radar(empty, normalize(empty))
    assert _is_message_figure(fig)
    _payload(fig)
    frame = pd.DataFrame({"run_id": ["r1"], "label": ["one"]})
    fig = cap_radar(frame, RadarData(axes=(), scores=pd.DataFrame(index=frame.index), best={}, notes=("none",)))
    assert _is_message_figure(fig)
    _payload(fig)


# --- hostile text --------------------------------------------------------------------------------------------


def _hostile_row() -> dict[str, object]:
    row: dict[str, object] = {**_roofline_row(), **_expert_row()}
    row.update(
        {
            "run_id": HOSTILE,
            "label": HOSTILE,
            "ceiling_source": HOSTILE,
            "ceiling_compute_dtype": HOSTILE,
            "ttft_p50_s": 0.1,
        }
    )
    return row


def _hostile_frame() -> pd.DataFrame:
    frame = _five_runs()
    frame.loc[1, "label"] = HOSTILE
    frame.loc[2, "run_id"] = HOSTILE
    frame.loc[2, "label"] = float("nan")  # falls back to the (hostile) run_id
    return frame


def _hostile_radar() -> go.Figure:
    frame = _hostile_frame()
    radar = normalize(frame)
    return cap_radar(frame, RadarData(radar.axes, radar.scores, radar.best, (*radar.notes, HOSTILE)))


FIGURES: dict[str, Callable[[], go.Figure]] = {
    "roofline": lambda: roofline(_hostile_row()),
    "utilization_bars": lambda: utilization_bars(_hostile_row()),
    "expert_activation": lambda: expert_activation(_hostile_row()),
    "latency_percentiles": lambda: latency_percentiles(_hostile_row()),
    "cap_scatter": lambda: cap_scatter(_hostile_frame()),
    "cap_radar": _hostile_radar,
    "empty_figure": lambda: empty_figure(HOSTILE),
}


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_file_text_is_never_raw_html_in_a_figure(name: str) -> None:
    strings = list(_strings(_payload(FIGURES[name]())))
    for text in strings:
        assert HOSTILE not in text
        assert "<script" not in text and "<a " not in text and "</a>" not in text
    assert any(HOSTILE_ESCAPED in text for text in strings), "the label should be shown, escaped"
