"""Log-likelihood requests (capbench.tasks.likelihood, CapbenchLM.loglikelihood / loglikelihood_rolling): lm-eval's
pairs become prompt-only requests with exact token boundaries, and their results come back in order or not at all."""

from __future__ import annotations

import math
from typing import Any

import pytest
from lm_eval.api.instance import Instance

from capbench.errors import CapbenchError
from capbench.tasks.evaluate import _choice_answer, _request_type
from capbench.tasks.likelihood import fit, likelihood_results, max_prompt_tokens, rolling_windows
from capbench.tasks.lm import CapbenchLM
from capbench.workload import Request, Workload


class CharTokenizer:
    """One token per character (id = code point), BOS 1 and EOS 2: boundaries that are easy to count."""

    bos_token_id = 1
    eos_token_id = 2

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        ids = [ord(c) for c in text]
        return {"input_ids": ([self.bos_token_id] if add_special_tokens else []) + ids}


def _ll(context: str, continuation: str, *, doc_id: int = 0, idx: int = 0, kind: str = "loglikelihood") -> Instance:
    args: tuple[str, ...] = (context, continuation) if kind == "loglikelihood" else (context,)
    return Instance(request_type=kind, doc={}, arguments=args, idx=idx, metadata=("t", doc_id, 1))  # type: ignore[arg-type]


class Recorder:
    """A serve function that answers each request with a log-probability of −(number of continuation tokens)."""

    def __init__(self, fail: tuple[str, ...] = ()) -> None:
        self.workloads: list[Workload] = []
        self.measured: list[Request] = []
        self.fail = fail

    def __call__(self, workload: Workload) -> dict[str, dict[str, Any]]:
        self.workloads.append(workload)
        self.measured = list(workload.measured)
        out: dict[str, dict[str, Any]] = {}
        for r in self.measured:
            assert r.likelihood is not None
            if r.id in self.fail:
                out[r.id] = {"id": r.id, "error": "HTTP 500"}
            else:
                m = len(r.likelihood.continuation_ids)
                out[r.id] = {"id": r.id, "error": None, "continuation_logprob": -float(m), "is_greedy": m == 1}
        return out


def test_max_prompt_tokens_leaves_one_token_for_the_server() -> None:
    assert max_prompt_tokens(2048) == 2047
    assert max_prompt_tokens(None) == 2047
    with pytest.raises(CapbenchError, match="cannot hold"):
        max_prompt_tokens(1)


def test_fit_cuts_the_context_from_the_left() -> None:
    assert fit([1, 2, 3, 4, 5], [6, 7], 7) == (1, 2, 3, 4, 5)
    assert fit([1, 2, 3, 4, 5], [6, 7], 5) == (3, 4, 5)
    with pytest.raises(CapbenchError, match="does not fit"):
        fit([1], [6, 7, 8], 3)
    with pytest.raises(CapbenchError, match="empty continuation"):
        fit([1], [], 3)


@pytest.mark.parametrize(("length", "limit"), [(1, 4), (7, 4), (8, 4), (30, 5), (100, 17)])
def test_rolling_windows_score_every_token_once(length: int, limit: int) -> None:
    tokens = list(range(10, 10 + length))
    windows = rolling_windows(tokens, prefix_id=1, limit=limit)
    scored = [t for _, continuation in windows for t in continuation]
    assert scored == tokens
    assert all(len(c) + len(x) <= limit and c for c, x in windows)
    assert windows[0][0] == [1]  # the first token is conditioned on the prefix token
    for context, continuation in windows[1:]:  # each later window's context is the text just before it
        start = tokens.index(continuation[0])
        assert context == tokens[start - len(context) : start]


def test_loglikelihood_sends_lm_evals_token_boundary() -> None:
    serve = Recorder()
    lm = CapbenchLM(serve, warmup=2, max_tokens=None, default_max_tokens=8, tokenizer=CharTokenizer())
    instances = [_ll("Q: 1+1=", " 2", doc_id=4), _ll("Q: 1+1= ", "3", doc_id=4, idx=1), _ll("", "ab", doc_id=5)]
    assert lm.loglikelihood(instances) == [(-2.0, False), (-2.0, False), (-2.0, False)]
    (workload,) = serve.workloads
    assert [w.id for w in workload.warmup] == ["w0000", "w0001"] and all(w.sample_id is None for w in workload.warmup)
    assert workload.num_requests == 3
    first, second, empty = serve.measured
    assert [r.id for r in serve.measured] == ["r0000", "r0001", "r0002"]
    assert [r.sample_id for r in serve.measured] == ["t/4", "t/4", "t/5"]
    assert all(r.request_type == "loglikelihood" and r.max_tokens == 1 for r in serve.measured)
    assert first.likelihood is not None and second.likelihood is not None and empty.likelihood is not None
    assert first.likelihood.continuation_ids == (ord(" "), ord("2"))
    # lm-eval moves the context's trailing space into the continuation
    assert second.likelihood.context_ids == tuple(ord(c) for c in "Q: 1+1=")
    assert second.likelihood.continuation_ids == (ord(" "), ord("3"))
    # an empty context is conditioned on the BOS token
    assert empty.likelihood.context_ids == (1,) and empty.likelihood.continuation_ids == (ord("a"), ord("b"))
    assert first.prompt.token_ids == first.likelihood.token_ids and first.prompt.as_token_ids


