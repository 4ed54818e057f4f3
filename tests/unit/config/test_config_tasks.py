"""RunSpec rules for the accuracy task and fixed-length modes, and RunWriter.rewrite_requests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from capbench.config import DEFAULT_MAX_TOKENS, DEFAULT_NUM_REQUESTS, DEMO_TASK, RunSpec, build_run_spec
from capbench.errors import ConfigError
from capbench.records.schema import REQUESTS_FILE, RunStatus
from capbench.records.writer import RunWriter

OPENAI = {"runner": "openai", "base_url": "http://127.0.0.1:8000"}


def _spec(**overrides: Any) -> RunSpec:
    return build_run_spec(overrides=overrides)


# --- task: auto / none / named --------------------------------------------------------------------------------


def test_task_auto_picks_the_demo_task_for_the_embedded_model() -> None:
    spec = _spec()
    assert spec.task == "auto"
    assert spec.effective_task == DEMO_TASK == "capbench_arithmetic"


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"model": "/models/x"}, id="hf-own-model"),
        pytest.param({"prompts": "p.jsonl"}, id="hf-prompts"),
        pytest.param({"fixed_output_tokens": 8}, id="hf-fixed-output"),
        pytest.param({"fixed_prompt_tokens": 8}, id="hf-fixed-prompt"),
        pytest.param(OPENAI, id="openai"),
        pytest.param({"runner": "vllm", "model": "/models/x"}, id="vllm"),
    ],
)
def test_task_auto_is_none_otherwise(overrides: dict[str, Any]) -> None:
    spec = _spec(**overrides)
    assert spec.effective_task is None
    assert spec.effective_num_requests == DEFAULT_NUM_REQUESTS


def test_task_auto_with_duration_is_a_performance_run() -> None:
    spec = _spec(duration_s=5)
    assert spec.effective_task is None
    assert spec.effective_num_requests is None  # duration mode, not "every sample"
    with pytest.raises(ConfigError, match="task_metric"):
        _spec(duration_s=5, task_metric="exact_match,none")


def test_task_none_is_performance_only() -> None:
    spec = _spec(task="none")
    assert spec.effective_task is None
    assert spec.effective_num_requests == DEFAULT_NUM_REQUESTS


def test_named_task() -> None:
    spec = _spec(task="gsm8k", **OPENAI)
    assert spec.effective_task == "gsm8k"


def test_task_without_num_requests_runs_every_sample() -> None:
    assert _spec(task="capbench_multiple_choice").effective_num_requests is None
    assert _spec().effective_num_requests is None  # auto → the demo task
    assert _spec(task="capbench_multiple_choice", num_requests=12).effective_num_requests == 12


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param({"task": "gsm8k", "prompts": "p.jsonl"}, "task and prompts", id="task-and-prompts"),
        pytest.param({"task": "gsm8k", "duration_s": 10}, "not duration_s", id="task-and-duration"),
        pytest.param({"task": "gsm8k", "fixed_output_tokens": 8}, "fixed-length", id="task-and-fixed-output"),
        pytest.param({"task": "gsm8k", "fixed_prompt_tokens": 8}, "fixed-length", id="task-and-fixed-prompt"),
        pytest.param({"task": "none", "task_metric": "acc,none"}, "task_metric", id="metric-task-none"),
        pytest.param({"task": "none", "num_fewshot": 2}, "num_fewshot", id="fewshot-task-none"),
        pytest.param({"model": "/m", "task_metric": "acc,none"}, "task_metric", id="metric-auto-resolves-none"),
        pytest.param({"fixed_output_tokens": 8, "prompts": "p.jsonl"}, "fixed-length", id="fixed-and-prompts"),
        pytest.param({"fixed_output_tokens": 8, "max_tokens": 9}, "max_tokens", id="fixed-output-vs-max-tokens"),
        pytest.param({"top_k": 2, **OPENAI}, "top_k", id="top-k-openai"),
        pytest.param(
            {"top_k": 2, "runner": "vllm", "base_url": "http://127.0.0.1:8000"}, "top_k", id="top-k-vllm-attached"
        ),
        pytest.param({"top_k": 0}, "top_k", id="top-k-zero"),
        pytest.param({"num_fewshot": -1}, "num_fewshot", id="negative-fewshot"),
    ],
)
def test_workload_mode_errors(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _spec(**overrides)


def test_task_metric_and_fewshot_with_a_task() -> None:
    spec = _spec(task="capbench_arithmetic", task_metric="exact_match,none", num_fewshot=3)
    assert (spec.task_metric, spec.num_fewshot) == ("exact_match,none", 3)
    auto = _spec(num_fewshot=0)  # auto resolves to the demo task: allowed
    assert auto.effective_task == DEMO_TASK and auto.num_fewshot == 0


def test_top_k_allowed_for_hf_and_launched_vllm() -> None:
    assert _spec(top_k=2).top_k == 2
    assert _spec(top_k=1, runner="vllm", model="/models/x").top_k == 1


# --- fixed length -------------------------------------------------------------------------------------------------


def test_fixed_output_tokens_sets_max_tokens_and_ignore_eos() -> None:
    spec = _spec(fixed_output_tokens=40)
    assert spec.fixed_length
    assert spec.effective_max_tokens == 40
    assert spec.effective_ignore_eos is True
    assert spec.max_tokens is None and spec.ignore_eos is False  # the given settings are kept as given
    same = _spec(fixed_output_tokens=40, max_tokens=40)
    assert same.effective_max_tokens == 40


def test_fixed_prompt_tokens_alone_keeps_output_settings() -> None:
    spec = _spec(fixed_prompt_tokens=64, max_tokens=7)
    assert spec.fixed_length
    assert spec.effective_max_tokens == 7
    assert spec.effective_ignore_eos is False
    assert spec.effective_num_requests == DEFAULT_NUM_REQUESTS


def test_max_tokens_defaults() -> None:
    assert _spec().effective_max_tokens == DEFAULT_MAX_TOKENS
    assert _spec(max_tokens=5).effective_max_tokens == 5
    assert _spec(ignore_eos=True).effective_ignore_eos is True
    assert _spec().effective_ignore_eos is False
    assert not _spec().fixed_length


# --- RunWriter.rewrite_requests --------------------------------------------------------------------------------


def _lines(path: Path) -> list[dict[str, Any]]:
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    return [orjson.loads(line) for line in raw.splitlines()]


def test_rewrite_requests_updates_every_record_and_appending_continues(tmp_path: Path) -> None:
    writer = RunWriter(tmp_path / "run", {"run_id": "x"})
    records = [
        {"id": "w0000", "warmup": True, "sample_id": None},
        {"id": "r0000", "warmup": False, "sample_id": "t/0"},
        {"id": "r0001", "warmup": False, "sample_id": "t/1"},
    ]
    for record in records:
        writer.append_request(record)
    path = tmp_path / "run" / REQUESTS_FILE
    seen: list[str] = []

    def annotate(record: dict[str, Any]) -> dict[str, Any]:
        seen.append(record["id"])
        if record["warmup"]:
            return record
        return {**record, "score": 1.0 if record["id"] == "r0000" else 0.0}

    writer.rewrite_requests(annotate)
    assert seen == ["w0000", "r0000", "r0001"]
    assert _lines(path) == [records[0], {**records[1], "score": 1.0}, {**records[2], "score": 0.0}]
    assert writer.requests.count == 3
    assert not [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]

    writer.append_request({"id": "r0002", "warmup": False, "sample_id": "t/2"})
    assert writer.requests.count == 4
    writer.finish(RunStatus.COMPLETE)
    lines = _lines(path)
    assert [r["id"] for r in lines] == ["w0000", "r0000", "r0001", "r0002"]
    assert lines[1]["score"] == 1.0 and "score" not in lines[3]


def test_rewrite_requests_twice_and_failure_keeps_the_old_file(tmp_path: Path) -> None:
    writer = RunWriter(tmp_path / "run", {"run_id": "x"})
    for i in range(3):
        writer.append_request({"id": f"r{i:04d}", "n": i})
    path = tmp_path / "run" / REQUESTS_FILE
    writer.rewrite_requests(lambda r: {**r, "n": r["n"] * 10})
    writer.rewrite_requests(lambda r: {**r, "n": r["n"] + 1})
    assert [r["n"] for r in _lines(path)] == [1, 11, 21]
    before = path.read_bytes()

    def explode(record: dict[str, Any]) -> dict[str, Any]:
        if record["id"] == "r0001":
            raise RuntimeError("boom")
        return {**record, "n": -1}

    with pytest.raises(RuntimeError, match="boom"):
        writer.rewrite_requests(explode)
    assert path.read_bytes() == before
    assert not [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert writer.requests.count == 3
    writer.append_request({"id": "r0003", "n": 31})
    writer.close_files()
    assert [r["n"] for r in _lines(path)] == [1, 11, 21, 31]
