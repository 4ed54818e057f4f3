"""`capbench run` end to end on the embedded default, and what a run leaves behind when it is cut short."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from capbench.cli import main
from capbench.records import read_run
from capbench.summary import live
from capbench.summary.score import score_run_dir

pytestmark = pytest.mark.integration


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def default_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("e2e") / "run"
    code = main(["run", "--out", str(out), "--num-requests", "6", "--max-tokens", "8", "--concurrency", "3", "--quiet"])
    assert code == 0
    return out


def test_embedded_default_writes_a_complete_run(default_run: Path) -> None:
    run = read_run(default_run)
    manifest = run.manifest
    assert manifest["status"] == "complete" and manifest["error"] is None
    assert manifest["model"]["config"]["model_type"] == "qwen3_moe"
    assert manifest["engine"]["name"] == "hf" and manifest["engine"]["version"]
    assert manifest["hardware"]["profile"].startswith("probe-cpu-")
    assert manifest["hardware"]["profile_data"]["measured"] is True
    assert manifest["dtypes"]["compute"] == "float32"
    assert manifest["load"]["num_requests"] == 6 and manifest["load"]["warmup_requests"] == 2
    assert [r["warmup"] for r in run.requests].count(True) == 2
    assert len(run.requests) == 8
    passes = list(run.iter_passes())
    num_layers = manifest["model"]["config"]["num_hidden_layers"]
    assert passes and all(len(p["experts_active"]) == num_layers for p in passes)


def test_summary_has_latency_phases_and_experts(default_run: Path) -> None:
    summary = json.loads((default_run / "summary.json").read_text())
    assert summary["requests"]["measured"] == 6 and summary["requests"]["completed"] == 6
    for key in ("ttft_s", "tpot_s", "itl_s", "e2e_latency_s"):
        stats = summary["latency"][key]
        assert stats["count"] > 0 and 0 < stats["p50"] <= stats["p90"] <= stats["p99"]
    assert summary["throughput"]["output_tokens_per_s"] > 0
    for phase in ("prefill", "decode", "all"):
        data = summary["phases"][phase]
        assert data["expert_activation_source"] == "measured"
        assert 0 < data["s_mbu"] < 1 and 0 < data["s_mfu"] < 1  # against this machine's measured ceiling
        assert data["step_latency_s"]["p50"] > 0
    decode = summary["experts"]["decode"]
    assert 2 <= decode["mean_active"] <= 8  # top-2 of 8 experts, a batch of up to 3 tokens
    assert decode["uniform_expectation"] > 0
    assert summary["energy"]["energy_per_output_token_j"] is None  # no GPU: not measured, not 0


def test_export_writes_one_row_with_empty_cells_for_unmeasured(default_run: Path, tmp_path: Path) -> None:
    csv = tmp_path / "results.csv"
    assert main(["export", str(default_run), "-o", str(csv)]) == 0
    frame = pd.read_csv(csv)
    assert len(frame) == 1
    row = frame.iloc[0]
    assert row["output_tokens_per_s"] > 0 and row["decode_s_mbu"] > 0
    assert pd.isna(row["energy_per_output_token_j"])  # empty cell, never 0
    assert "ttft_p50_s" in frame.columns and "usd_per_1m_output_tokens" in frame.columns


def test_score_recomputes_the_same_summary(default_run: Path) -> None:
    before = json.loads((default_run / "summary.json").read_text())
    assert main(["score", str(default_run), "--json", "--no-write"]) == 0
    from capbench.summary.score import score_run_dir

    again = score_run_dir(default_run, write=False)
    assert again["phases"] == before["phases"] and again["latency"] == before["latency"]


def test_unwritable_out_fails_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    cache = tmp_path / "fresh-cache"
    monkeypatch.setenv("CAPBENCH_CACHE_DIR", str(cache))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    started = time.monotonic()
    assert main(["run", "--out", str(blocker / "run")]) == 2
    assert "cannot create the output directory" in capsys.readouterr().err
    assert not cache.exists()  # no model was built, no probe was run
    assert time.monotonic() - started < 5
    assert main(["run", "--out", "/proc/capbench-run"]) == 2


def test_crash_mid_run_keeps_completed_requests(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from capbench.runners.hf.runner import HFRunner

    real_serve = HFRunner.serve
    calls = {"n": 0}

    def failing_serve(self: HFRunner, batch: Any, sink: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 3:  # warm-up batch, one measured batch, then the engine dies
            raise RuntimeError("simulated engine failure")
        real_serve(self, batch, sink)

    monkeypatch.setattr(HFRunner, "serve", failing_serve)
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="simulated engine failure"):
        main(["run", "--out", str(out), "--num-requests", "6", "--concurrency", "2", "--max-tokens", "4", "--quiet"])
    run = read_run(out)
    assert run.manifest["status"] == "partial"
    assert "simulated engine failure" in run.manifest["error"]
    assert [r["id"] for r in run.requests] == ["w0000", "w0001", "r0000", "r0001"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["requests"]["completed"] == 2


def test_ctrl_c_leaves_a_partial_run(tiny_model_dir: Path, capbench_cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    env = {**os.environ, "CAPBENCH_CACHE_DIR": str(capbench_cache)}
    cmd = [
        sys.executable,
        "-m",
        "capbench",
        "run",
        "--out",
        str(out),
        "--num-requests",
        "5000",
        "--concurrency",
        "1",
        "--max-tokens",
        "16",
        "--warmup",
        "0",
        "--quiet",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    requests_file = out / "requests.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if requests_file.exists() and len(requests_file.read_bytes().splitlines()) >= 5:
            break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    run = read_run(out)
    assert run.manifest["status"] == "partial"
    assert "interrupted" in run.manifest["error"]
    assert 5 <= len(run.requests) < 5000
    assert all(r["output_tokens"] >= 1 and r["error"] is None for r in run.requests)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "partial"
    assert summary["requests"]["completed"] == len(run.requests)


def test_duration_mode_stops_taking_batches_on_time(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Also: a duration run is scored as it goes (capbench.summary.live), into the summary of capbench score."""
    live_summaries = []
    result = live.LiveScore.result

    def spied(self: live.LiveScore) -> dict[str, Any] | None:
        live_summaries.append(result(self))
        return live_summaries[-1]

    monkeypatch.setattr(live.LiveScore, "result", spied)
    out = tmp_path / "run"
    started = time.monotonic()
    args = ["run", "--out", str(out), "--duration-s", "0.5", "--concurrency", "2", "--max-tokens", "8", "--quiet"]
    assert main(args) == 0
    assert time.monotonic() - started < 60
    run = read_run(out)
    assert run.manifest["load"]["duration_s"] == 0.5 and run.manifest["load"]["num_requests"] is None
    measured = [r for r in run.requests if not r["warmup"]]
    assert len(measured) >= 2 and len(measured) % 2 == 0  # whole batches of 2
    summary = json.loads((out / "summary.json").read_text())
    # The last batch starts before 0.5 s and finishes: the window is 0.5 s plus at most one batch.
    assert summary["throughput"]["wall_s"] >= 0.49
    assert live_summaries and live_summaries[0] == summary == score_run_dir(out, write=False)


