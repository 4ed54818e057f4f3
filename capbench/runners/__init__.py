"""Serving backends. A registry maps runner names to lazily imported classes.

Importing this package is cheap: a runner's module (and torch, transformers, an HTTP client...) is imported
only by :func:`load_runner_class`. An unknown name lists the valid ones; a missing optional dependency says
which ``pip install 'capbench[...]'`` provides it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from capbench.errors import CapbenchError, MissingDependencyError
from capbench.runners.hf.config import HFConfig
from capbench.runners.openai.config import OpenAIConfig
from capbench.runners.traits import HFTraits, OpenAITraits, RunnerTraits, VLLMTraits
from capbench.runners.vllm.config import VLLMConfig


@dataclass(frozen=True)
class RunnerEntry:
    """Where a runner lives, what it needs, and its traits (what the rest of capbench asks about it)."""

    module: str
    cls: str
    extra: str
    requires: tuple[str, ...]
    summary: str
    traits: RunnerTraits
    config: Any
    """The runner's light settings class: ``config.from_spec(run_spec)`` is what its constructor takes."""


REGISTRY: dict[str, RunnerEntry] = {
    "hf": RunnerEntry(
        module="capbench.runners.hf.runner",
        cls="HFRunner",
        extra="hf",
        requires=("torch", "transformers"),
        summary="in-process Hugging Face transformers (the embedded default)",
        traits=HFTraits(),
        config=HFConfig,
    ),
    "openai": RunnerEntry(
        module="capbench.runners.openai.runner",
        cls="OpenAIRunner",
        extra="base",
        requires=(),
        summary="any OpenAI-compatible server over HTTP (vLLM, SGLang, TGI, ...)",
        traits=OpenAITraits(),
        config=OpenAIConfig,
    ),
    "vllm": RunnerEntry(
        module="capbench.runners.vllm.runner",
        cls="VLLMRunner",
        extra="vllm",
        requires=(),
        summary="a vLLM server capbench launches (engine steps and expert routing recorded) or attaches to",
        traits=VLLMTraits(),
        config=VLLMConfig,
    ),
}


RUNNER_NAMES: tuple[str, ...] = tuple(REGISTRY)
"""Every runner's name, in the registry's order (the one list: the config validates against it)."""


def runner_config(name: str, spec: Any) -> Any:
    """The settings runner ``name`` reads, taken from a run spec (its light config class)."""
    return _entry(name).config.from_spec(spec)


def _entry(name: str) -> RunnerEntry:
    entry = REGISTRY.get(name)
    if entry is None:
        raise CapbenchError(f"unknown runner {name!r}; valid runners: {', '.join(REGISTRY)}")
    return entry


def runner_traits(name: str) -> RunnerTraits:
    """The traits of runner ``name`` (:mod:`.traits`); an unknown name lists the valid ones."""
    return _entry(name).traits


def load_runner_class(name: str) -> Any:
    """Import and return the runner class registered as ``name``."""
    entry = REGISTRY.get(name)
    if entry is None:
        raise CapbenchError(f"unknown runner {name!r}; valid runners: {', '.join(REGISTRY)}")
    for module in entry.requires:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise MissingDependencyError(module, entry.extra, f"the '{name}' runner") from exc
    return getattr(importlib.import_module(entry.module), entry.cls)
