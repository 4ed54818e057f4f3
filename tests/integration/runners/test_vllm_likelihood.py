"""Log-likelihood tasks through the real vLLM engine (CPU build, fp32), against the hf runner on the same demo MoE.

The session's shared engine (tests/support/vllm_engine.py) is attached to with ``base_url``: the requests go as
token ids to ``/v1/completions`` with ``echo`` and ``logprobs``, so the context/continuation boundary is lm-eval's
on both engines. The two engines must agree on the accuracy (within 2 points) and on every request's
log-likelihood, and the engine's own step records must show the requests as prompt steps with measured experts.
A local task in MMLU's format runs end to end offline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from capbench.cli import main
from capbench.records import read_run
from tests.support.engine_steps import line_count, records_after
from tests.support.likelihood_tasks import MMLU_TASK, write_mmlu_task

pytestmark = pytest.mark.integration

SAMPLES = 40
TASK = "capbench_arithmetic_mc"
MAX_LOGPROB_DIFFERENCE = 1e-3
"""nats: the engines compute the same fp32 model with different kernels; measured ~2e-5 on this machine."""


@pytest.fixture(scope="module")
def engine(vllm_environment: None, shared_vllm_engine: Any) -> tuple[Any, Path, Path]:
    """The shared engine; the workload tests, which run after this module, close it."""
    return shared_vllm_engine.get()


def _run(out: Path, *args: str) -> Path:
    assert main(["run", "--out", str(out), "--quiet", *args]) == 0
    return out


def _attached(engine: tuple[Any, Path, Path], out: Path, *args: str) -> Path:
    runner, _, model = engine
    return _run(out, "--runner", "vllm", "--base-url", runner.client.base_url, "--model-path", str(model), *args)


def _measured(run_dir: Path) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in read_run(run_dir).requests if not r["warmup"]}


@pytest.fixture(scope="module")
def runs(
    engine: tuple[Any, Path, Path], capbench_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("ll-vllm")
    common = ("--task", TASK, "--num-requests", str(SAMPLES))
    hf = _run(root / "hf", *common)
    steps = engine[1] / "passes.jsonl"
    mark = line_count(steps)
    vllm = _attached(engine, root / "vllm", *common)
    return {"hf": hf, "vllm": vllm, "steps": records_after(steps, mark)}


def test_vllm_and_hf_agree_on_accuracy_and_every_log_likelihood(runs: dict[str, Any]) -> None:
    hf, vllm = _measured(runs["hf"]), _measured(runs["vllm"])
    assert sorted(hf) == sorted(vllm) and len(hf) == 4 * SAMPLES
    differences = []
    for rid, ours in hf.items():
        theirs = vllm[rid]
        assert theirs["error"] is None and theirs["request_type"] == "loglikelihood"
        assert (theirs["sample_id"], theirs["prompt_tokens"]) == (ours["sample_id"], ours["prompt_tokens"])
        differences.append(abs(theirs["continuation_logprob"] - ours["continuation_logprob"]))
        assert theirs["is_greedy"] == ours["is_greedy"], rid
    print(f"largest per-request log-likelihood difference vLLM vs hf: {max(differences):.3g} nats")
    assert max(differences) < MAX_LOGPROB_DIFFERENCE
    accuracy = {name: read_run(runs[name]).manifest["accuracy"]["value"] for name in ("hf", "vllm")}
    assert abs(accuracy["hf"] - accuracy["vllm"]) <= 0.02, accuracy
    assert accuracy["vllm"] >= 0.6


def test_the_engine_records_them_as_prompt_steps_with_measured_experts(runs: dict[str, Any]) -> None:
    measured = _measured(runs["vllm"])
    prompt_computed: dict[str, int] = {}
    for step in runs["steps"]:
        for rid, (n, cached) in zip(step["req_ids"], step["reqs"], strict=True):
            if rid in measured and rid not in prompt_computed:
                prompt_computed[rid] = n + cached  # the request's first step holds its prompt (cached or computed)
                assert step["experts_active"] is not None
    assert set(prompt_computed) == set(measured)
    assert all(prompt_computed[rid] == measured[rid]["prompt_tokens"] for rid in measured)
    summary = read_run(runs["vllm"]).manifest  # the client side: no TTFT for a request that streams nothing
    assert all(r["t_first_token_ns"] is None for r in measured.values()) and summary["status"] == "complete"


def test_a_local_mmlu_format_task_runs_offline_through_vllm(
    engine: tuple[Any, Path, Path], capbench_cache: Path, tmp_path: Path
) -> None:
    task = write_mmlu_task(tmp_path / "mmlu", 12)
    run_dir = _attached(engine, tmp_path / "run", "--task", str(task))
    accuracy = read_run(run_dir).manifest["accuracy"]
    assert accuracy["tasks"] == [MMLU_TASK] and accuracy["metric"] == "acc,none" and accuracy["n"] == 12
    measured = _measured(run_dir)
    assert len(measured) == 48 and all(r["error"] is None and r["answer"] in "ABCD" for r in measured.values())