def test_loglikelihood_truncates_long_contexts_to_the_model() -> None:
    serve = Recorder()
    lm = CapbenchLM(serve, warmup=0, max_tokens=None, default_max_tokens=8, tokenizer=CharTokenizer(), context_length=6)
    lm.loglikelihood([_ll("abcdefgh", "xy")])
    (request,) = serve.measured
    assert request.likelihood is not None and request.likelihood.token_ids == tuple(ord(c) for c in "fghxy")


def test_loglikelihood_rolling_sums_its_windows() -> None:
    serve = Recorder()
    lm = CapbenchLM(serve, warmup=0, max_tokens=None, default_max_tokens=8, tokenizer=CharTokenizer(), context_length=5)
    text0, text1 = "abcdefghij", "xyz"
    totals = lm.loglikelihood_rolling(
        [_ll(text0, "", kind="loglikelihood_rolling"), _ll(text1, "", doc_id=1, kind="loglikelihood_rolling")]
    )
    assert totals == [-10.0, -3.0]  # every character scored once: −1 each
    windows = [r for r in serve.measured if r.sample_id == "t/0"]
    assert len(windows) > 1 and all(r.request_type == "loglikelihood_rolling" for r in serve.measured)
    assert all(r.likelihood is not None and len(r.likelihood.token_ids) <= 4 for r in serve.measured)


def test_a_failed_request_refuses_to_score_the_task() -> None:
    lm = CapbenchLM(
        Recorder(fail=("r0001",)), warmup=0, max_tokens=None, default_max_tokens=8, tokenizer=CharTokenizer()
    )
    with pytest.raises(
        CapbenchError, match=r"1 of 2 log-likelihood requests have no result \(first: r0001: HTTP 500\)"
    ):
        lm.loglikelihood([_ll("a", "b"), _ll("a", "c", idx=1)])


def test_likelihood_results_refuse_impossible_values() -> None:
    request = Request(id="r0000", prompt=None, warmup=False)  # type: ignore[arg-type]
    good = {"r0000": {"id": "r0000", "error": None, "continuation_logprob": -0.5, "is_greedy": True}}
    assert likelihood_results([request], good) == [(-0.5, True)]
    for value in (0.5, math.nan):
        bad = {"r0000": {**good["r0000"], "continuation_logprob": value}}
        with pytest.raises(CapbenchError, match="not a log-probability"):
            likelihood_results([request], bad)
    with pytest.raises(CapbenchError, match="no result"):
        likelihood_results([request], {"r0000": {**good["r0000"], "is_greedy": "yes"}})


def test_a_log_likelihood_task_needs_the_tokenizer() -> None:
    lm = CapbenchLM(Recorder(), warmup=0, max_tokens=None, default_max_tokens=8)
    with pytest.raises(CapbenchError, match="tokenizer"):
        lm.loglikelihood([_ll("a", "b")])


def test_request_types_of_tasks() -> None:
    assert _request_type({"a": "generate_until"}) == "generate"
    assert _request_type({"a": "multiple_choice", "b": "loglikelihood"}) == "loglikelihood"
    assert _request_type({"a": "loglikelihood_rolling"}) == "loglikelihood_rolling"
    with pytest.raises(CapbenchError, match="mixes request types"):
        _request_type({"a": "generate_until", "b": "multiple_choice"})
    with pytest.raises(CapbenchError, match="cannot serve"):
        _request_type({"a": "embedding"})


def test_choice_answer_is_the_most_likely_choice() -> None:
    sample = {
        "arguments": [["Q", " 12"], ["Q", " 13"], ["Q", " 14"]],
        "filtered_resps": [[-3.0, False], [-1.0, True], [-1.0, False]],
    }
    assert _choice_answer(sample) == "13"  # a tie goes to the first, as lm-eval's argmax
    assert _choice_answer({"arguments": [["Q", " 1"]], "filtered_resps": []}) is None
