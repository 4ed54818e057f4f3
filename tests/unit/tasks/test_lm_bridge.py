"""The lm-eval bridge (capbench.tasks.lm): lm-eval instances become capbench requests and outputs go back in order.

The last test runs real ``lm_eval.simple_evaluate`` over the offline ``capbench_arithmetic`` task with a fake
serve function, to check that failed requests score 0 in their own position and shift no other sample.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from lm_eval.api.instance import Instance

from capbench.errors import CapbenchError
from capbench.tasks.lm import CapbenchLM, build_requests, outputs_for_lm_eval, warmup_requests
from capbench.workload import Request, Workload


def _instance(context: str, gen_kwargs: dict[str, Any] | None, *, task: str = "t", doc_id: int = 0) -> Instance:
    arguments: tuple[Any, ...] = (context,) if gen_kwargs is None else (context, gen_kwargs)
    return Instance(
        request_type="generate_until",
        doc={"q": context},
        arguments=arguments,
        idx=0,
        metadata=(task, doc_id, 1),
    )


def test_build_requests_ids_prompts_and_sample_ids() -> None:
    instances = [
        _instance("Q0", {"until": ["\n\n"], "max_gen_toks": 10}, task="arith", doc_id=7),
        _instance("Q1", {"until": ["\n\n"], "max_gen_toks": 10}, task="arith", doc_id=3),
        _instance("Q2", {"until": ["\n\n"], "max_gen_toks": 10}, task="mc", doc_id=0),
    ]
    requests = build_requests(instances, max_tokens=None, default_max_tokens=32)
    assert [r.id for r in requests] == ["r0000", "r0001", "r0002"]
    assert [r.sample_id for r in requests] == ["arith/7", "arith/3", "mc/0"]
    assert [r.prompt.text for r in requests] == ["Q0", "Q1", "Q2"]
    assert [r.prompt.id for r in requests] == ["arith/7", "arith/3", "mc/0"]
    assert not any(r.warmup for r in requests)


def test_build_requests_ids_past_four_digits() -> None:
    instances = [_instance(f"Q{i}", {}, doc_id=i) for i in range(10_001)]
    requests = build_requests(instances, max_tokens=None, default_max_tokens=8)
    assert requests[9999].id == "r9999" and requests[10_000].id == "r10000"
    assert len({r.id for r in requests}) == len(requests)


@pytest.mark.parametrize(
    ("gen_kwargs", "stops"),
    [
        pytest.param({"until": ["Question:", "</s>"]}, ("Question:", "</s>"), id="list"),
        pytest.param({"until": "\n\n"}, ("\n\n",), id="str-not-split-into-characters"),
        pytest.param({"until": ("a", "b")}, ("a", "b"), id="tuple"),
        pytest.param({"until": []}, (), id="empty-list"),
        pytest.param({}, (), id="absent"),
        pytest.param(None, (), id="no-gen-kwargs"),
    ],
)
def test_build_requests_stop_strings(gen_kwargs: dict[str, Any] | None, stops: tuple[str, ...]) -> None:
    (request,) = build_requests([_instance("Q", gen_kwargs)], max_tokens=None, default_max_tokens=32)
    assert request.stop == stops


@pytest.mark.parametrize(
    ("run_max", "task_max", "expected"),
    [
        pytest.param(5, 48, 5, id="run-wins"),
        pytest.param(None, 48, 48, id="task-max-gen-toks"),
        pytest.param(None, None, 32, id="default"),
        pytest.param(7, None, 7, id="run-without-task"),
    ],
)
def test_build_requests_max_tokens_priority(run_max: int | None, task_max: int | None, expected: int) -> None:
    gen_kwargs: dict[str, Any] = {"until": ["\n"]}
    if task_max is not None:
        gen_kwargs["max_gen_toks"] = task_max
    (request,) = build_requests([_instance("Q", gen_kwargs)], max_tokens=run_max, default_max_tokens=32)
    assert request.max_tokens == expected


def _requests(n: int) -> list[Request]:
    instances = [_instance(f"Q{i}", {"until": ["X"], "max_gen_toks": 9}, doc_id=i) for i in range(n)]
    return build_requests(instances, max_tokens=None, default_max_tokens=32)


def test_warmup_requests_cycle_the_first_requests() -> None:
    batch = _requests(2)
    warm = warmup_requests(batch, 5)
    assert [w.id for w in warm] == ["w0000", "w0001", "w0002", "w0003", "w0004"]
    assert [w.prompt.text for w in warm] == ["Q0", "Q1", "Q0", "Q1", "Q0"]
    assert all(w.warmup and w.sample_id is None for w in warm)
    assert all(w.max_tokens == 9 and w.stop == ("X",) for w in warm)
    assert [r.id for r in batch] == ["r0000", "r0001"] and not any(r.warmup for r in batch)  # originals untouched


def test_warmup_requests_edge_counts() -> None:
    assert warmup_requests([], 3) == []
    assert warmup_requests(_requests(3), 0) == []
    assert [w.prompt.text for w in warmup_requests(_requests(3), 2)] == ["Q0", "Q1"]


def test_outputs_for_lm_eval() -> None:
    batch = _requests(6)
    records: dict[str, dict[str, Any]] = {
        # deliberately not in request order
        "r0005": {"output_text": "last", "error": None},
        "r0000": {"output_text": "<think>#### 1</think>\n#### 2", "error": None},
        "r0001": {"output_text": "partial #### 3", "error": "timeout"},
        "r0003": {"output_text": None, "error": None},
        "r0004": {"output_text": "  B  ", "error": None},
        "w0000": {"output_text": "warm-up", "error": None},
    }
    assert outputs_for_lm_eval(batch, records) == ["#### 2", "", "", "", "B", "last"]


def _ok_serve(workload: Workload) -> dict[str, dict[str, Any]]:
    return {r.id: {"output_text": f"echo {r.prompt.text}", "error": None} for r in workload.measured}


def test_capbench_lm_serves_one_batch_with_warmup_in_front() -> None:
    seen: list[Workload] = []
    measured: list[Request] = []

    def serve(workload: Workload) -> dict[str, dict[str, Any]]:
        seen.append(workload)
        measured.extend(workload.measured)
        return {r.id: {"output_text": f"<think>x</think>echo {r.prompt.text}", "error": None} for r in measured}

    lm = CapbenchLM(serve, warmup=3, max_tokens=None, default_max_tokens=16)
    instances = [_instance(f"Q{i}", {"until": ["\n"]}, doc_id=i) for i in range(2)]
    assert lm.generate_until(instances) == ["echo Q0", "echo Q1"]
    (workload,) = seen
    assert [w.id for w in workload.warmup] == ["w0000", "w0001", "w0002"]
    assert [r.id for r in measured] == ["r0000", "r0001"]
    assert workload.num_requests == 2 and workload.duration_s is None
    assert all(r.max_tokens == 16 for r in measured)
    with pytest.raises(CapbenchError, match="second batch"):
        lm.generate_until(instances)
    assert len(seen) == 1


# --- real lm-eval over the offline arithmetic task -------------------------------------------------------------


FAILED_REQUESTS = ("r0001", "r0006", "r0011")


def test_simple_evaluate_failed_requests_score_zero_in_place(tmp_path: Path) -> None:
    assert os.environ.get("HF_DATASETS_OFFLINE") == "1" and os.environ.get("HF_HUB_OFFLINE") == "1"
    os.environ.setdefault("TQDM_DISABLE", "1")
    import lm_eval
    from lm_eval.tasks import TaskManager

    from capbench.tasks.builtin import BUILTIN_TASKS, task_data

    task = BUILTIN_TASKS["capbench_arithmetic"]
    files, _ = task_data(task, root=tmp_path)
    by_prompt: dict[str, dict[str, Any]] = {}
    for line in Path(files["test"]).read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        by_prompt[f"Question: {row['question']}\nAnswer:"] = row
    failed_questions: set[str] = set()
    served: list[Sequence[Request]] = []

    def serve(workload: Workload) -> dict[str, dict[str, Any]]:
        measured = list(workload.measured)
        served.append(measured)
        records: dict[str, dict[str, Any]] = {}
        for request in measured:
            row = by_prompt[request.prompt.text]  # KeyError: the prompt is not the doc's "Question: ...\nAnswer:"
            if request.id in FAILED_REQUESTS:
                failed_questions.add(row["question"])
                # a failure that still streamed a right answer: it must score 0 all the same
                records[request.id] = {"output_text": f" {row['solution']}", "error": "HTTP 500"}
            else:
                records[request.id] = {"output_text": f" {row['solution']}\n", "error": None}
        return records

    lm = CapbenchLM(serve, warmup=2, max_tokens=None, default_max_tokens=32)
    results = lm_eval.simple_evaluate(
        model=lm,
        tasks=[task.config(files)],
        task_manager=TaskManager(include_defaults=False),
        limit=12,
        log_samples=True,
        bootstrap_iters=0,
    )
    assert results is not None
    (measured,) = served
    assert [r.id for r in measured] == [f"r{i:04d}" for i in range(12)]
    assert all(r.max_tokens == 48 and "Question:" in r.stop for r in measured)  # the task's generation_kwargs
    assert len(failed_questions) == 3

    samples = results["samples"]["capbench_arithmetic"]
    assert len(samples) == 12
    scores = {s["doc"]["question"]: (s["exact_match"], s["no_answer"]) for s in samples}
    assert len(scores) == 12
    assert {q for q, (em, _) in scores.items() if em == 0.0} == failed_questions
    assert {q for q, (_, na) in scores.items() if na == 1.0} == failed_questions
    assert all(scores[q] == (1.0, 0.0) for q in scores if q not in failed_questions)
    # Each request's sample id names the lm-eval doc whose prompt it carries.
    by_sample_id = {r.sample_id: r for r in measured}
    for s in samples:
        request = by_sample_id[f"capbench_arithmetic/{s['doc_id']}"]
        assert by_prompt[request.prompt.text]["question"] == s["doc"]["question"]

    aggregate = results["results"]["capbench_arithmetic"]
    assert aggregate["exact_match,none"] == pytest.approx(9 / 12)
    assert aggregate["no_answer,none"] == pytest.approx(3 / 12)
