"""Every CSV column reads what the runs really write: filled from real runs (the embedded demo with its accuracy
task, an openai run against the mock server), and a re-scored run exported under its new hardware."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from capbench.cli import main
from capbench.summary.columns import COLUMNS, Column
from capbench.summary.export import summary_row
from capbench.testing.mock_server import MockServerProcess, MockSettings

pytestmark = pytest.mark.integration

ONLY_WHERE_NOT_RUN_HERE: Mapping[tuple[str, ...], str] = {
    ("engine", "versions"): "written by a launched vLLM only (its own environment); tests/integration/runners",
    ("load", "dataset", "replay_speed"): "written by trace replays only; tests/integration/workload reads it back",
    ("load", "dataset", "think_time_s"): "written by multi-turn runs only; tests/integration/workload reads it back",
}
"""run.json paths no CPU run without vLLM writes, with who writes them: exempt from 'resolves in a real run'."""
SUMMARY_ONLY_WHERE_NOT_RUN_HERE: Mapping[tuple[str, ...], str] = {
    ("phases", "mixed"): "present phases only: a step mixing prefill and decode (vLLM with chunked prefill)",
    ("capacity",): "added by `capbench export` of a capacity search's probes; tests/integration/capacity",
    ("repeats",): "a repeats' summary only (`capbench run --repeats`); tests/integration/run/test_repeats.py",
}


@pytest.fixture(scope="module")
def demo_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("columns") / "demo"
    assert (
        main(["run", "--out", str(out), "--num-requests", "8", "--max-tokens", "8", "--concurrency", "4", "--quiet"])
        == 0
    )
    return out


@pytest.fixture(scope="module")
def server() -> Iterator[MockServerProcess]:
    with MockServerProcess(MockSettings(ttft_s=0.01, itl_s=0.002, output_tokens=8)) as proc:
        yield proc


@pytest.fixture(scope="module")
def openai_run(server: MockServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("columns") / "openai"
    args = ["run", "--runner", "openai", "--base-url", server.url, "--out", str(out), "--power", "none", "--quiet"]
    assert (
        main(
            [
                *args,
                "--num-requests",
                "12",
                "--concurrency",
                "3",
                "--slo",
                "ttft_s=0.5,tpot_s=0.05,itl_s=0.05,e2e_latency_s=2",
            ]
        )
        == 0
    )
    return out


def _load(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    manifest = json.loads((run_dir / "run.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    return manifest, summary


def resolve(record: Any, path: tuple[str, ...]) -> str:
    """``present`` (the last key exists), ``null`` (a level on the way is null: not measured) or ``missing`` (a
    mapping on the way lacks the key: the path names something the run does not write)."""
    for key in path:
        if record is None:
            return "null"
        if not isinstance(record, Mapping) or key not in record:
            return "missing"
        record = record[key]
    return "present"


def _source(column: Column) -> tuple[str, tuple[str, ...]] | None:
    if column.summary is not None:
        return "summary", column.summary
    if column.run is not None:
        return "run", column.run
    return None


def test_every_column_path_names_what_real_runs_write(demo_run: Path, openai_run: Path) -> None:
    runs = [_load(demo_run), _load(openai_run)]
    wrong = []
    for column in COLUMNS:
        source = _source(column)
        if source is None:
            continue
        kind, path = source
        exempt = ONLY_WHERE_NOT_RUN_HERE if kind == "run" else SUMMARY_ONLY_WHERE_NOT_RUN_HERE
        if any(path[: len(p)] == p for p in exempt):
            continue
        states = {resolve(summary if kind == "summary" else manifest, path) for manifest, summary in runs}
        if "missing" in states and "present" not in states:
            wrong.append(f"{column.name}: {kind} {'.'.join(path)}")
    assert wrong == [], "columns reading keys no run writes:\n" + "\n".join(wrong)


def test_no_cell_is_empty_while_its_source_holds_a_value(demo_run: Path, openai_run: Path, tmp_path: Path) -> None:
    csv = tmp_path / "results.csv"
    assert main(["export", str(demo_run), str(openai_run), "-o", str(csv)]) == 0
    frame = pd.read_csv(csv, keep_default_na=False, dtype=str)
    empty_but_measured = []
    for index, run_dir in enumerate((demo_run, openai_run)):
        manifest, summary = _load(run_dir)
        for column in COLUMNS:
            value = column.value(manifest, summary)
            cell = frame.iloc[index][column.name]
            if value is not None and cell == "":
                empty_but_measured.append(f"{run_dir.name}: {column.name}")
    assert empty_but_measured == []
    openai = frame.iloc[1]
    assert float(openai["client_cpu_fraction"]) > 0 and float(openai["client_loop_lag_p99_s"]) >= 0
    assert openai["client_bound"] in ("True", "False")
    demo = frame.iloc[0]
    assert demo["accuracy_task"] == "capbench_arithmetic" and demo["hardware_profile"].startswith("probe-cpu-")


def test_a_rescored_run_is_exported_under_its_new_hardware(demo_run: Path, tmp_path: Path) -> None:
    rescored = tmp_path / "rescored"
    import shutil

    shutil.copytree(demo_run, rescored)
    assert main(["score", str(rescored), "--hardware", "h100-sxm", "--json"]) == 0
    manifest, summary = _load(rescored)
    row = summary_row(manifest, summary)
    assert manifest["hardware"]["profile"].startswith("probe-cpu-")  # run.json keeps what the run measured on
    assert row["hardware_profile"] == "h100-sxm" and row["hardware_profile_selected_by"] == "command line"
    assert row["ceiling_memory_bandwidth_bytes_per_s"] == 3.35e12
    assert row["usd_per_gpu_hour"] == 3.78  # the profile's rental price, as the cost used
    assert row["num_gpus"] == 0 and row["gpu_name"] is None  # it ran on a CPU: the leaderboard labels it so
    assert isinstance(row["decode_s_mbu"], float) and not math.isnan(row["decode_s_mbu"])