def test_quiet_prints_only_the_run_directory(tiny_model_dir: Path, capbench_cache: Path, tmp_path: Path) -> None:
    """``--quiet``: stdout is the run directory and stderr is empty; no library warning (transformers'
    deprecations) or progress bar gets through."""
    out = tmp_path / "run"
    env = {**os.environ, "CAPBENCH_CACHE_DIR": str(capbench_cache)}
    cmd = [sys.executable, "-m", "capbench", "run", "--out", str(out), "--num-requests", "2", "--max-tokens", "4"]
    proc = subprocess.run([*cmd, "--task", "none", "--quiet"], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out) and proc.stderr == ""


def test_output_to_a_closed_pipe_ends_quietly(default_run: Path) -> None:
    """``capbench score --json RUN | head``, with the reader already gone: no BrokenPipeError traceback, and the
    exit status of a process that SIGPIPE ended (128 + 13)."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to the pipe now fails with EPIPE
    cmd = [sys.executable, "-m", "capbench", "score", str(default_run), "--json", "--no-write"]
    try:
        writer = subprocess.run(cmd, stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=300)
    finally:
        os.close(write_end)
    assert "Traceback" not in writer.stderr and "BrokenPipe" not in writer.stderr, writer.stderr
    assert writer.returncode == 141
