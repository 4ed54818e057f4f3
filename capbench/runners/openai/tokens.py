"""Token counts for a server run: the server's ``usage``, else the served model's tokenizer, else unknown.

The tokenizer (from ``model_path``) is loaded before the load starts, never on the load generator's event
loop. Fallback counts: prompt = tokens of the prompt after the chat template (``api: chat``) or with the
tokenizer's special tokens (``api: completions``); output = tokens of the generated text (reasoning text
included) plus 1 when the request stopped on its own (``finish_reason: stop``: the end-of-sequence token is
an output token the text does not show; a stop *string* would make this 1 too many). A tokenizer with an
empty vocabulary (a directory without tokenizer files) counts nothing: unknown, never 0.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SOURCES = ("server_usage", "tokenizer_fallback", "unavailable")


def load_tokenizer(model_path: str | None) -> tuple[Any, str | None]:
    """``(tokenizer, None)``, or ``(None, why not)`` when ``model_path`` gives none."""
    if model_path is None:
        return None, "no model_path given"
    try:
        from transformers import AutoTokenizer
    except ImportError:
        return None, "transformers is not installed (pip install 'capbench[hf]')"
    path = Path(model_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path if path.is_dir() else path.parent)
    except (OSError, ValueError) as exc:
        return None, f"no tokenizer loads from {model_path}: {exc}"
    if len(tokenizer) == 0:
        return None, f"{model_path} holds no tokenizer files (empty vocabulary)"
    return tokenizer, None


class TokenCounter:
    """Counts one request's tokens and keeps, over measured requests, where the counts came from."""

    def __init__(self, tokenizer: Any, chat: bool) -> None:
        self.tokenizer = tokenizer
        self.chat = chat
        self.sources: Counter[str] = Counter()

    def _prompt_tokens(self, prompt: str | list[dict[str, str]]) -> int:
        messages = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
        if self.chat and getattr(self.tokenizer, "chat_template", None):
            ids = self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=True, return_dict=False
            )
            if isinstance(ids, dict) or hasattr(ids, "keys"):  # a BatchEncoding despite return_dict=False
                ids = ids["input_ids"]
            return len(ids)
        text = "\n".join(m["content"] for m in messages)
        return len(self.tokenizer(text, add_special_tokens=True)["input_ids"])

    def count(
        self,
        prompt: str | list[dict[str, str]],
        usage: dict[str, Any] | None,
        text: str,
        finish_reason: str | None,
        measured: bool,
    ) -> tuple[int | None, int | None]:
        """``(prompt_tokens, output_tokens)`` of a completed request (module docstring); ``prompt`` is the
        prompt text, or a multi-turn request's chat messages."""
        if usage and usage.get("completion_tokens") is not None:
            source, counts = "server_usage", (usage.get("prompt_tokens"), usage.get("completion_tokens"))
        elif self.tokenizer is None:
            source, counts = "unavailable", (None, None)
        else:
            eos = 1 if finish_reason == "stop" else 0
            output = len(self.tokenizer(text, add_special_tokens=False)["input_ids"]) + eos
            source, counts = "tokenizer_fallback", (self._prompt_tokens(prompt), output)
        if measured:
            self.sources[source] += 1
        return counts

    def summary(self) -> str:
        """``server_usage``, ``tokenizer_fallback``, ``unavailable`` or ``mixed`` over measured requests."""
        used = [source for source in SOURCES if self.sources[source]]
        if not used:
            return "unavailable"
        return used[0] if len(used) == 1 else "mixed"


ABSURD_TOKENS = 2**31
"""No real request has this many tokens: a usage count at or above it is refused even without other bounds."""
SPECIAL_TOKEN_SLACK = 8
"""Output tokens a stream may hold beyond one per byte of its text: end-of-sequence and template tokens that
decode to no text."""


def check_usage(
    usage: Any,
    *,
    max_tokens: int | None,
    text: str,
    stop: Sequence[str] | None,
    prompt: str,
    context_length: int | None,
    prompt_token_ids: int | None = None,
) -> str | None:
    """Why a server's ``usage`` cannot be true for this request, or None (it is believable).

    - ``prompt_tokens`` and ``completion_tokens`` must be integers ≥ 0 (not strings, floats or booleans) and
      below :data:`ABSURD_TOKENS`;
    - ``completion_tokens`` ≤ the request's ``max_tokens`` (the server must honor it);
    - ``completion_tokens`` ≤ UTF-8 bytes of the streamed text + bytes of the longest stop string (cut from the
      text, but generated) + :data:`SPECIAL_TOKEN_SLACK`: every token that is not a special token decodes to at
      least one byte, so more tokens than that were not streamed;
    - ``prompt_tokens`` + ``completion_tokens`` ≤ the model's context length when known; without one,
      ``prompt_tokens`` ≤ UTF-8 bytes of the prompt + 4,096 (a chat template's own tokens), or for a prompt sent
      as ``prompt_token_ids`` ids, that count + 4,096.
    """
    if not isinstance(usage, dict):
        return f"the server's usage is not an object: {usage!r}"[:200]
    counts: dict[str, int] = {}
    for field in ("prompt_tokens", "completion_tokens"):
        value = usage.get(field)
        if value is None and field == "prompt_tokens":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value >= ABSURD_TOKENS:
            return f"the server reported {field} = {value!r}, which is not a possible token count"
        counts[field] = value
    output = counts["completion_tokens"]
    if max_tokens is not None and output > max_tokens:
        return f"the server reported {output} output tokens for a request limited to max_tokens = {max_tokens}"
    streamed = len(text.encode("utf-8")) + max((len(s.encode("utf-8")) for s in stop or ()), default=0)
    if output > streamed + SPECIAL_TOKEN_SLACK:
        return (
            f"the server reported {output} output tokens but streamed only {len(text.encode('utf-8'))} bytes of text "
            "(a token is at least one byte): usage and stream disagree"
        )
    prompt_tokens = counts.get("prompt_tokens")
    if prompt_tokens is not None:
        if context_length is not None and prompt_tokens + output > context_length:
            return (
                f"the server reported {prompt_tokens} prompt + {output} output tokens, more than the model's "
                f"context of {context_length} tokens"
            )
        if prompt_token_ids is not None:
            if context_length is None and prompt_tokens > prompt_token_ids + 4096:
                return f"the server reported {prompt_tokens} prompt tokens for a prompt of {prompt_token_ids} token ids"
        elif context_length is None and prompt_tokens > len(prompt.encode("utf-8")) + 4096:
            return f"the server reported {prompt_tokens} prompt tokens for a prompt of {len(prompt)} characters"
    return None
