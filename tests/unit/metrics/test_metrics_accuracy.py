"""accuracy_summary and fixed_length_summary against hand-computed golden values."""

from __future__ import annotations

from typing import Any

import pytest

from capbench.metrics.accuracy import accuracy_summary
from capbench.metrics.fixed_length import fixed_length_summary


def _manifest(value: float | None = 0.4, *, reported: bool = True) -> dict[str, Any]:
    manifest: dict[str, Any] = {"load": {"dataset": {"name": "task", "task": "capbench_arithmetic"}}}
    if reported:
        manifest["accuracy"] = {
            "task": "capbench_arithmetic",
            "metric": "exact_match,none",
            "value": value,
            "stderr": 0.2449,
            "n": 5,
            "no_answer_rate": 0.4,
            "higher_is_better": True,  # not copied into the summary
        }
    return manifest


def _rec(rid: str, sid: str | None, score: float | None, answer: str | None, **extra: Any) -> dict[str, Any]:
    return {"id": rid, "warmup": False, "sample_id": sid, "score": score, "answer": answer, "error": None, **extra}


def _records() -> list[dict[str, Any]]:
    """5 samples: right, wrong, right (served twice: one repeat), failed (scored 0), no answer (scored 0).

    Σ score = 1 + 0 + 1 + 0 + 0 = 2 over 5 samples → 0.4; no answer: t/3 and t/4 → 0.4; one failed request.
    """
    return [
        {"id": "w0000", "warmup": True, "sample_id": None, "score": 1.0, "answer": "1", "error": None},
        {"id": "w0001", "warmup": True, "sample_id": "t/9", "score": 1.0, "answer": "1", "error": "boom"},
        _rec("r0000", "t/0", 1.0, "7"),
        _rec("r0001", "t/1", 0.0, "8"),
        _rec("r0002", "t/2", 1.0, "3"),
        _rec("r0003", "t/2", 1.0, "3"),  # a repeat of t/2
        _rec("r0004", "t/3", 0.0, None, error="timeout"),
        _rec("r0005", "t/4", 0.0, None),
    ]


def test_accuracy_summary_golden() -> None:
    out = accuracy_summary(_manifest(0.4), _records())
    assert out == {
        "task": "capbench_arithmetic",
        "metric": "exact_match,none",
        "value": 0.4,
        "stderr": 0.2449,
        "n": 5,
        "no_answer_rate": 0.4,
        "samples_recorded": 5,
        "value_recount": pytest.approx(0.4),
        "no_answer_rate_recount": pytest.approx(0.4),
        "failed_requests": 1,
        "recount_matches": True,
    }


def test_accuracy_summary_recount_disagrees() -> None:
    out = accuracy_summary(_manifest(0.5), _records())
    assert out is not None
    assert out["value"] == 0.5 and out["value_recount"] == pytest.approx(0.4)
    assert out["recount_matches"] is False


def test_accuracy_summary_within_tolerance_matches() -> None:
    out = accuracy_summary(_manifest(0.4 + 1e-12), _records())
    assert out is not None and out["recount_matches"] is True


def test_accuracy_summary_missing_score_gives_no_recount() -> None:
    records = [*_records(), _rec("r0006", "t/5", None, None)]
    out = accuracy_summary(_manifest(0.4), records)
    assert out is not None
    assert out["samples_recorded"] == 6
    assert out["value_recount"] is None and out["no_answer_rate_recount"] is None
    assert out["recount_matches"] is None
    assert out["value"] == 0.4  # lm-eval's own figure is still reported


def test_accuracy_summary_task_not_scored() -> None:
    out = accuracy_summary(_manifest(reported=False), [_rec("r0000", "t/0", None, None)])
    assert out is not None
    assert out["task"] == "capbench_arithmetic"
    assert (out["metric"], out["value"], out["stderr"], out["n"], out["no_answer_rate"]) == (None,) * 5
    assert out["value_recount"] is None and out["recount_matches"] is None
    assert "not scored" in out["note"]


