"""A local model directory checked before anything loads it: a readable config, a tokenizer, weights.

Loading a model is slow and its libraries fail with long tracebacks; these checks take milliseconds and give
one message naming the directory and what is missing, so a typo or a half-copied model fails at once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from capbench.errors import CapbenchError

TOKENIZER_FILES: tuple[str, ...] = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")
WEIGHT_PATTERNS: tuple[str, ...] = ("*.safetensors", "pytorch_model*.bin", "model*.bin", "*.pt", "*.gguf")


def read_config(model_dir: Path) -> dict[str, Any]:
    """``model_dir/config.json`` as an object with a ``model_type``; a clear error otherwise."""
    path = model_dir / "config.json"
    if not path.is_file():
        raise CapbenchError(f"model directory {model_dir} has no config.json")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CapbenchError(f"{path} is not readable JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise CapbenchError(f"{path} must hold a JSON object, got {type(config).__name__}")
    if not isinstance(config.get("model_type"), str):
        raise CapbenchError(f"{path} has no 'model_type': it is not a Hugging Face model config")
    return config


def check_model_dir(model_dir: Path, *, weights: bool = True, tokenizer: bool = True) -> dict[str, Any]:
    """Check a model directory (module docstring) and return its config."""
    if not model_dir.is_dir():
        raise CapbenchError(f"model directory {model_dir} does not exist or is not a directory")
    config = read_config(model_dir)
    if tokenizer and not any((model_dir / name).is_file() for name in TOKENIZER_FILES):
        raise CapbenchError(
            f"model directory {model_dir} has no tokenizer (none of {', '.join(TOKENIZER_FILES)}); copy the "
            "tokenizer files next to config.json"
        )
    if weights and not any(next(model_dir.glob(pattern), None) for pattern in WEIGHT_PATTERNS):
        raise CapbenchError(
            f"model directory {model_dir} has no weights (no {', '.join(WEIGHT_PATTERNS)} file); capbench never "
            "downloads weights"
        )
    return config
