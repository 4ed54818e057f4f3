"""Requests made of token ids: the ``random`` and ``prefix`` datasets and trace replay.

Prompts are built from token ids, not text, so the model sees exactly the tokens the workload chose: the
``openai``/``vllm`` runners send them as a list of ids to ``/v1/completions`` (which adds no special tokens to an
id prompt), the ``hf`` runner feeds them to the model. Ids are drawn from the tokenizer's safe pool
(:func:`capbench.workload.fixed_length.safe_pool`: printable, not special, each id its own round trip).

Every draw is seeded by the run's seed and a name, never by a shared stream, so each request is built on its own
(lazily, in any order) and identically on every run (lengths: ``random.Random(name)``; ids:
:meth:`TokenPool.draw`):

- ``random``: request ``i``'s prompt and output lengths come from ``"<seed>:random:<i>:lengths"``, its ids
  from ``"<seed>:random:<i>"``;
- ``prefix``: ``groups`` prefixes of ``prefix_tokens`` ids (``"<seed>:prefix:<g>"``); request ``i`` takes
  group ``i mod groups`` and adds ``suffix_tokens`` ids of its own (``"<seed>:random-suffix:<i>"``);
- a trace: each Mooncake block id ``b`` is the same :data:`~capbench.workload.traces.MOONCAKE_BLOCK_TOKENS` ids
  wherever it appears (``"<seed>:block:<b>"``), a prompt is its blocks concatenated and cut to its
  ``input_length``, so two requests that share a block id share exactly those tokens; a BurstGPT entry (no
  block ids) gets ids of its own (``"<seed>:entry:<line>"``).

Warm-up requests are drawn under the name ``warmup`` instead (same lengths as the first measured ones, tokens of
their own), so they never put a measured request's prefix into the server's cache.
"""

from __future__ import annotations

import hashlib
import random
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from capbench.errors import ConfigError
from capbench.workload.lengths import LengthSpec
from capbench.workload.prompts import Prompt, Request, Workload
from capbench.workload.traces import MOONCAKE_BLOCK_TOKENS, Trace, TraceEntry

_BLOCK_CACHE_SIZE = 4096
MEASURED = "random"
"""The draw name of measured requests (warm-up ones use ``warmup``)."""


@dataclass(frozen=True)
class TokenPool:
    """The ids prompts are drawn from (at least 16)."""

    ids: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.ids) < 16:
            raise ConfigError(f"the tokenizer has only {len(self.ids)} ids that are safe to send as a prompt")
        object.__setattr__(self, "_array", np.asarray(self.ids, dtype=np.int64))

    @classmethod
    def from_tokenizer(cls, tokenizer: Any) -> TokenPool:
        from capbench.workload.fixed_length import safe_pool

        return cls(safe_pool(tokenizer))

    def draw(self, name: str, count: int) -> list[int]:
        """``count`` ids drawn uniformly (with replacement) by a generator seeded with ``name``: numpy's PCG64
        seeded with the first 8 bytes of BLAKE2b(name), about 30 times faster than ``random.choices``."""
        seed = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")
        picks = np.random.default_rng(seed).integers(0, len(self.ids), size=count)
        ids: list[int] = self._array[picks].tolist()  # type: ignore[attr-defined]
        return ids


def _request(rid: str, warmup: bool, ids: list[int], output_tokens: int | None) -> Request:
    prompt = Prompt(id=rid, text="", token_ids=tuple(ids), as_token_ids=True)
    return Request(id=rid, prompt=prompt, warmup=warmup, max_tokens=output_tokens)


def _indices(count: int | None) -> Iterator[int]:
    i = 0
    while count is None or i < count:
        yield i
        i += 1


@dataclass(frozen=True)
class RandomLengths:
    """The ``random`` dataset: prompt and output lengths from two distributions."""

    prompt: LengthSpec
    output: LengthSpec

    def lengths(self, seed: int, name: str, i: int) -> tuple[int, int]:
        rng = random.Random(f"{seed}:{name}:{i}:lengths")
        return self.prompt.draw(rng), self.output.draw(rng)

    def request(self, pool: TokenPool, seed: int, name: str, i: int, rid: str, warmup: bool, outputs: bool) -> Request:
        prompt_tokens, output_tokens = self.lengths(seed, name, i)
        ids = pool.draw(f"{seed}:{name}:{i}", prompt_tokens)
        return _request(rid, warmup, ids, output_tokens if outputs else None)

    def describe(self) -> dict[str, Any]:
        return {"prompt_tokens": self.prompt.describe(), "output_tokens": self.output.describe()}


