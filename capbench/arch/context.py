"""A model's context length, and whether a request fits in it.

The context length C (tokens) is what the serving engine allows for prompt + output together. From a config:
``max_position_embeddings`` (also ``max_sequence_length``, ``seq_length``, ``n_positions``, ``max_seq_len`` for
families that name it so; a nested ``text_config`` for multimodal configs). A server may state its own
(vLLM: ``max_model_len``), which wins because it is what the engine enforces.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CONTEXT_KEYS: tuple[str, ...] = (
    "max_position_embeddings",
    "max_sequence_length",
    "seq_length",
    "n_positions",
    "max_seq_len",
)


def config_context_length(config: Mapping[str, Any] | None) -> int | None:
    """C from a Hugging Face config (module docstring), or None when it names none."""
    if not config:
        return None
    for key in CONTEXT_KEYS:
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    nested = config.get("text_config")
    return config_context_length(nested) if isinstance(nested, Mapping) else None


def context_problem(prompt_tokens: int, max_tokens: int, context_length: int | None) -> str | None:
    """Why a request of ``prompt_tokens`` + up to ``max_tokens`` output tokens cannot run in C tokens, or None."""
    if context_length is None or prompt_tokens + max_tokens <= context_length:
        return None
    return (
        f"{prompt_tokens} prompt tokens + max_tokens {max_tokens} exceed the model's context of {context_length} tokens"
    )
