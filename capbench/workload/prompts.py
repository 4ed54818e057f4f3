"""Prompts and the requests a run sends.

A prompt file is JSONL, one object per line with a ``prompt`` string and an optional ``id``. Requests cycle
through the prompts in an order shuffled by the run's seed; warm-up requests come first, are marked
``warmup=True`` and get ids ``w0000...``, measured ones ``r0000...`` (metrics exclude warm-up by this flag).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from capbench.errors import CapbenchError
from capbench.workload.files import read_utf8

if TYPE_CHECKING:
    from capbench.workload.conversations import Sessions, SessionTurn


@dataclass(frozen=True)
class Prompt:
    """One prompt. ``token_ids`` (fixed-length mode, token-id datasets) are the exact ids the model sees; a runner
    that tokenizes itself uses them instead of re-tokenizing ``text``. ``as_token_ids``: the prompt is its ids
    (``text`` is empty); a server runner sends the ids themselves (completions API)."""

    id: str
    text: str
    token_ids: tuple[int, ...] | None = None
    as_token_ids: bool = False


@dataclass(frozen=True)
class Likelihood:
    """A prompt-only request: score ``continuation_ids`` after ``context_ids`` (token ids of the served model).

    The prompt the model computes is ``context_ids + continuation_ids``; nothing is generated for the answer.
    The result is ``continuation_logprob`` = Σ log p(continuation token | everything before it), in nats, and
    ``is_greedy`` = every continuation token is the model's most likely next token (lm-eval's definition).
    ``kind`` is ``loglikelihood`` (a continuation after a context) or ``loglikelihood_rolling`` (one window of a
    text scored for perplexity), the record's ``request_type`` (:data:`capbench.records.validate.REQUEST_TYPES`).
    """

    kind: str
    context_ids: tuple[int, ...]
    continuation_ids: tuple[int, ...]

    @property
    def token_ids(self) -> tuple[int, ...]:
        """The whole prompt: context, then continuation."""
        return self.context_ids + self.continuation_ids


@dataclass(frozen=True)
class Request:
    """One request of a run.

    ``max_tokens`` and ``stop`` override the run's settings for this request (an accuracy task's
    ``max_gen_toks`` and ``until``): generation ends at the first stop string, which is not part of the output.
    ``sample_id`` names the task sample the request answers (``<task>/<doc_id>``), None outside accuracy runs.
    ``session`` (multi-turn): the request's session, turn and the conversation before it
    (:mod:`capbench.workload.conversations`); its chat messages are the history and then ``prompt.text``.
    ``likelihood`` (log-likelihood tasks): the tokens to score instead of generating (:class:`Likelihood`);
    the prompt then holds the same ids.
    """

    id: str
    prompt: Prompt
    warmup: bool
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    sample_id: str | None = None
    session: SessionTurn | None = None
    likelihood: Likelihood | None = None

    @property
    def request_type(self) -> str:
        """``generate``, or the kind of its :class:`Likelihood` (the record's ``request_type``)."""
        return self.likelihood.kind if self.likelihood is not None else "generate"

    @property
    def record_fields(self) -> dict[str, object]:
        """The optional fields its ``requests.jsonl`` record carries (docs/records.md): ``sample_id`` (a task
        sample), ``session_id`` and ``turn`` (multi-turn), ``request_type`` (when it is not ``generate``)."""
        fields: dict[str, object] = {}
        if self.sample_id is not None:
            fields["sample_id"] = self.sample_id
        if self.session is not None:
            fields["session_id"] = self.session.session_id
            fields["turn"] = self.session.turn
        if self.likelihood is not None:
            fields["request_type"] = self.likelihood.kind
        return fields

    @property
    def messages(self) -> list[dict[str, str]]:
        """The request as chat messages: its session's conversation so far and the new message, or the prompt as
        one user message."""
        if self.session is not None:
            return self.session.messages
        return [{"role": "user", "content": self.prompt.text}]


@dataclass(frozen=True)
class PromptSet:
    """Prompts with where they came from and a content hash (recorded in ``run.json``)."""

    prompts: tuple[Prompt, ...]
    source: str
    sha256: str


def _parse_prompts(text: str, source: str) -> tuple[Prompt, ...]:
    prompts = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CapbenchError(f"{source}:{lineno}: not valid JSON ({exc.msg})") from exc
        if not isinstance(obj, dict) or not isinstance(obj.get("prompt"), str) or not obj["prompt"]:
            raise CapbenchError(f"{source}:{lineno}: each line needs a non-empty string field 'prompt'")
        prompts.append(Prompt(id=str(obj.get("id", f"line{lineno}")), text=obj["prompt"]))
    if not prompts:
        raise CapbenchError(f"{source} holds no prompts")
    return tuple(prompts)


def load_prompts(path: str | Path | None = None) -> PromptSet:
    """Prompts from a JSONL file, or the set shipped with capbench when ``path`` is None."""
    if path is None:
        source = "capbench/data/prompts.jsonl (shipped)"
        text = resources.files("capbench.data").joinpath("prompts.jsonl").read_text(encoding="utf-8")
    else:
        source = str(path)
        _, text = read_utf8(path, "prompt file")
    sha = hashlib.sha256(text.encode()).hexdigest()
    return PromptSet(prompts=_parse_prompts(text, source), source=source, sha256=sha)


def _measured(order: list[Prompt], offset: int, count: int | None) -> Iterator[Request]:
    """Measured requests r0000, r0001, ... cycling ``order`` from ``offset``; endless when ``count`` is None."""
    indices = range(count) if count is not None else itertools.count()
    for i in indices:
        yield Request(id=f"r{i:04d}", prompt=order[(offset + i) % len(order)], warmup=False)


def build_requests(prompts: PromptSet, num_requests: int, warmup: int, seed: int) -> list[Request]:
    """``warmup`` warm-up requests then ``num_requests`` measured ones, cycling a seeded shuffle."""
    workload = build_workload(prompts, num_requests=num_requests, duration_s=None, warmup=warmup, seed=seed)
    return [*workload.warmup, *workload.measured]


@dataclass
class Workload:
    """What a runner serves: warm-up requests first, then measured ones until ``num_requests`` or
    ``duration_s`` (then ``measured`` is endless and the runner stops taking from it on time).
    ``offsets_ns`` (trace replay): measured request ``i`` is due ``offsets_ns[i]`` ns after the measured phase
    starts. ``sessions`` (multi-turn): ``measured`` yields each session's first turn, ``num_requests`` counts
    sessions, and the runner asks ``sessions.next_turn`` for the rest as answers arrive."""

    warmup: list[Request]
    measured: Iterator[Request]
    num_requests: int | None
    duration_s: float | None
    offsets_ns: list[int] | None = None
    sessions: Sessions | None = None

    @property
    def total(self) -> int | None:
        """Every request the run will send, or None in duration mode."""
        if self.num_requests is None:
            return None
        if self.sessions is not None:
            return len(self.warmup) + (self.sessions.planned_requests or 0)
        return len(self.warmup) + self.num_requests


def build_workload(
    prompts: PromptSet, *, num_requests: int | None, duration_s: float | None, warmup: int, seed: int
) -> Workload:
    """The run's requests: prompts in a seeded shuffle, warm-up ids ``w....``, measured ids ``r....``."""
    if (num_requests is None) == (duration_s is None):
        raise CapbenchError("a workload needs exactly one of num_requests and duration_s")
    order = list(prompts.prompts)
    random.Random(seed).shuffle(order)
    warm = [Request(id=f"w{i:04d}", prompt=order[i % len(order)], warmup=True) for i in range(warmup)]
    return Workload(warm, _measured(order, warmup, num_requests), num_requests, duration_s)