@dataclass(frozen=True)
class SharedPrefixes:
    """The ``prefix`` dataset: ``groups`` shared prefixes of ``prefix_tokens``, each request adding
    ``suffix_tokens`` of its own; output lengths from ``output``."""

    groups: int
    prefix_tokens: int
    suffix_tokens: int
    output: LengthSpec

    def __post_init__(self) -> None:
        for name in ("groups", "prefix_tokens", "suffix_tokens"):
            if getattr(self, name) < 1:
                raise ConfigError(f"prefix dataset: {name} must be >= 1, got {getattr(self, name)!r}")

    def lengths(self, seed: int, name: str, i: int) -> tuple[int, int]:
        return self.prefix_tokens + self.suffix_tokens, self.output.draw(random.Random(f"{seed}:{name}:{i}:lengths"))

    def request(self, pool: TokenPool, seed: int, name: str, i: int, rid: str, warmup: bool, outputs: bool) -> Request:
        group = i % self.groups
        prefix = pool.draw(f"{seed}:{'warmup-' if warmup else ''}prefix:{group}", self.prefix_tokens)
        suffix = pool.draw(f"{seed}:{name}-suffix:{i}", self.suffix_tokens)
        _, output = self.lengths(seed, name, i)
        return _request(rid, warmup, prefix + suffix, output if outputs else None)

    def describe(self) -> dict[str, Any]:
        return {
            "groups": self.groups,
            "prefix_tokens": self.prefix_tokens,
            "suffix_tokens": self.suffix_tokens,
            "output_tokens": self.output.describe(),
        }


def synthetic_workload(
    shape: RandomLengths | SharedPrefixes,
    pool: TokenPool,
    *,
    num_requests: int | None,
    duration_s: float | None,
    warmup: int,
    seed: int,
    dataset_output_lengths: bool,
) -> Workload:
    """Warm-up then measured requests of ``shape``, built lazily (endless in duration mode)."""
    warm = [shape.request(pool, seed, "warmup", i, f"w{i:04d}", True, dataset_output_lengths) for i in range(warmup)]
    measured = (
        shape.request(pool, seed, MEASURED, i, f"r{i:04d}", False, dataset_output_lengths)
        for i in _indices(num_requests)
    )
    return Workload(warm, measured, num_requests, duration_s)


class TraceBuilder:
    """Token-id prompts for a trace's entries (module docstring); shared blocks are cached (LRU)."""

    def __init__(self, trace: Trace, pool: TokenPool, seed: int) -> None:
        self.trace, self.pool, self.seed = trace, pool, seed
        self._blocks: OrderedDict[int, list[int]] = OrderedDict()

    def _block(self, block_id: int) -> list[int]:
        ids = self._blocks.get(block_id)
        if ids is None:
            ids = self.pool.draw(f"{self.seed}:block:{block_id}", MOONCAKE_BLOCK_TOKENS)
            self._blocks[block_id] = ids
            if len(self._blocks) > _BLOCK_CACHE_SIZE:
                self._blocks.popitem(last=False)
        else:
            self._blocks.move_to_end(block_id)
        return ids

    def prompt_ids(self, entry: TraceEntry) -> list[int]:
        """The entry's prompt: its blocks cut to ``prompt_tokens``, or ids of its own without blocks."""
        if not entry.block_ids:
            return self.pool.draw(f"{self.seed}:entry:{entry.line}", entry.prompt_tokens)
        ids: list[int] = []
        for block_id in entry.block_ids:
            ids.extend(self._block(block_id))
        return ids[: entry.prompt_tokens]

    def workload(self, *, num_requests: int | None, warmup: int, replay_speed: float, outputs: bool) -> Workload:
        entries: Sequence[TraceEntry] = self.trace.entries
        count = len(entries) if num_requests is None else min(num_requests, len(entries))
        offsets = self.trace.offsets_ns(replay_speed, count)
        warm = [
            _request(
                f"w{i:04d}",
                True,
                self.pool.draw(f"{self.seed}:warmup:{i}", entries[i % count].prompt_tokens),
                entries[i % count].output_tokens if outputs else None,
            )
            for i in range(warmup)
        ]
        measured = (
            _request(f"r{i:04d}", False, self.prompt_ids(entries[i]), entries[i].output_tokens if outputs else None)
            for i in range(count)
        )
        return Workload(warm, measured, count, None, offsets)
