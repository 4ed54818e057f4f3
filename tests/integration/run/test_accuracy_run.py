"""Accuracy in the same run: lm-eval tasks served offline through the hf runner on the trained demo MoE.

Checked against the run directory itself: every sample's record (sample id, output, score, extracted answer),
the aggregate against a recount from ``requests.jsonl`` and against an independent re-scoring of the outputs,
the failure-scores-0 rule, the top_k override (accuracy and the recorded routing), a local task YAML, and the
message a named task gives offline.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from capbench.cli import main
from capbench.records import read_run
from capbench.tasks.arithmetic import generate_problems
from capbench.tasks.builtin import TEST_SIZE
from capbench.tasks.extract import extract_gsm8k_answer, numbers_match

pytestmark = pytest.mark.integration

SAMPLES = 100


def _run(out: Path, *args: str) -> Path:
    code = main(["run", "--out", str(out), "--quiet", *args])
    assert code == 0
    return out


def _measured(run_dir: Path) -> list[dict[str, Any]]:
    return [r for r in read_run(run_dir).requests if not r["warmup"]]


@pytest.fixture(scope="module")
def demo_run(capbench_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded default (demo model, capbench_arithmetic) on the first SAMPLES held-out problems."""
    return _run(tmp_path_factory.mktemp("acc") / "top2", "--num-requests", str(SAMPLES))