def test_accuracy_summary_without_records() -> None:
    out = accuracy_summary(_manifest(0.4), [])
    assert out is not None
    assert out["samples_recorded"] == 0
    assert out["value_recount"] is None and out["recount_matches"] is None and out["failed_requests"] == 0


@pytest.mark.parametrize(
    "manifest",
    [
        pytest.param({}, id="empty-manifest"),
        pytest.param({"load": {"dataset": {"name": "prompts", "source": "shipped"}}}, id="prompts-run"),
    ],
)
def test_accuracy_summary_none_without_task(manifest: dict[str, Any]) -> None:
    records = [{"id": "r0000", "warmup": False, "sample_id": None, "error": None}]
    assert accuracy_summary(manifest, records) is None


# --- fixed length --------------------------------------------------------------------------------------------


def _fixed_manifest(prompt_tokens: int | None, output_tokens: int | None) -> dict[str, Any]:
    return {"load": {"fixed_length": {"prompt_tokens": prompt_tokens, "output_tokens": output_tokens}}}


def _frec(prompt_tokens: int | None, output_tokens: int | None, **extra: Any) -> dict[str, Any]:
    return {"warmup": False, "error": None, "prompt_tokens": prompt_tokens, "output_tokens": output_tokens, **extra}


def _ignored() -> list[dict[str, Any]]:
    """Warm-up and failed requests with wrong or unknown counts: never counted."""
    return [
        _frec(3, 1, warmup=True),
        _frec(None, None, warmup=True),
        _frec(128, 5, error="timeout"),
        _frec(None, None, error="HTTP 500"),
    ]


def test_fixed_length_exact() -> None:
    records = [_frec(128, 64), _frec(128, 64), *_ignored()]
    assert fixed_length_summary(_fixed_manifest(128, 64), records) == {
        "prompt_tokens": 128,
        "output_tokens": 64,
        "prompt_tokens_mismatches": 0,
        "prompt_tokens_unknown": 0,
        "output_tokens_mismatches": 0,
        "output_tokens_unknown": 0,
        "requests": 2,
        "exact": True,
    }


def test_fixed_length_mismatches_and_unknown() -> None:
    records = [_frec(128, 64), _frec(128, 63), _frec(127, 65), _frec(None, 64), _frec(128, None), *_ignored()]
    out = fixed_length_summary(_fixed_manifest(128, 64), records)
    assert out is not None
    assert (out["prompt_tokens_mismatches"], out["prompt_tokens_unknown"]) == (1, 1)
    assert (out["output_tokens_mismatches"], out["output_tokens_unknown"]) == (2, 1)
    assert out["requests"] == 5
    assert out["exact"] is False


def test_fixed_length_unknown_alone_is_not_exact() -> None:
    out = fixed_length_summary(_fixed_manifest(128, 64), [_frec(128, 64), _frec(128, None)])
    assert out is not None
    assert out["output_tokens_mismatches"] == 0 and out["output_tokens_unknown"] == 1
    assert out["exact"] is False


def test_fixed_length_only_output_fixed() -> None:
    records = [_frec(17, 64), _frec(None, 64), _frec(999, 64)]
    out = fixed_length_summary(_fixed_manifest(None, 64), records)
    assert out is not None
    assert out["prompt_tokens"] is None
    assert out["prompt_tokens_mismatches"] is None and out["prompt_tokens_unknown"] is None
    assert (out["output_tokens_mismatches"], out["output_tokens_unknown"]) == (0, 0)
    assert out["exact"] is True


def test_fixed_length_no_successful_request_is_not_exact() -> None:
    out = fixed_length_summary(_fixed_manifest(128, 64), _ignored())
    assert out is not None
    assert out["requests"] == 0 and out["exact"] is False


@pytest.mark.parametrize(
    "manifest",
    [
        pytest.param({}, id="no-load"),
        pytest.param({"load": {"max_tokens": 32}}, id="no-fixed-length-key"),
        pytest.param({"load": {"fixed_length": None}}, id="fixed-length-null"),
    ],
)
def test_fixed_length_none_when_not_fixed(manifest: dict[str, Any]) -> None:
    assert fixed_length_summary(manifest, [_frec(128, 64)]) is None
