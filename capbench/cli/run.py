"""``capbench run [CONFIG.yaml] [--out DIR] [overrides]``: run a benchmark and write a run directory.

Every :class:`~capbench.config.RunSpec` field is also a flag (``num_requests`` -> ``--num-requests``); flags
override the YAML file. With no config, the embedded default runs: the tiny MoE on this machine.
"""

from __future__ import annotations

import argparse
import typing
from pathlib import Path
from typing import Any

from capbench.config import RunSpec

# Fields given on the command line in a form other than --field VALUE.
_SPECIAL = {"hardware_overrides"}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _is_bool(annotation: Any) -> bool:
    return annotation is bool


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a benchmark (no config: the embedded tiny MoE on CPU)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", nargs="?", type=Path, help="YAML run config (optional)")
    group = parser.add_argument_group("run settings (also YAML keys; flags win)")
    for name, field in RunSpec.model_fields.items():
        if name in _SPECIAL:
            continue
        default = field.default
        help_text = f"{field.description} (default: {default!r})"
        if _is_bool(field.annotation):
            group.add_argument(
                _flag(name), dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
            continue
        choices = typing.get_args(field.annotation) if typing.get_origin(field.annotation) is typing.Literal else None
        group.add_argument(_flag(name), dest=name, default=None, metavar=name.upper(), choices=choices, help=help_text)
    group.add_argument(
        "--hardware-override",
        dest="hardware_overrides",
        action="append",
        default=None,
        metavar="KEY=VALUE",
        help="override a hardware-profile figure, e.g. memory_bandwidth_bytes_per_s=3.0e12 (repeatable)",
    )
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors and the run directory")
    parser.set_defaults(handler=handle)


def _parse_key_values(items: list[str] | None) -> dict[str, str] | None:
    if items is None:
        return None
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            from capbench.errors import ConfigError

            raise ConfigError(f"--hardware-override expects KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def handle(args: argparse.Namespace) -> int:
    from capbench.config import build_run_spec
    from capbench.launch import execute_run
    from capbench.records import RunStatus

    overrides = {name: getattr(args, name) for name in RunSpec.model_fields if name not in _SPECIAL}
    overrides["hardware_overrides"] = _parse_key_values(args.hardware_overrides)
    spec = build_run_spec(args.config, overrides)
    run_dir, status = execute_run(spec, quiet=args.quiet)
    print(run_dir)
    return 0 if status == RunStatus.COMPLETE else 1