@pytest.fixture(scope="module")
def top1_run(capbench_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(tmp_path_factory.mktemp("acc") / "top1", "--num-requests", str(SAMPLES), "--top-k", "1")


def test_every_sample_has_its_record(demo_run: Path) -> None:
    run = read_run(demo_run)
    assert run.manifest["load"]["dataset"]["task"] == "capbench_arithmetic"
    measured = _measured(demo_run)
    # one request per sample, in lm-eval's order (records are appended as requests finish)
    by_id = sorted(measured, key=lambda r: r["id"])
    assert [r["sample_id"] for r in by_id] == [f"capbench_arithmetic/{i}" for i in range(SAMPLES)]
    problems = generate_problems("test", TEST_SIZE)
    for record in measured:
        assert record["error"] is None and isinstance(record["output_text"], str)
        assert record["score"] in (0.0, 1.0)
        problem = problems[int(record["sample_id"].split("/")[1])]
        # independent re-scoring of the recorded output against the regenerated gold answer
        answer = extract_gsm8k_answer(record["output_text"])
        assert record["answer"] == answer
        assert record["score"] == float(numbers_match(answer, problem.answer))
    warmups = [r for r in run.requests if r["warmup"]]
    assert len(warmups) == 2 and all("sample_id" not in r and "score" not in r for r in warmups)


def test_aggregate_matches_a_recount_of_requests_jsonl(demo_run: Path) -> None:
    measured = _measured(demo_run)
    recount = sum(r["score"] for r in measured) / len(measured)
    no_answer = sum(r["answer"] is None for r in measured) / len(measured)
    manifest = read_run(demo_run).manifest
    accuracy = manifest["accuracy"]
    assert accuracy["metric"] == "exact_match,none" and accuracy["n"] == SAMPLES
    assert accuracy["value"] == pytest.approx(recount, abs=1e-12)
    assert accuracy["no_answer_rate"] == pytest.approx(no_answer, abs=1e-12)
    p = recount
    assert accuracy["stderr"] == pytest.approx((p * (1 - p) / (SAMPLES - 1)) ** 0.5, rel=1e-9)
    summary = json.loads((demo_run / "summary.json").read_text())["accuracy"]
    assert summary["value"] == accuracy["value"] and summary["value_recount"] == pytest.approx(recount)
    assert summary["recount_matches"] is True and summary["failed_requests"] == 0
    # the trained demo model really does the task (chance is ~0 for a free-form number)
    assert recount >= 0.5


def test_one_run_gives_all_three_axes_in_the_csv(demo_run: Path, tmp_path: Path) -> None:
    csv = tmp_path / "runs.csv"
    assert main(["export", str(demo_run), "-o", str(csv)]) == 0
    row = pd.read_csv(csv).iloc[0]
    assert row["accuracy_task"] == "capbench_arithmetic" and row["accuracy_metric"] == "exact_match,none"
    assert row["accuracy_samples"] == SAMPLES and 0.5 <= row["accuracy"] <= 1
    assert row["output_tokens_per_s"] > 0 and row["decode_s_mbu"] > 0  # performance from the same requests
    assert pd.isna(row["top_k_override"])


def _tokens_routed(run_dir: Path) -> Iterator[tuple[int, list[list[int]]]]:
    for p in read_run(run_dir).iter_passes():
        yield sum(n for n, _ in p["reqs"]), p["expert_tokens"]


def test_top_k_override_lowers_accuracy_and_routes_k_experts(demo_run: Path, top1_run: Path) -> None:
    top2 = read_run(demo_run).manifest["accuracy"]["value"]
    top1 = read_run(top1_run).manifest
    assert top1["model"]["top_k_override"] == 1 and top1["spec"]["top_k"] == 1
    assert top1["accuracy"]["value"] < top2, (top1["accuracy"]["value"], top2)  # same samples, greedy
    # every token of every pass went to exactly k experts per layer (padding excluded by the recorder)
    for run_dir, k in ((demo_run, 2), (top1_run, 1)):
        for tokens, per_layer in _tokens_routed(run_dir):
            assert all(sum(row) == k * tokens for row in per_layer)
    summary = json.loads((top1_run / "summary.json").read_text())
    assert summary["experts"]["top_k"] == 1


def test_failed_requests_score_zero_without_shifting_the_others(demo_run: Path, tmp_path: Path) -> None:
    """Requests r0003 and r0010 fail (their records carry an error); every other sample keeps the score it
    had in the undisturbed run, and the aggregate counts the two failures as 0."""
    from capbench.config import RunSpec
    from capbench.models.demo import demo_model_dir
    from capbench.records import RunWriter
    from capbench.run.harness import drive
    from capbench.runners.hf.runner import HFRunner
    from capbench.tasks.evaluate import evaluate_task, prepare_task

    failing = {"r0003", "r0010"}
    spec = RunSpec(num_requests=SAMPLES)
    runner = HFRunner(spec, demo_model_dir())

    class FailingSink:
        def __init__(self, sink: Any) -> None:
            self.sink = sink

        def on_pass(self, record: dict[str, Any]) -> None:
            self.sink.on_pass(record)

        def on_request(self, record: dict[str, Any]) -> None:
            if record["id"] in failing:
                record = {**record, "error": "injected failure", "output_text": ""}
            self.sink.on_request(record)

    class FailingRunner:
        name, facts = "hf", runner.facts

        def execute(self, workload: Any, sink: Any) -> None:
            runner.execute(workload, FailingSink(sink))

    records: dict[str, dict[str, Any]] = {}

    def serve(workload: Any) -> dict[str, dict[str, Any]]:
        drive(FailingRunner(), workload, writer, lambda r: records.__setitem__(r["id"], r))  # type: ignore[arg-type]
        return {k: v for k, v in records.items() if not v["warmup"]}

    writer = RunWriter(tmp_path / "run", {"schema_version": 1, "run_id": "t"})
    with writer:
        accuracy = evaluate_task(prepare_task(spec), spec, serve, writer)
    runner.close()
    baseline = {r["sample_id"]: r["score"] for r in _measured(demo_run)}
    got = {r["sample_id"]: r for r in _measured(tmp_path / "run")}
    assert set(got) == set(baseline)
    for sid, record in got.items():
        if record["id"] in failing:
            assert record["error"] == "injected failure" and record["score"] == 0.0 and record["answer"] is None
        else:
            assert record["score"] == baseline[sid], sid
    expected = sum(r["score"] for r in got.values()) / SAMPLES
    assert accuracy["value"] == pytest.approx(expected)
    assert sum(baseline.values()) - sum(baseline[got_sid] for got_sid, r in got.items() if r["id"] in failing) == (
        pytest.approx(expected * SAMPLES)
    )


def test_local_task_yaml_with_lm_eval_filters(capbench_cache: Path, tmp_path: Path) -> None:
    """A user's own task file (lm-eval's regex filter and exact_match metric, local JSONL data)."""
    problems = generate_problems("test", 12)
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"q": p.question, "a": p.answer}) + "\n" for p in problems))
    task = tmp_path / "my_arith.yaml"
    task.write_text(
        "task: my_arith\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {data}\n"
        "test_split: test\n"
        "output_type: generate_until\n"
        'doc_to_text: "Question: {{q}}\\nAnswer:"\n'
        'doc_to_target: "{{a}}"\n'
        "generation_kwargs:\n  until: ['Question:']\n  max_gen_toks: 48\n  do_sample: false\n"
        "filter_list:\n  - name: strict\n    filter:\n"
        "      - function: regex\n        regex_pattern: '#### (\\-?[0-9\\.]+)'\n"
        "      - function: take_first\n"
        "metric_list:\n  - metric: exact_match\n    aggregation: mean\n    higher_is_better: true\n"
        "metadata:\n  version: 1.0\n"
    )
    out = _run(tmp_path / "run", "--task", str(task))
    manifest = read_run(out).manifest
    assert manifest["accuracy"]["task"] == str(task) and manifest["accuracy"]["tasks"] == ["my_arith"]
    assert manifest["accuracy"]["metric"] == "exact_match,strict" and manifest["accuracy"]["n"] == 12
    measured = _measured(out)
    measured.sort(key=lambda r: r["id"])
    assert [r["sample_id"] for r in measured] == [f"my_arith/{i}" for i in range(12)]
    for record, problem in zip(measured, problems, strict=True):
        found = extract_gsm8k_answer(record["output_text"])
        # lm-eval's filtered response is the answer; "[invalid]" (no match) is recorded as no answer
        assert (record["answer"] is None) == (found is None)
        assert record["score"] == float(record["answer"] == problem.answer)
    assert manifest["accuracy"]["value"] == pytest.approx(sum(r["score"] for r in measured) / 12)


