"""CSV export: one row per run, units in column names, empty cells (never 0) for unmeasured figures."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest

from capbench.cli import export as export_cli
from capbench.errors import CapbenchError
from capbench.metrics.score import score_run
from capbench.summary.columns import NAMES as COLUMNS
from capbench.summary.export import export_runs, summary_row, write_csv
from tests.support.summaries import MANIFEST, full_summary

# Columns that name things or settings rather than quantities (no unit to carry).
LABELS = {
    "accuracy",  # the task metric's value (dimensionless; which metric: accuracy_metric)
    "accuracy_stderr",  # its standard error, same scale
    "std_accuracy",  # over repeats: the same scale as accuracy
    "ci95_low_accuracy",
    "ci95_high_accuracy",
    "num_repeats",  # a count of runs
    "capacity_search_id",  # capacity: which search
    "capacity_search",  # concurrency or rate
    "capacity_point",  # bool: the run at the capacity
    "capacity_probe_verdict",  # pass or fail
    "accuracy_task",  # task name
    "accuracy_metric",  # lm-eval metric,filter key
    "accuracy_samples",  # number of scored samples
    "top_k_override",  # experts per token at inference (count)
    "fixed_length_exact",  # bool: every request got the asked token counts
    "arrival",  # open-loop distribution name
    "burstiness",  # gamma shape parameter, dimensionless
    "client_bound",  # bool: the client itself limited the run
    "run_id",
    "status",
    "spec_version",
    "summary_schema_version",
    "capbench_version",
    "model",
    "model_type",
    "engine",
    "engine_version",
    "hardware_profile",
    "hardware_profile_selected_by",
    "gpu_name",
    "dtype_weights",
    "dtype_experts",
    "dtype_embeddings",
    "dtype_kv",
    "dtype_compute",
    "load_pattern",
    "seed",
    "dataset",
    "ceiling_compute_dtype",
    "ceiling_source",
    "energy_source",
    "usd_per_gpu_hour_source",
    "energy_cost_source",
    "expert_activation_source",
    "num_experts",  # routed experts per MoE layer (count)
    "experts_top_k",  # experts per token (count)
    "num_moe_layers",  # count
    "python_version",
    "torch_version",
    "transformers_version",
    "lm_eval_version",
    "lock_sha256",
    "lock_matches",  # bool
    "engine_torch_version",
    "engine_transformers_version",
    "engine_lock_sha256",
    "engine_lock_matches",  # bool
    "replay_speed",  # a ratio of speeds
}
UNIT = re.compile(
    r"(_s|_j|_w|_usd|_kwh|_per_s|_per_s_per_gpu|_per_s_per_user|_flop_per_byte|_tokens|_requests|_passes|_sessions|_gpus|_rate|_fraction|_s_mbu(_p50|_p90)?"
    r"|_s_mfu(_p50|_p90)?|_bytes|_flops|_per_layer|_experts_active|_experts_expected|_over_mean|_cv|_activation_source|_preemptions|concurrency)$"
    r"|^usd_per_"
)


def make_run(root: Path, name: str, manifest: dict[str, Any], summary: dict[str, Any] | None) -> Path:
    run = root / name
    run.mkdir()
    (run / "run.json").write_bytes(orjson.dumps({**manifest, "run_id": name}))
    if summary is not None:
        (run / "summary.json").write_bytes(orjson.dumps({**summary, "run_id": name}))
    return run


def test_every_quantity_column_names_its_unit() -> None:
    missing = [c for c in COLUMNS if c not in LABELS and not UNIT.search(c)]
    assert missing == []
    for required in (
        "ttft_p50_s",
        "ttft_p99_s",
        "tpot_mean_s",
        "itl_p50_s",
        "e2e_latency_p90_s",
        "output_tokens_per_s",
        "requests_per_s",
        "prefill_s_mbu",
        "decode_s_mbu",
        "decode_s_mfu",
        "decode_step_latency_p50_s",
        "decode_mean_experts_active",
        "energy_per_output_token_j",
        "usd_per_1m_output_tokens",
        "deployment_capital_usd",
        "num_gpus",
        "concurrency",
        "num_requests",
        "request_rate_per_s",
        "goodput_fraction",
        "goodput_requests_per_s",
        "mean_in_flight_requests",
        "client_cpu_fraction",
        "ttft_max_s",
    ):
        assert required in COLUMNS


def test_summary_row_values() -> None:
    row = summary_row(MANIFEST, full_summary())
    assert list(row) == list(COLUMNS)
    assert row["model"] == "toy-moe" and row["engine"] == "hf" and row["num_gpus"] == 1
    assert row["dtype_kv"] == "fp8" and row["concurrency"] == 2
    assert row["ttft_p50_s"] == pytest.approx(0.01)
    assert row["decode_mean_experts_active"] == 2.5
    assert row["mixed_s_mbu"] is None  # no mixed pass: unmeasured, not 0
    assert row["usd_per_1m_output_tokens"] is not None


def test_roofline_and_per_layer_columns() -> None:
    summary = full_summary()
    decode = summary["phases"]["decode"]
    summary["experts"]["decode"]["mean_active_per_layer"] = [2.5, None, 3.0]
    row = summary_row(MANIFEST, summary)
    assert (row["decode_bytes"], row["decode_flops"], row["decode_time_s"]) == (
        decode["bytes"],
        decode["flops"],
        decode["time_s"],
    )
    assert row["decode_experts_active_per_layer"] == "[2.5,null,3.0]"
    assert row["num_experts"] == summary["experts"]["num_experts"]
    assert row["experts_top_k"] == summary["experts"]["top_k"]
    summary["experts"]["decode"]["mean_active_per_layer"] = [{"nested": 1}]
    assert summary_row(MANIFEST, summary)["decode_experts_active_per_layer"] is None  # not a list of numbers
    bare = summary_row({}, {})
    assert bare["decode_bytes"] is None and bare["prefill_experts_active_per_layer"] is None


def test_csv_round_trip_keeps_empty_cells(tmp_path: Path) -> None:
    bare = score_run(MANIFEST, [], [], [], structure=None, widths=None, ceilings=None, cost=None)
    runs = [make_run(tmp_path, "full", MANIFEST, full_summary()), make_run(tmp_path, "bare", MANIFEST, bare)]
    frame = export_runs(runs)
    assert list(frame.columns) == list(COLUMNS) and len(frame) == 2
    out = tmp_path / "results.csv"
    write_csv(frame, out)
    back = pd.read_csv(out)
    assert back.loc[0, "run_id"] == "full" and back.loc[1, "run_id"] == "bare"
    assert back.loc[0, "decode_s_mbu"] == pytest.approx(frame.loc[0, "decode_s_mbu"], rel=0, abs=0)
    for column in ("decode_s_mbu", "ttft_p50_s", "energy_j", "usd_per_1m_output_tokens", "output_tokens"):
        assert pd.isna(back.loc[1, column]), column
    header, _full, bare_line = out.read_text().splitlines()
    cells = dict(zip(header.split(","), bare_line.split(","), strict=True))
    assert cells["decode_s_mbu"] == "" and cells["output_tokens_per_s"] == "" and cells["energy_j"] == ""
    assert cells["measured_requests"] == "0"  # a real count of zero stays 0
    assert cells["num_gpus"] == "1"  # integers stay integers


def test_missing_summary_tells_the_user_to_score(tmp_path: Path) -> None:
    run = make_run(tmp_path, "unscored", MANIFEST, None)
    with pytest.raises(CapbenchError, match="capbench score"):
        export_runs([run])


def test_missing_run_dir_is_named(tmp_path: Path) -> None:
    with pytest.raises(CapbenchError, match="nope does not exist"):
        export_runs([tmp_path / "nope"])


def test_cli(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    export_cli.register(parser.add_subparsers())
    run = make_run(tmp_path, "full", MANIFEST, full_summary())
    out = tmp_path / "out.csv"
    args = parser.parse_args(["export", str(run), "-o", str(out)])
    assert args.handler(args) == 0
    assert pd.read_csv(out).loc[0, "run_id"] == "full"
    bad = parser.parse_args(["export", str(run), "-o", str(tmp_path / "no" / "such" / "dir.csv")])
    with pytest.raises(CapbenchError, match="cannot write the CSV"):
        bad.handler(bad)
