"""Prompts of an exact token length, for capbench's fixed-length performance mode.

"Exact" means the number of tokens the model will see for the prompt, measured by re-tokenizing the final
prompt text in the same way the server or runner will:

* completions (``chat=False``): ``len(tokenizer(text, add_special_tokens=add_special_tokens).input_ids)``.
  Servers such as vLLM add the tokenizer's special tokens (e.g. BOS) by default: count with
  ``add_special_tokens=True`` for them. capbench's in-process hf runner adds none: ``False``.
* chat (``chat=True``): the length of ``tokenizer.apply_chat_template([{"role": "user", "content": text}],
  add_generation_prompt=True)``, the template's tokens included.

How a prompt is built:

1. A pool of "safe" token ids is built once per call, in id order: ids that are neither special nor added
   tokens, whose decoded text is printable (one line, no control characters) and not whitespace-only, and
   that re-encode to that same single id (``encode(decode([i])) == [i]``).
2. A ``random.Random`` seeded with the seed and the target (:func:`rng_seed`) samples ids from the pool for the
   text's share of the target: the target less the overhead, which is the token count of an empty text (the
   chat template's tokens, or the special tokens the tokenizer adds). The ids are decoded to text. Seeding with
   the target too keeps the sets of a sweep over lengths from being prefixes of one another, which a server's
   prefix cache would otherwise serve from cache.
3. The text is re-tokenized as above. Merges where sampled tokens meet change the count, so the text is
   adjusted and re-measured, at most :data:`MAX_STEPS` times: when too long, its own tokens are trimmed from the
   end; when too short, freshly sampled ids are appended to its ids. When that does not converge, or the model would see
   the same ids as for an earlier prompt of the set, the prompt is sampled afresh, at most :data:`MAX_ATTEMPTS`
   times.
4. ``Prompt.token_ids`` holds the ids of the final measurement: exactly the ids the model will see (after the
   chat template when ``chat=True``).

A :class:`FixedLengthError` says why when no prompt can meet the target: it is smaller than the overhead plus
one token, larger than the tokenizer's ``model_max_length`` (when that is a real limit, below 1e9), or no exact
prompt was found within the bounds.

The same tokenizer, arguments and seed give an identical :class:`~capbench.workload.PromptSet`; its ``sha256``
hashes the prompt texts joined with newlines.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from capbench.errors import CapbenchError
from capbench.workload import Prompt, PromptSet

#: Adjust-and-re-measure steps for one sampling of a prompt.
MAX_STEPS = 16
#: Fresh samplings of one prompt before giving up.
MAX_ATTEMPTS = 64
#: A ``model_max_length`` at or above this is transformers' "no limit" placeholder, not a real limit.
SANE_MAX_LENGTH = 1_000_000_000

Measure = Callable[[str], list[int]]


class FixedLengthError(CapbenchError):
    """Fixed-length prompts that cannot be built; the message says why, with the numbers involved."""


@dataclass(frozen=True)
class _Plan:
    """What every prompt of a set is built with."""

    target: int
    overhead: int
    pool: tuple[int, ...]
    measure: Measure
    text_ids: Measure
    decode: Callable[[Sequence[int]], str]
    #: ``measure`` returns the text's own ids (completions without special tokens): no second tokenization.
    measures_text: bool


def _plain_ids(tokenizer: Any, text: str, add_special_tokens: bool) -> list[int]:
    return [int(i) for i in tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"]]


def _chat_ids(tokenizer: Any, text: str) -> list[int]:
    out = tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True, return_dict=False
    )
    if isinstance(out, Mapping):
        out = out["input_ids"]
    return [int(i) for i in out]


def _decode(tokenizer: Any, ids: Sequence[int]) -> str:
    return str(tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False))


def _safe_text(text: str) -> bool:
    return bool(text.strip()) and text.isprintable()


def safe_pool(tokenizer: Any) -> tuple[int, ...]:
    """The ids fixed-length prompts are sampled from, in id order (see the module docstring)."""
    excluded = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", None) or {})
    candidates = [i for i in range(len(tokenizer)) if i not in excluded]
    texts = tokenizer.batch_decode(
        [[i] for i in candidates], skip_special_tokens=False, clean_up_tokenization_spaces=False
    )
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return tuple(
        i for i, text, ids in zip(candidates, texts, encoded, strict=True) if _safe_text(text) and list(ids) == [i]
    )


def _measure_fn(tokenizer: Any, chat: bool, add_special_tokens: bool) -> Measure:
    if chat:
        if not getattr(tokenizer, "chat_template", None):
            raise FixedLengthError("fixed-length chat prompts need a tokenizer with a chat template; this one has none")
        return lambda text: _chat_ids(tokenizer, text)
    return lambda text: _plain_ids(tokenizer, text, add_special_tokens)


def _check_target(tokenizer: Any, prompt_tokens: int, count: int, overhead: int, chat: bool) -> None:
    if prompt_tokens < 1:
        raise FixedLengthError(f"fixed-length prompts need at least 1 token, not {prompt_tokens}")
    if count < 1:
        raise FixedLengthError(f"fixed-length mode needs at least 1 prompt, not {count}")
    if prompt_tokens < overhead + 1:
        what = "the chat template alone takes" if chat else "the special tokens the tokenizer adds take"
        raise FixedLengthError(
            f"prompt_tokens={prompt_tokens} is too small: {what} {overhead} tokens, so the shortest prompt "
            f"possible is {overhead + 1} tokens (overhead {overhead} + 1)"
        )
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int | float) and limit < SANE_MAX_LENGTH and prompt_tokens > limit:
        raise FixedLengthError(
            f"prompt_tokens={prompt_tokens} is larger than the tokenizer's model_max_length of {int(limit)}"
        )


def _plan(tokenizer: Any, prompt_tokens: int, count: int, chat: bool, add_special_tokens: bool) -> _Plan:
    measure = _measure_fn(tokenizer, chat, add_special_tokens)
    overhead = len(measure(""))
    _check_target(tokenizer, prompt_tokens, count, overhead, chat)
    pool = safe_pool(tokenizer)
    if not pool:
        raise FixedLengthError("the tokenizer has no token that decodes to printable text and re-encodes to itself")
    return _Plan(
        target=prompt_tokens,
        overhead=overhead,
        pool=pool,
        measure=measure,
        text_ids=lambda text: _plain_ids(tokenizer, text, False),
        decode=lambda ids: _decode(tokenizer, ids),
        measures_text=not chat and not add_special_tokens,
    )


def _adjusted(plan: _Plan, ids: list[int], text: str, seen: list[int], excess: int, rng: random.Random) -> list[int]:
    """Ids for the next try: ``ids`` (which decoded to ``text``) extended by ``-excess`` fresh ones, or the text's
    own tokenization trimmed by ``excess``; empty if none remain."""
    if excess < 0:
        return ids + rng.choices(plan.pool, k=-excess)
    own = seen if plan.measures_text else plan.text_ids(text)
    return own[: max(len(own) - excess, 0)]


def _search(
    plan: _Plan, rng: random.Random, taken: set[tuple[int, ...]], reached: list[int]
) -> tuple[str, list[int]] | None:
    """One sampling of a prompt, adjusted until exact: ``(text, ids the model sees)``, or None."""
    ids = rng.choices(plan.pool, k=plan.target - plan.overhead)
    for _ in range(MAX_STEPS):
        text = plan.decode(ids)
        seen = plan.measure(text)
        reached.append(len(seen))
        excess = len(seen) - plan.target
        if excess == 0:
            return None if tuple(seen) in taken else (text, seen)
        ids = _adjusted(plan, ids, text, seen, excess, rng)
        if not ids:
            return None
    return None


def _closest(reached: list[int], target: int) -> list[int]:
    return sorted(sorted(set(reached), key=lambda n: (abs(n - target), n))[:8])


def _build_one(plan: _Plan, prompt_id: str, rng: random.Random, taken: set[tuple[int, ...]]) -> Prompt:
    reached: list[int] = []
    for _ in range(MAX_ATTEMPTS):
        found = _search(plan, rng, taken, reached)
        if found is not None:
            text, ids = found
            return Prompt(id=prompt_id, text=text, token_ids=tuple(ids))
    duplicates = reached.count(plan.target)
    raise FixedLengthError(
        f"could not build prompt {prompt_id} with exactly {plan.target} tokens in {MAX_ATTEMPTS} samplings of "
        f"{MAX_STEPS} steps: lengths reached {min(reached)}..{max(reached)}, closest {_closest(reached, plan.target)}"
        + (f"; {duplicates} exact ones repeated earlier prompts" if duplicates else "")
    )


def rng_seed(seed: int, prompt_tokens: int) -> str:
    """What seeds the sampling: a string, which ``random.Random`` hashes the same way in every process."""
    return f"capbench-fixed-length:{seed}:{prompt_tokens}"


def _source(prompt_tokens: int, seed: int, chat: bool, add_special_tokens: bool) -> str:
    if chat:
        how = "chat template"
    else:
        how = "completions, special tokens added" if add_special_tokens else "completions, no special tokens"
    return f"fixed length: {prompt_tokens} tokens ({how}), seed {seed}"


def build_fixed_prompts(
    tokenizer: Any,
    prompt_tokens: int,
    count: int,
    seed: int,
    *,
    chat: bool = False,
    add_special_tokens: bool = False,
) -> PromptSet:
    """``count`` distinct prompts the model sees as exactly ``prompt_tokens`` tokens each.

    Args:
        tokenizer: a transformers ``PreTrainedTokenizer(Fast)``, the one the server or runner uses.
        prompt_tokens: the exact number of tokens per prompt, template and special tokens included.
        count: how many distinct prompts, ids ``fixed-0000``, ``fixed-0001``, ...
        seed: seeds the sampling; the same seed gives the same prompts.
        chat: count after the chat template (the run uses a chat API).
        add_special_tokens: without ``chat``, count with the tokenizer's special tokens (True for servers such as
            vLLM, False for capbench's in-process hf runner).

    Raises:
        FixedLengthError: the target is impossible, or no exact prompt was found (the message says which).
    """
    plan = _plan(tokenizer, prompt_tokens, count, chat, add_special_tokens)
    rng = random.Random(rng_seed(seed, prompt_tokens))
    taken: set[tuple[int, ...]] = set()
    prompts = []
    for index in range(count):
        prompt = _build_one(plan, f"fixed-{index:04d}", rng, taken)
        taken.add(tuple(prompt.token_ids or ()))
        prompts.append(prompt)
    sha = hashlib.sha256("\n".join(p.text for p in prompts).encode()).hexdigest()
    return PromptSet(prompts=tuple(prompts), source=_source(prompt_tokens, seed, chat, add_special_tokens), sha256=sha)
