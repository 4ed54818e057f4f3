"""Log-likelihood requests to an OpenAI-compatible server (capbench.runners.openai.likelihood): the request body,
and the continuation's log-probability and greediness read from the echoed prompt's log-probabilities."""

from __future__ import annotations

import json
from typing import Any

import pytest

from capbench.runners.openai.likelihood import GREEDY_TOLERANCE, likelihood_body, prompt_scores
from capbench.workload import Likelihood


def _logprobs(values: list[float | None], tops: list[dict[str, float] | None]) -> dict[str, Any]:
    return {"tokens": ["t"] * len(values), "token_logprobs": values, "top_logprobs": tops, "text_offset": []}


def test_body_sends_token_ids_and_asks_for_the_prompts_logprobs() -> None:
    body = likelihood_body("m", Likelihood("loglikelihood", (5, 6, 7), (8, 9)))
    assert body == {
        "model": "m",
        "prompt": [5, 6, 7, 8, 9],
        "max_tokens": 1,
        "temperature": 0.0,
        "echo": True,
        "logprobs": 1,
        "stream": False,
    }
    json.dumps(body)


def test_scores_sum_the_continuation_positions_only() -> None:
    # prompt of 5 tokens (continuation = the last 2), then the one generated token
    values = [None, -1.0, -2.0, -0.25, -0.5, -9.0]
    tops = [None, {"a": -0.5}, {"b": -0.1}, {"c": -0.25}, {"d": -0.5}, {"e": -0.01}]
    assert prompt_scores(_logprobs(values, tops), 5, 2) == (-0.75, True)
    assert prompt_scores(_logprobs(values, tops), 5, 3) == (-2.75, False)  # token 2 was not the most likely


def test_greedy_allows_float32_rounding_only() -> None:
    values = [None, -0.5]
    assert prompt_scores(_logprobs(values, [None, {"x": -0.5 + GREEDY_TOLERANCE / 2}]), 2, 1)[1] is True
    assert prompt_scores(_logprobs(values, [None, {"x": -0.5 + 10 * GREEDY_TOLERANCE}]), 2, 1)[1] is False


@pytest.mark.parametrize(
    ("logprobs", "match"),
    [
        pytest.param(None, "no logprobs object", id="none"),
        pytest.param(_logprobs([-0.1], [{"a": -0.1}]), "for 1 tokens, not for the 3 prompt tokens", id="no-echo"),
        pytest.param(
            _logprobs([None, -0.1, None], [None, {"a": -0.1}, None]), "token 2 has no log-probability", id="null"
        ),
        pytest.param(_logprobs([None, -0.1, 0.5], [None, {}, {"a": 0.5}]), "token 1 has no top", id="no-top"),
        pytest.param(
            _logprobs([None, -0.1, 0.5], [None, {"a": -0.1}, {"a": 0.5}]), "token 2 has no log-prob", id="positive"
        ),
    ],
)
def test_a_response_without_prompt_logprobs_is_refused(logprobs: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        prompt_scores(logprobs, 3, 2)
