"""Table helpers: derived labels, filters, sorting with missing last, display values, CSV download round trip."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from capbench.leaderboard.data import load_results
from capbench.leaderboard.table import (
    DERIVED_COLUMNS,
    DISPLAY_COLUMNS,
    FILTER_DIMENSIONS,
    SOURCE_COLUMNS,
    add_derived,
    apply_filters,
    csv_bytes,
    display_frame,
    display_text,
    filter_options,
    format_value,
    sort_runs,
)

NAN = math.nan


def runs() -> pd.DataFrame:
    """Five runs covering each derived-column rule (values chosen by hand)."""
    return add_derived(
        pd.DataFrame(
            {
                "run_id": ["a", "b", "c", "d", "e"],
                "model": ["qwen", "qwen", "mixtral", "mixtral", None],
                "engine": ["vllm", "hf", "vllm", "vllm", "hf"],
                "hardware_profile": ["h100-sxm", "cpu-probe", "h100-sxm", "a100", None],
                "gpu_name": ["NVIDIA H100", None, "NVIDIA H100", "NVIDIA A100", None],
                "num_gpus": [8.0, 0.0, 1.0, 2.0, NAN],
                "dtype_weights": ["bfloat16", "float32", "bfloat16", "bfloat16", None],
                "dtype_experts": ["fp8", "float32", None, "bfloat16", None],
                "accuracy_task": ["gsm8k", None, "gsm8k", "mmlu", None],
                "load_pattern": ["closed_loop", "static_batches", "open_loop", "closed_loop", None],
                "concurrency": [16.0, 4.0, NAN, 64.0, NAN],
                "request_rate_per_s": [NAN, NAN, 2.5, NAN, NAN],
                "top_k_override": [NAN, 2.0, NAN, NAN, NAN],
                "accuracy": [0.8, NAN, 0.7, 0.6, NAN],
                "usd_per_1m_output_tokens": [3.0, 0.5, NAN, 1.0, 2.0],
                "status": ["complete"] * 5,
            }
        )
    )


def test_add_derived_columns() -> None:
    frame = runs()
    assert frame["hardware"].tolist() == ["h100-sxm ×8", "CPU (cpu-probe)", "h100-sxm", "a100 ×2", "—"]
    assert frame["precision"].tolist() == ["bfloat16 + experts fp8", "float32", "bfloat16", "bfloat16", "—"]
    assert frame["task"].tolist() == ["gsm8k", "none", "gsm8k", "mmlu", "none"]
    assert frame["load"].tolist() == ["concurrency 16", "concurrency 4", "rate 2.5/s", "concurrency 64", "—"]
    assert frame["label"].tolist() == [
        "qwen · vllm · bfloat16 + experts fp8 · concurrency 16",
        "qwen · hf · float32 · top-k 2 · concurrency 4",
        "mixtral · vllm · bfloat16 · rate 2.5/s",
        "mixtral · vllm · bfloat16 · concurrency 64",
        "— · hf · — · —",
    ]


def test_add_derived_returns_a_copy_and_handles_absent_columns() -> None:
    bare = pd.DataFrame({"run_id": ["x"]})
    derived = add_derived(bare)
    assert list(bare.columns) == ["run_id"]
    assert derived.loc[0, "hardware"] == "—"  # no GPU count recorded: unknown, not "CPU"
    assert add_derived(pd.DataFrame({"hardware_profile": ["h100-sxm"]})).loc[0, "hardware"] == "h100-sxm"
    assert add_derived(pd.DataFrame({"num_gpus": [0.0]})).loc[0, "hardware"] == "CPU"
    assert derived.loc[0, "load"] == "—"
    assert derived.loc[0, "task"] == "none"


def test_gpu_without_count_is_not_cpu() -> None:
    frame = add_derived(pd.DataFrame({"hardware_profile": ["h100"], "gpu_name": ["NVIDIA H100"], "num_gpus": [NAN]}))
    assert frame.loc[0, "hardware"] == "h100"


def test_filter_options_sorted() -> None:
    options = filter_options(runs())
    assert list(options) == list(FILTER_DIMENSIONS)
    assert options["model"] == ["mixtral", "qwen", "—"]
    assert options["engine"] == ["hf", "vllm"]
    assert options["hardware"] == ["a100 ×2", "CPU (cpu-probe)", "h100-sxm", "h100-sxm ×8", "—"]
    assert options["precision"] == ["bfloat16", "bfloat16 + experts fp8", "float32", "—"]
    assert options["task"] == ["gsm8k", "mmlu", "none"]
    # by number, not as text ("concurrency 16" < "concurrency 4" as text)
    assert options["load"] == ["concurrency 4", "concurrency 16", "concurrency 64", "rate 2.5/s", "—"]


def test_filter_options_load_numeric_order_with_rates() -> None:
    frame = add_derived(
        pd.DataFrame({"load_pattern": ["open_loop"] * 3, "request_rate_per_s": [10.0, 2.0, 0.5]}),
    )
    assert filter_options(frame)["load"] == ["rate 0.5/s", "rate 2/s", "rate 10/s"]


def ids(frame: pd.DataFrame) -> list[str]:
    return list(frame["run_id"])


@pytest.mark.parametrize(
    ("dimension", "values", "expected"),
    [
        ("model", ["qwen"], ["a", "b"]),
        ("model", ["—"], ["e"]),
        ("engine", ["hf"], ["b", "e"]),
        ("hardware", ["h100-sxm", "a100 ×2"], ["c", "d"]),
        ("precision", ["bfloat16"], ["c", "d"]),
        ("task", ["none"], ["b", "e"]),
        ("load", ["concurrency 4", "rate 2.5/s"], ["b", "c"]),
    ],
)
def test_apply_filters_each_dimension(dimension: str, values: list[str], expected: list[str]) -> None:
    assert ids(apply_filters(runs(), {dimension: values})) == expected


def test_apply_filters_combined() -> None:
    frame = runs()
    assert ids(apply_filters(frame, {"engine": ["vllm"], "task": ["gsm8k"]})) == ["a", "c"]
    assert ids(apply_filters(frame, {"engine": ["vllm"], "task": ["gsm8k"], "load": ["rate 2.5/s"]})) == ["c"]
    assert ids(apply_filters(frame, {"engine": ["hf"], "model": ["mixtral"]})) == []


def test_apply_filters_empty_selection_is_no_constraint() -> None:
    frame = runs()
    assert ids(apply_filters(frame, {})) == ["a", "b", "c", "d", "e"]
    assert ids(apply_filters(frame, {"model": [], "engine": None})) == ["a", "b", "c", "d", "e"]
    assert ids(apply_filters(frame, {"model": ["nothing-like-this"]})) == []


def test_apply_filters_unknown_dimension() -> None:
    with pytest.raises(ValueError, match="'color'"):
        apply_filters(runs(), {"color": ["red"]})


def test_sort_missing_last_both_directions() -> None:
    frame = runs()
    # cost: a 3.0, b 0.5, c NaN, d 1.0, e 2.0
    assert ids(sort_runs(frame, "usd_per_1m_output_tokens", ascending=True)) == ["b", "d", "e", "a", "c"]
    assert ids(sort_runs(frame, "usd_per_1m_output_tokens", ascending=False)) == ["a", "e", "d", "b", "c"]
    # text with a missing value (model e is None) and a derived "—" (precision e)
    assert ids(sort_runs(frame, "model", ascending=True)) == ["c", "d", "a", "b", "e"]
    assert ids(sort_runs(frame, "model", ascending=False)) == ["a", "b", "c", "d", "e"]
    assert ids(sort_runs(frame, "precision", ascending=False))[-1] == "e"
    assert ids(sort_runs(frame, "precision", ascending=True))[-1] == "e"


def test_sort_by_load_is_numeric() -> None:
    frame = runs()  # load: a "concurrency 16", b "concurrency 4", c "rate 2.5/s", d "concurrency 64", e "—"
    assert ids(sort_runs(frame, "load", ascending=True)) == ["b", "a", "d", "c", "e"]
    assert ids(sort_runs(frame, "load", ascending=False)) == ["c", "d", "a", "b", "e"]


def test_display_text_does_not_rescale() -> None:
    table = display_frame(runs())
    assert display_text(table.loc[0, "Accuracy (%)"]) == "80"  # display_frame scaled 0.8 once
    assert display_text(table.loc[1, "Accuracy (%)"]) == "—"
    assert display_text(table.loc[1, "Cost (USD / 1M output tokens)"]) == "0.5"


def test_sort_unknown_column() -> None:
    with pytest.raises(ValueError, match="nope"):
        sort_runs(runs(), "nope", ascending=True)


def test_display_frame() -> None:
    table = display_frame(runs())
    assert list(table.columns) == [header for _, header in DISPLAY_COLUMNS]
    accuracy = table["Accuracy (%)"].tolist()
    assert accuracy[0] == pytest.approx(80.0) and math.isnan(accuracy[1])  # percent, NaN stays NaN (never 0)
    assert table["Accuracy (%)"].dtype == np.float64  # numbers stay numbers: the table sorts numerically
    assert table["Cost (USD / 1M output tokens)"].tolist()[:2] == [3.0, 0.5]
    assert table["Throughput (output tokens/s)"].isna().all()  # absent column: missing, not 0
    assert table["Top-k override"].tolist()[1] == 2
    assert pd.isna(table["Top-k override"].tolist()[0])
    assert table["Model"].tolist()[4] == "—"
    assert table["Run ID"].tolist() == ["a", "b", "c", "d", "e"]


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("accuracy", None, "—"),
        ("accuracy", NAN, "—"),
        ("model", "", "—"),
        ("model", pd.NA, "—"),
        ("accuracy", 0.8523, "85.23"),
        ("decode_s_mbu", 0.0452808, "4.528"),
        ("Accuracy (%)", 0.5, "50"),
        ("usd_per_1m_output_tokens", 0.0123456, "0.01235"),
        ("output_tokens_per_s", 2148.447, "2148"),
        ("output_tokens_per_s", 123456.7, "123500"),
        ("ttft_p50_s", 0.0000123456, "0.00001235"),
        ("concurrency", 4.0, "4"),
        ("num_gpus", 0.0, "0"),  # a measured 0 is 0
        ("accuracy_samples", 200, "200"),
        ("client_bound", True, "yes"),
        ("model", "<b>x</b> | y", "<b>x</b> | y"),  # text as is, not escaped
    ],
)
def test_format_value(column: str, value: object, expected: str) -> None:
    assert format_value(column, value) == expected


def test_csv_bytes_round_trip(tmp_path: Path) -> None:
    header = (
        "run_id,model,summary_schema_version,spec_version,accuracy,usd_per_1m_output_tokens,"
        "client_bound,concurrency,decode_experts_active_per_layer,my_extra"
    )
    rows = [
        'r1,"model, with comma",1,1.0,0.30000000000000004,1e-05,True,4,"[7.5, null, 8.0]",x',
        'r2,"say ""hi""\nnext line",1,1.0,,123456789.123456789,,,,',
        "r3,m,1,1.1,1,2,False,16,,",
    ]
    source = tmp_path / "source.csv"
    source.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    original = load_results([source])
    assert original.warnings == ()

    data = csv_bytes(original.frame)
    assert isinstance(data, bytes)
    written_header = data.decode("utf-8").split("\n", 1)[0].split(",")
    assert not set(written_header) & (set(SOURCE_COLUMNS) | set(DERIVED_COLUMNS))
    assert "my_extra" in written_header

    copy = tmp_path / "copy.csv"
    copy.write_bytes(data)
    reloaded = load_results([copy])
    assert reloaded.warnings == ()
    left = original.frame.drop(columns=["source_file"])
    right = reloaded.frame.drop(columns=["source_file"])
    pd.testing.assert_frame_equal(left, right)
    # full precision, missing stays missing
    assert right.loc[0, "accuracy"] == 0.30000000000000004
    assert right.loc[0, "usd_per_1m_output_tokens"] == 1e-05
    assert math.isnan(right.loc[1, "accuracy"])
    assert right.loc[1, "model"] == 'say "hi"\nnext line'


def test_csv_bytes_of_filtered_runs(tmp_path: Path) -> None:
    frame = runs()
    data = csv_bytes(apply_filters(frame, {"engine": ["hf"]})).decode("utf-8")
    lines = data.strip("\n").split("\n")
    assert len(lines) == 3  # header + runs b and e
    assert lines[1].split(",")[0] == "b"
    header = lines[0].split(",")
    cost = header.index("usd_per_1m_output_tokens")
    accuracy = header.index("accuracy")
    assert lines[1].split(",")[cost] == "0.5"
    assert lines[1].split(",")[accuracy] == ""  # missing: empty cell, not 0 or nan
