"""lm-eval's log-likelihood requests as capbench requests, and their results back from the records.

A ``loglikelihood`` instance asks for log p(continuation | context); lm-eval tokenizes the pair itself
(``TemplateLM._encode_pair``: the trailing spaces of the context move to the continuation, the whole text is
encoded once and split at the context's length), and capbench serves the token ids, so the boundary is exactly
lm-eval's on every runner. A ``loglikelihood_rolling`` instance (perplexity) is one text, cut into lm-eval's
disjoint rolling windows (``get_rolling_token_windows`` + ``make_disjoint_window``, each window's first token
conditioned on the model's prefix token); each window is one request and the text's log-likelihood is the sum
over its windows.

Each request's prompt is ``context_ids + continuation_ids``, at most ``max_prompt_tokens`` long: a longer one
keeps its last ``max_prompt_tokens`` tokens (the context loses its start, as lm-eval's own models truncate); a
continuation that alone does not fit is refused. The limit is the model's context minus one, leaving room for
the one token a server generates with the prompt's log-probabilities.

The runner writes ``continuation_logprob`` (Σ of the continuation tokens' natural-log probabilities) and
``is_greedy`` into each record. A request that failed has neither, and no sample can be scored without all of its
requests: :func:`likelihood_results` then refuses to score the task rather than publish a number that counts a
failure as a choice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from capbench.errors import CapbenchError
from capbench.workload import Likelihood, Prompt, Request

DEFAULT_MAX_PROMPT_TOKENS = 2047
"""Prompt limit when the model's context is unknown (lm-eval's default max length of 2048, minus one)."""


def max_prompt_tokens(context_length: int | None) -> int:
    """The longest log-likelihood prompt: the model's context minus one token (a server generates one token with
    the prompt's log-probabilities), or :data:`DEFAULT_MAX_PROMPT_TOKENS` when the context is unknown."""
    if context_length is None:
        return DEFAULT_MAX_PROMPT_TOKENS
    if context_length < 2:
        raise CapbenchError(f"a model context of {context_length} tokens cannot hold a log-likelihood request")
    return context_length - 1


def fit(context_ids: Sequence[int], continuation_ids: Sequence[int], limit: int) -> tuple[int, ...]:
    """``context_ids`` cut from the left so that context + continuation is at most ``limit`` tokens."""
    if not continuation_ids:
        raise CapbenchError("a log-likelihood request has an empty continuation (nothing to score)")
    if len(continuation_ids) >= limit:
        raise CapbenchError(
            f"a log-likelihood continuation of {len(continuation_ids)} tokens does not fit the model's context "
            f"({limit} prompt tokens at most, with at least one token of context)"
        )
    room = limit - len(continuation_ids)
    return tuple(context_ids[-room:]) if len(context_ids) > room else tuple(context_ids)


def likelihood_request(
    index: int, kind: str, context_ids: Sequence[int], continuation_ids: Sequence[int], sid: str, limit: int
) -> Request:
    """Measured request ``r<index>`` scoring ``continuation_ids`` after ``context_ids`` for sample ``sid``."""
    query = Likelihood(
        kind=kind, context_ids=fit(context_ids, continuation_ids, limit), continuation_ids=tuple(continuation_ids)
    )
    return Request(
        id=f"r{index:04d}",
        prompt=Prompt(id=sid, text="", token_ids=query.token_ids, as_token_ids=True),
        warmup=False,
        max_tokens=1,
        sample_id=sid,
        likelihood=query,
    )


def rolling_windows(token_ids: Sequence[int], prefix_id: int, limit: int) -> list[tuple[list[int], list[int]]]:
    """lm-eval's disjoint rolling windows over ``token_ids`` as ``(context, continuation)`` pairs of at most
    ``limit`` tokens in all; every token of the text is scored exactly once."""
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

    windows = get_rolling_token_windows(
        token_list=list(token_ids), prefix_token=prefix_id, max_seq_len=limit - 1, context_len=1
    )
    return [make_disjoint_window(w) for w in windows]


def record_likelihood(record: Mapping[str, Any] | None) -> tuple[float, bool] | None:
    """``(continuation_logprob, is_greedy)`` of a finished log-likelihood record; None when it failed or has no
    result."""
    if record is None or record.get("error") is not None:
        return None
    logprob, greedy = record.get("continuation_logprob"), record.get("is_greedy")
    if not isinstance(logprob, int | float) or isinstance(logprob, bool) or not isinstance(greedy, bool):
        return None
    if math.isnan(logprob) or logprob > 0:
        raise CapbenchError(f"request {record.get('id')}: continuation_logprob {logprob!r} is not a log-probability")
    return float(logprob), greedy


def likelihood_results(
    requests: Sequence[Request], records: Mapping[str, Mapping[str, Any]]
) -> list[tuple[float, bool]]:
    """Each request's ``(continuation_logprob, is_greedy)``, in order; a :class:`CapbenchError` when any request
    has none (it failed or was never answered), naming how many and the first error."""
    results = [record_likelihood(records.get(request.id)) for request in requests]
    missing = [request.id for request, result in zip(requests, results, strict=True) if result is None]
    if missing:
        why = (records.get(missing[0]) or {}).get("error") or "no record"
        raise CapbenchError(
            f"{len(missing)} of {len(requests)} log-likelihood requests have no result (first: {missing[0]}: {why}); "
            "a sample cannot be scored without every one of its requests, so the task is not scored"
        )
    return [result for result in results if result is not None]
