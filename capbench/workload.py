"""Prompts and the requests a run sends.

A prompt file is JSONL, one object per line with a ``prompt`` string and an optional ``id``. Requests cycle
through the prompts in an order shuffled by the run's seed; warm-up requests come first, are marked
``warmup=True`` and get ids ``w0000...``, measured ones ``r0000...`` (metrics exclude warm-up by this flag).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from capbench.errors import CapbenchError


@dataclass(frozen=True)
class Prompt:
    id: str
    text: str


@dataclass(frozen=True)
class Request:
    """One request of a run."""

    id: str
    prompt: Prompt
    warmup: bool


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
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise CapbenchError(f"cannot read prompt file {path}: {exc.strerror or exc}") from exc
    sha = hashlib.sha256(text.encode()).hexdigest()
    return PromptSet(prompts=_parse_prompts(text, source), source=source, sha256=sha)


def build_requests(prompts: PromptSet, num_requests: int, warmup: int, seed: int) -> list[Request]:
    """``warmup`` warm-up requests then ``num_requests`` measured ones, cycling a seeded shuffle."""
    order = list(prompts.prompts)
    random.Random(seed).shuffle(order)
    requests = [Request(id=f"w{i:04d}", prompt=order[i % len(order)], warmup=True) for i in range(warmup)]
    requests += [
        Request(id=f"r{i:04d}", prompt=order[(warmup + i) % len(order)], warmup=False) for i in range(num_requests)
    ]
    return requests
