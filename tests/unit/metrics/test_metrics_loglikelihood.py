"""Log-likelihood requests: out of the generation figures, in their own group; a run of only them scores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from capbench.errors import CapbenchError
from capbench.metrics.score import score_run
from capbench.summary.score import score_run_dir

MS = 1_000_000


def _generate(rid: str, submit: int, out: int) -> dict[str, Any]:
    times = [submit + 20 * MS + k * 10 * MS for k in range(out)]
    return {
        "id": rid,
        "warmup": False,
        "prompt_tokens": 10,
        "output_tokens": out,
        "t_submit_ns": submit,
        "t_first_token_ns": times[0],
        "t_done_ns": times[-1],
        "token_times_ns": times,
        "error": None,
    }


def _likelihood(rid: str, submit: int, kind: str = "loglikelihood", **extra: Any) -> dict[str, Any]:
    return {
        "id": rid,
        "warmup": False,
        "prompt_tokens": 30,
        "output_tokens": 0,
        "t_submit_ns": submit,
        "t_first_token_ns": None,
        "t_done_ns": submit + 40 * MS,
        "token_times_ns": [],
        "error": None,
        "request_type": kind,
        **extra,
    }


def _score(requests: list[dict[str, Any]], slo: dict[str, float] | None = None) -> dict[str, Any]:
    manifest = {"run_id": "ll", "status": "complete", "spec": {"slo": slo or {}}}
    return score_run(manifest, requests, None, [], structure=None, widths=None, ceilings=None, cost=None)


def test_loglikelihood_requests_stay_out_of_the_generation_figures() -> None:
    generating = [_generate("g0", 0, 3), _generate("g1", 5 * MS, 4)]
    likelihood = [
        _likelihood("l0", 100 * MS),
        _likelihood("l1", 120 * MS, "loglikelihood_rolling"),
        _likelihood("l2", 130 * MS, error="HTTP 500"),
    ]
    mixed = _score(generating + likelihood, {"ttft_s": 1.0})
    alone = _score(generating, {"ttft_s": 1.0})
    for key in ("requests", "throughput", "latency", "goodput", "workload"):
        assert mixed[key] == alone[key], key
    group = mixed["loglikelihood"]
    assert alone["loglikelihood"] is None
    assert group["requests"] == 3 and group["completed"] == 2 and group["failed"] == 1
    assert group["by_type"] == {"loglikelihood": 2, "loglikelihood_rolling": 1}  # measured, the failed one included
    assert group["prompt_tokens"] == 60
    assert group["latency_s"]["count"] == 2 and group["latency_s"]["p50"] == pytest.approx(0.04)
    assert group["wall_s"] == pytest.approx(0.07)  # 100 ms → 170 ms (the failed one counts: it occupied the server)
    assert group["prompt_tokens_per_s"] == pytest.approx(60 / 0.07)
    assert mixed["load"]["max_in_flight"] >= 2  # the achieved load counts every request


def test_a_run_of_only_loglikelihood_requests_scores_with_null_generation_figures() -> None:
    summary = _score([_likelihood(f"l{i}", i * 10 * MS) for i in range(5)], {"ttft_s": 0.5})
    assert summary["requests"]["measured"] == 0 and summary["latency"]["ttft_s"]["count"] == 0
    assert summary["throughput"]["wall_s"] is None and summary["goodput"]["requests_meeting"] is None
    assert summary["loglikelihood"]["completed"] == 5
    assert any("all log-likelihood requests" in note for note in summary["notes"])


def test_an_unknown_request_type_is_refused_where_it_enters(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_bytes(orjson.dumps({"schema_version": 2, "run_id": "x", "status": "complete"}))
    lines = [_generate("g0", 0, 2), _likelihood("l0", 10 * MS, "multiple_choice")]
    (run_dir / "requests.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in lines))
    with pytest.raises(CapbenchError, match=r"line 2: 'request_type' of 'l0' must be one of generate, loglikelihood"):
        score_run_dir(run_dir, write=False)
    with pytest.raises(CapbenchError, match="'request_type' of 'l0'"):
        _score(lines)
