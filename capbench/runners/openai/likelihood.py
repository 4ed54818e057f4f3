"""Log-likelihood requests to an OpenAI-compatible server: the prompt's log-probabilities from the completions API.

A log-likelihood request (``Request.likelihood``) is sent to ``/v1/completions`` as its token ids
(``context_ids + continuation_ids``, so the context/continuation boundary is exactly lm-eval's), with
``echo: true`` and ``logprobs: 1`` (the server returns, for every prompt token, its log-probability and the most
likely token's), ``max_tokens: 1`` (a server generates at least one token; it is not scored), ``temperature: 0``
and ``stream: false``.

From ``choices[0].logprobs`` of the answer (``token_logprobs[i]``: log p(prompt token i | tokens before it), the
first one null; ``top_logprobs[i]``: the most likely tokens at position i with their log-probabilities), for the
``m`` continuation tokens at prompt positions ``P - m .. P - 1``:

- ``continuation_logprob`` = Σ token_logprobs over those positions (nats, summed in float64);
- ``is_greedy``: at each of them the token's log-probability is the largest of ``top_logprobs`` (within
  :data:`GREEDY_TOLERANCE`, the servers' float32 rounding): the token is the model's most likely next token.

A server that returns no prompt log-probabilities cannot serve these requests: :func:`probe_prompt_logprobs`
sends one before the run and says why in one line.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

from capbench.workload import Likelihood

GREEDY_TOLERANCE = 1e-5
"""How far (nats) a token's log-probability may fall below the top one and still count as the greedy choice."""


def likelihood_body(model: str, likelihood: Likelihood) -> dict[str, Any]:
    """The JSON body of one log-likelihood request (module docstring)."""
    return {
        "model": model,
        "prompt": list(likelihood.token_ids),
        "max_tokens": 1,
        "temperature": 0.0,
        "echo": True,
        "logprobs": 1,
        "stream": False,
    }


def prompt_scores(logprobs: Any, prompt_tokens: int, continuation_tokens: int) -> tuple[float, bool]:
    """``(continuation_logprob, is_greedy)`` from a completion's ``logprobs`` object (module docstring).

    Raises:
        ValueError: the object does not hold the prompt's log-probabilities (the message says what is missing).
    """
    if not isinstance(logprobs, Mapping):
        raise ValueError("the response has no logprobs object")
    values = logprobs.get("token_logprobs")
    tops = logprobs.get("top_logprobs")
    if not isinstance(values, list) or len(values) < prompt_tokens:
        have = len(values) if isinstance(values, list) else 0
        raise ValueError(
            f"the response has log-probabilities for {have} tokens, not for the {prompt_tokens} prompt tokens "
            "(the server does not echo the prompt)"
        )
    total = 0.0
    greedy = True
    for position in range(prompt_tokens - continuation_tokens, prompt_tokens):
        value = values[position]
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value) or value > 0:
            raise ValueError(f"prompt token {position} has no log-probability (got {value!r})")
        total += float(value)
        top = tops[position] if isinstance(tops, list) and position < len(tops) else None
        if not isinstance(top, Mapping) or not top:
            raise ValueError(f"prompt token {position} has no top log-probabilities (got {top!r})")
        best = max(float(v) for v in top.values() if isinstance(v, int | float) and not isinstance(v, bool))
        if value < best - GREEDY_TOLERANCE:
            greedy = False
    return total, greedy


def probe_prompt_logprobs(
    base_url: str, headers: Mapping[str, str], model: str, token_ids: Sequence[int], timeout_s: float = 60.0
) -> str | None:
    """Send one log-likelihood request for ``token_ids`` (at least 2); None when the server answered with the
    prompt's log-probabilities, else why not (one line)."""
    likelihood = Likelihood("loglikelihood", tuple(token_ids[:-1]), tuple(token_ids[-1:]))
    body = json.dumps(likelihood_body(model, likelihood)).encode()
    request = urllib.request.Request(
        base_url.rstrip("/") + "/v1/completions",
        data=body,
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:200].decode("utf-8", "replace").replace("\n", " ")
        return f"it answered HTTP {exc.code}: {detail}"
    except (OSError, urllib.error.URLError) as exc:
        return f"the request failed: {exc}"
    try:
        answer = json.loads(raw)
        choice = answer["choices"][0]
    except (ValueError, KeyError, IndexError, TypeError):
        return f"its answer is not a completion: {raw[:200].decode('utf-8', 'replace')!r}"
    try:
        prompt_scores(choice.get("logprobs") if isinstance(choice, Mapping) else None, len(token_ids), 1)
    except ValueError as exc:
        return str(exc)
    return None