def test_multiple_choice_task_reports_no_answer_rate(capbench_cache: Path, tmp_path: Path) -> None:
    out = _run(tmp_path / "run", "--task", "capbench_multiple_choice", "--num-requests", "8")
    accuracy = read_run(out).manifest["accuracy"]
    measured = _measured(out)
    assert accuracy["metric"] == "exact_match,none" and accuracy["n"] == 8
    assert accuracy["no_answer_rate"] == pytest.approx(sum(r["answer"] is None for r in measured) / 8)
    assert all(r["answer"] in (None, "A", "B", "C", "D") for r in measured)


def test_named_task_offline_says_so(capbench_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--out", str(tmp_path / "run"), "--task", "gsm8k", "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "gsm8k" in err and "offline" in err and "openai/gsm8k" in err and "capbench_arithmetic" in err
    assert not (tmp_path / "run" / "run.json").exists()


def test_fixed_length_mode_is_exact_and_reports_no_accuracy(capbench_cache: Path, tmp_path: Path) -> None:
    out = _run(tmp_path / "run", "--fixed-prompt-tokens", "77", "--fixed-output-tokens", "9", "--num-requests", "6")
    run = read_run(out)
    assert run.manifest["load"]["dataset"]["name"] == "fixed_length" and "accuracy" not in run.manifest
    assert all(r["prompt_tokens"] == 77 and r["output_tokens"] == 9 for r in run.requests)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["accuracy"] is None and summary["fixed_length"]["exact"] is True
