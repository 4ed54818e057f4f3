"""Log-likelihood tasks in the same run, through the hf runner on the trained demo MoE (and refused by a server
that returns no prompt log-probabilities).

The demo model on ``capbench_arithmetic_mc`` is checked against the run directory itself: every choice is one
prompt-only request whose record carries its continuation's log-probability, each sample's score is recounted
from those records (the right choice has the highest log-likelihood) against the regenerated data, the top_k
override lowers accuracy, and the requests are prefill passes with measured experts whose S-MBU and S-MFU are
reported. A local task in MMLU's format and a perplexity task run offline the same way.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from capbench.cli import main
from capbench.records import read_run
from capbench.tasks.arithmetic import ARITHMETIC_SEED
from capbench.tasks.arithmetic_mc import generate_choice_problems
from capbench.testing.mock_server.process import MockServerProcess
from tests.support.likelihood_tasks import MMLU_TASK, ROLLING_TASK, write_mmlu_task, write_rolling_task

pytestmark = pytest.mark.integration

SAMPLES = 60
TASK = "capbench_arithmetic_mc"


def _run(out: Path, *args: str) -> Path:
    assert main(["run", "--out", str(out), "--quiet", *args]) == 0
    return out


def _measured(run_dir: Path) -> list[dict[str, Any]]:
    return [r for r in read_run(run_dir).requests if not r["warmup"]]


@pytest.fixture(scope="module")
def mc_runs(capbench_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    root = tmp_path_factory.mktemp("ll")
    common = ("--task", TASK, "--num-requests", str(SAMPLES))
    return {2: _run(root / "top2", *common), 1: _run(root / "top1", *common, "--top-k", "1")}


def test_accuracy_is_far_above_chance_and_recounts_from_the_records(mc_runs: dict[int, Path]) -> None:
    run_dir = mc_runs[2]
    problems = generate_choice_problems("test", SAMPLES, ARITHMETIC_SEED)
    by_sample: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in sorted(_measured(run_dir), key=lambda r: r["id"]):
        assert record["request_type"] == "loglikelihood" and record["error"] is None
        assert record["output_tokens"] == 0 and record["t_first_token_ns"] is None
        assert record["continuation_logprob"] <= 0 and isinstance(record["is_greedy"], bool)
        by_sample[record["sample_id"]].append(record)
    assert sorted(by_sample) == sorted(f"{TASK}/{i}" for i in range(SAMPLES))
    right = 0
    for sid, records in by_sample.items():
        problem = problems[int(sid.rsplit("/", 1)[1])]
        assert len(records) == 4  # one request per choice, in lm-eval's (choice) order
        lls = [r["continuation_logprob"] for r in records]
        picked = max(range(4), key=lambda i: (lls[i], -i))
        score = float(picked == problem.label)
        assert all(r["score"] == score for r in records)
        assert all(r["answer"] == problem.choices[picked] for r in records)
        right += int(score)
    accuracy = read_run(run_dir).manifest["accuracy"]
    assert accuracy["metric"] == "acc,none" and accuracy["n"] == SAMPLES and accuracy["request_type"] == "loglikelihood"
    assert accuracy["value"] == pytest.approx(right / SAMPLES, abs=1e-12)
    assert accuracy["value"] >= 0.6  # chance is 0.25
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["accuracy"]["recount_matches"] is True


def test_top_k_1_lowers_accuracy_and_routes_one_expert(mc_runs: dict[int, Path]) -> None:
    top2 = read_run(mc_runs[2]).manifest["accuracy"]["value"]
    top1 = read_run(mc_runs[1]).manifest["accuracy"]["value"]
    assert top1 < top2, (top1, top2)  # same samples, the same prompts: only the routing changed
    for k, run_dir in mc_runs.items():
        for p in read_run(run_dir).iter_passes():
            tokens = sum(n for n, _ in p["reqs"])
            assert all(sum(row) == k * tokens for row in p["expert_tokens"])


def test_requests_are_prefill_passes_with_measured_experts(mc_runs: dict[int, Path]) -> None:
    run = read_run(mc_runs[2])
    prompt_tokens = {r["id"]: r["prompt_tokens"] for r in run.requests}
    seen: set[str] = set()
    for p in run.iter_passes():
        # one prompt-only pass per batch: every request computes its whole prompt on an empty cache
        assert [n for n, _ in p["reqs"]] == [prompt_tokens[rid] for rid in p["req_ids"]]
        assert all(c == 0 for _, c in p["reqs"]) and p["experts_active"] is not None
        seen.update(p["req_ids"])
    assert seen == set(prompt_tokens)
    summary = json.loads((mc_runs[2] / "summary.json").read_text())
    prefill = summary["phases"]["prefill"]
    assert prefill["passes"] > 0 and prefill["expert_activation_source"] == "measured"
    assert (
        prefill["s_mbu"] is not None and prefill["s_mbu"] > 0 and prefill["s_mfu"] is not None and prefill["s_mfu"] > 0
    )
    assert (summary["phases"].get("decode") or {}).get("passes", 0) == 0
    assert summary["latency"]["ttft_s"]["count"] == 0  # no generation: kept out of TTFT/TPOT
    group = summary["loglikelihood"]
    assert group["requests"] == 4 * SAMPLES and group["completed"] == 4 * SAMPLES
    assert group["prompt_tokens"] == sum(r["prompt_tokens"] for r in run.requests if not r["warmup"])
    assert group["latency_s"]["count"] == 4 * SAMPLES and group["prompt_tokens_per_s"] > 0


def test_a_local_mmlu_format_task_runs_offline(capbench_cache: Path, tmp_path: Path) -> None:
    task = write_mmlu_task(tmp_path / "mmlu", 12)
    run_dir = _run(tmp_path / "run", "--task", str(task))
    accuracy = read_run(run_dir).manifest["accuracy"]
    assert accuracy["tasks"] == [MMLU_TASK] and accuracy["metric"] == "acc,none" and accuracy["n"] == 12
    assert accuracy["num_fewshot"] == 2
    measured = _measured(run_dir)
    assert len(measured) == 4 * 12 and all(r["answer"] in ("A", "B", "C", "D") for r in measured)
    scores = {r["sample_id"]: r["score"] for r in measured}
    assert accuracy["value"] == pytest.approx(sum(scores.values()) / 12, abs=1e-12)


def test_a_perplexity_task_runs_by_rolling_windows(capbench_cache: Path, tmp_path: Path) -> None:
    task = write_rolling_task(tmp_path / "ppl", 4)
    run_dir = _run(tmp_path / "run", "--task", str(task), "--task-metric", "word_perplexity,none")
    accuracy = read_run(run_dir).manifest["accuracy"]
    assert accuracy["tasks"] == [ROLLING_TASK] and accuracy["request_type"] == "loglikelihood_rolling"
    measured = _measured(run_dir)
    assert {r["request_type"] for r in measured} == {"loglikelihood_rolling"} and len(measured) >= 4
    pages = [json.loads(line)["page"] for line in (tmp_path / "ppl" / "pages.jsonl").read_text().splitlines()]
    total = sum(r["continuation_logprob"] for r in measured)
    words = sum(len(re.split(r"\s+", page)) for page in pages)
    assert accuracy["value"] == pytest.approx(math.exp(-total / words), rel=1e-9)  # lm-eval's word perplexity
    assert math.isfinite(accuracy["value"]) and accuracy["value"] > 1.0  # (the model never learned the questions)


def test_a_server_without_prompt_logprobs_is_refused_before_the_run(
    capbench_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from capbench.models.demo import demo_model_dir

    with MockServerProcess() as server:
        args = ["--runner", "openai", "--base-url", server.url, "--model-path", str(demo_model_dir())]
        code = main(["run", "--out", str(tmp_path / "run"), "--quiet", *args, "--task", TASK, "--num-requests", "4"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "does not return prompt log-probabilities" in err
    assert not (tmp_path / "run" / "requests.jsonl").exists() and not (tmp_path / "run" / "run.json").exists()
