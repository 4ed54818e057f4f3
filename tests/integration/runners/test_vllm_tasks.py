"""Accuracy, the top_k override and fixed lengths through the real vLLM engine (CPU build), on the demo model.

The same lm-eval task as the hf tests, served by a vLLM server capbench launches: stop strings and per-request
``max_tokens`` go through the OpenAI API, each sample's record carries its score, engine steps and expert
routing. ``top_k`` reaches vLLM as ``hf_overrides`` and must show in the recorded routing and in the accuracy: the
two task runs launch their own servers with the same settings but ``top_k`` (the top-2 one from a relative model
directory, which the launched server serves under its absolute path). Fixed-length mode must give the exact token
counts the server itself reports: that run attaches to the session's shared engine (same model and dtype,
tests/conftest.py ``shared_vllm_engine``), as the counts are the server's whatever its launch flags.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from capbench.config import build_run_spec
from capbench.models.demo import demo_model_dir
from capbench.records import RunStatus, read_run
from capbench.run.execute import execute_run

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SAMPLES = 100


@pytest.fixture(scope="module", autouse=True)
def _vllm(vllm_environment: None) -> None:
    """Every test here talks to a vLLM server capbench launches (tests/conftest.py sets the environment)."""


def launch(out: Path, **settings: Any) -> Path:
    spec = build_run_spec(
        None,
        {
            "runner": "vllm",
            "model": str(demo_model_dir()),
            "out": str(out),
            "enforce_eager": True,
            "dtype": "float32",
            "engine_args": {"max_model_len": 512},
            **settings,
        },
    )
    run_dir, status = execute_run(spec, quiet=True)
    assert status == RunStatus.COMPLETE, read_run(run_dir).manifest.get("error")
    return run_dir


def _measured(run_dir: Path) -> list[dict[str, Any]]:
    return [r for r in read_run(run_dir).requests if not r["warmup"]]


@pytest.fixture(scope="module")
def task_runs(capbench_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    root = tmp_path_factory.mktemp("vllm-task")
    common = {"task": "capbench_arithmetic", "num_requests": SAMPLES, "concurrency": 8}
    # a relative model directory: the launched server serves it under its absolute path, which the client asks for
    relative = os.path.relpath(demo_model_dir())
    return {2: launch(root / "top2", model=relative, **common), 1: launch(root / "top1", top_k=1, **common)}


def test_task_through_vllm_scores_every_sample(task_runs: dict[int, Path]) -> None:
    run_dir = task_runs[2]
    manifest = read_run(run_dir).manifest
    measured = _measured(run_dir)
    assert sorted(r["sample_id"] for r in measured) == sorted(f"capbench_arithmetic/{i}" for i in range(SAMPLES))
    assert all(r["error"] is None and r["score"] in (0.0, 1.0) for r in measured)
    # stop strings came back honored: no output runs on into a new "Question:"
    assert not any("Question:" in r["output_text"] for r in measured)
    recount = sum(r["score"] for r in measured) / SAMPLES
    assert manifest["accuracy"]["value"] == pytest.approx(recount) and recount >= 0.5
    assert manifest["engine"]["name"] == "vllm" and manifest["engine"]["routing_observed"] is True
    # launched from the relative directory, served under its absolute path (the measured requests all succeeded)
    command = manifest["engine"]["command"]
    assert command[command.index("--model") + 1] == str(demo_model_dir().resolve())


def test_top_k_reaches_vllm(task_runs: dict[int, Path]) -> None:
    for k, run_dir in ((2, task_runs[2]), (1, task_runs[1])):
        passes = list(read_run(run_dir).iter_passes())
        assert passes
        for p in passes:
            tokens = sum(n for n, _ in p["reqs"])
            assert all(sum(row) == k * tokens for row in p["expert_tokens"]), k
    top1 = read_run(task_runs[1]).manifest
    assert top1["model"]["top_k_override"] == 1
    assert top1["accuracy"]["value"] < read_run(task_runs[2]).manifest["accuracy"]["value"]  # same samples, greedy


def test_fixed_lengths_are_what_the_server_counted(shared_vllm_engine: Any, tmp_path: Path) -> None:
    runner, _, model = shared_vllm_engine.get()
    spec = build_run_spec(
        None,
        {
            "runner": "vllm",
            "base_url": runner.client.base_url,
            "model_path": str(model),
            "out": str(tmp_path / "fixed"),
            "fixed_prompt_tokens": 100,
            "fixed_output_tokens": 24,
            "num_requests": 8,
        },
    )
    run_dir, status = execute_run(spec, quiet=True)
    assert status == RunStatus.COMPLETE, read_run(run_dir).manifest.get("error")
    run = read_run(run_dir)
    assert run.manifest["token_counts"] == "server_usage"  # the counts below are the server's own
    assert all(r["prompt_tokens"] == 100 and r["output_tokens"] == 24 for r in run.requests)
    assert all(r["finish_reason"] == "length" for r in run.requests)
