"""vLLM engine arguments: from a mapping (YAML ``engine_args`` or ``--engine-arg KEY=VALUE``) to CLI flags.

Keys are vLLM's own argument names, with ``_`` or ``-`` (``max_num_seqs`` = ``max-num-seqs``); values are
passed through unchanged: ``True`` -> ``--flag``, ``False`` -> ``--no-flag``, a list -> the flag followed by
each item, a mapping -> its JSON (e.g. ``compilation_config``), anything else -> ``--flag VALUE``.
Values from the command line are read as YAML scalars, so ``true``, ``16`` and ``{"mode": 0}`` get their type.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml

from capbench.errors import ConfigError

MANAGED_KEYS: dict[str, str] = {
    "model": "give it as model (--model)",
    "host": "capbench serves on 127.0.0.1",
    "port": "capbench picks a free port",
    "enforce_eager": "use enforce_eager (--enforce-eager)",
    "dtype": "use dtype (--dtype)",
}
"""Engine arguments capbench sets itself; giving them as engine arguments is an error that says what to use."""


def normalize_key(key: str) -> str:
    return key.strip().lstrip("-").replace("-", "_")


def parse_engine_arg(item: str) -> tuple[str, Any]:
    """``"max-num-seqs=8"`` -> ``("max_num_seqs", 8)``; the value is read as a YAML scalar."""
    key, sep, value = item.partition("=")
    if not sep or not normalize_key(key):
        raise ConfigError(f"--engine-arg expects KEY=VALUE (e.g. max_num_seqs=8), got {item!r}")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    return normalize_key(key), parsed


def parse_engine_args(items: list[str] | None) -> dict[str, Any] | None:
    """Repeated ``--engine-arg`` values as a mapping (None when the flag was not given)."""
    if items is None:
        return None
    return dict(parse_engine_arg(item) for item in items)


def check_engine_args(args: Mapping[str, Any]) -> dict[str, Any]:
    """Normalized keys; an error for the arguments capbench manages itself."""
    out: dict[str, Any] = {}
    for key, value in args.items():
        name = normalize_key(str(key))
        if name in MANAGED_KEYS:
            raise ConfigError(f"engine argument {name!r} is set by capbench: {MANAGED_KEYS[name]}")
        out[name] = value
    return out


def to_cli_args(args: Mapping[str, Any]) -> list[str]:
    """The ``vllm serve`` command-line flags for ``args`` (see the module docstring)."""
    argv: list[str] = []
    for key, value in args.items():
        flag = "--" + normalize_key(key).replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is False:
            argv.append("--no-" + flag[2:])
        elif value is None:
            continue
        elif isinstance(value, list | tuple):
            argv += [flag, *(str(v) for v in value)]
        elif isinstance(value, Mapping):
            argv += [flag, json.dumps(value)]
        else:
            argv += [flag, str(value)]
    return argv
