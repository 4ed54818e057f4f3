"""``capbench run [CONFIG.yaml] [--out DIR] [overrides]``: run a benchmark and write a run directory.

Every :class:`~capbench.config.RunSpec` field is also a flag (``num_requests`` -> ``--num-requests``); flags
override the YAML file. With no config, the embedded default runs: the tiny MoE on this machine.

``--concurrency`` and ``--request-rate`` take a comma-separated list to sweep: one run directory per value,
``<out>/concurrency-<N>`` (or ``request_rate-<R>``).
"""

from __future__ import annotations

import argparse
import sys
import typing
from pathlib import Path
from typing import Any

from capbench.config import RunSpec

# Fields given on the command line in a form other than --field VALUE.
_KEY_VALUE_FIELDS = {"hardware_overrides": "--hardware-override", "slo": "--slo", "engine_args": "--engine-arg"}
SWEEPABLE = ("concurrency", "request_rate")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


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
        if name in _KEY_VALUE_FIELDS:
            continue
        help_text = f"{field.description} (default: {field.default!r})"
        if field.annotation is bool:
            group.add_argument(
                _flag(name), dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
            continue
        literal = typing.get_origin(field.annotation) is typing.Literal
        choices = typing.get_args(field.annotation) if literal else None
        if name in SWEEPABLE:
            help_text += "; a comma-separated list runs one point per value"
        if name == "gpus":
            help_text += "; comma-separated, e.g. 0,1"
        group.add_argument(_flag(name), dest=name, default=None, metavar=name.upper(), choices=choices, help=help_text)
    group.add_argument(
        "--hardware-override",
        dest="hardware_overrides",
        action="append",
        default=None,
        metavar="KEY=VALUE",
        help="override a hardware-profile figure, e.g. memory_bandwidth_bytes_per_s=3.0e12 (repeatable)",
    )
    group.add_argument(
        "--slo",
        dest="slo",
        action="append",
        default=None,
        metavar="KEY=SECONDS[,KEY=SECONDS]",
        help="goodput bounds, e.g. ttft_s=0.5,tpot_s=0.05 (keys: ttft_s, tpot_s, itl_s, e2e_latency_s)",
    )
    group.add_argument(
        "--engine-arg",
        dest="engine_args",
        action="append",
        default=None,
        metavar="KEY=VALUE",
        help="vllm: an engine argument passed through unchanged, e.g. max_num_seqs=8 or "
        "enable-prefix-caching=false (repeatable; added to a config file's engine_args)",
    )
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors and the run directory")
    parser.set_defaults(handler=handle)


def parse_key_values(items: list[str] | None, flag: str) -> dict[str, str] | None:
    """``["a=1,b=2", "c=3"]`` -> ``{"a": "1", "b": "2", "c": "3"}``; None when the flag was not given."""
    if items is None:
        return None
    from capbench.errors import ConfigError

    out: dict[str, str] = {}
    for item in items:
        for part in item.split(","):
            key, sep, value = part.partition("=")
            if not sep or not key.strip():
                raise ConfigError(f"{flag} expects KEY=VALUE, got {part!r}")
            out[key.strip()] = value.strip()
    return out


def sweep_points(overrides: dict[str, Any]) -> list[tuple[str | None, dict[str, Any]]]:
    """Expand a comma-separated ``concurrency`` or ``request_rate`` into one override set per value.

    Returns ``[(label, overrides)]``; the label (e.g. ``concurrency-16``) names the point's run directory,
    None when nothing is swept.
    """
    from capbench.errors import ConfigError

    swept = [k for k in SWEEPABLE if isinstance(overrides.get(k), str) and "," in overrides[k]]
    if not swept:
        return [(None, overrides)]
    if len(swept) > 1:
        raise ConfigError("sweep either --concurrency or --request-rate in one command, not both")
    key = swept[0]
    values = [v.strip() for v in overrides[key].split(",") if v.strip()]
    if len(set(values)) != len(values):
        raise ConfigError(f"--{key.replace('_', '-')} lists a value twice: {overrides[key]}")
    return [(f"{key}-{value}", {**overrides, key: value}) for value in values]


def handle(args: argparse.Namespace) -> int:
    from capbench.config import build_run_spec
    from capbench.records import RunStatus, read_manifest
    from capbench.run.execute import execute_run
    from capbench.runners.vllm.engine_args import parse_engine_args

    overrides: dict[str, Any] = {name: getattr(args, name) for name in RunSpec.model_fields if hasattr(args, name)}
    overrides["hardware_overrides"] = parse_key_values(args.hardware_overrides, "--hardware-override")
    overrides["slo"] = parse_key_values(args.slo, "--slo")
    overrides["engine_args"] = parse_engine_args(args.engine_args)
    if isinstance(overrides.get("gpus"), str):
        overrides["gpus"] = [g.strip() for g in overrides["gpus"].split(",") if g.strip()]
    points = sweep_points(overrides)
    specs = []
    for label, point in points:  # validate every point before running any
        spec = build_run_spec(args.config, point)
        if label is not None:
            base = Path(spec.out) if spec.out else Path("runs") / "sweep"
            spec = spec.model_copy(update={"out": str(base / label)})
        specs.append(spec)
    worst = 0
    for spec in specs:
        run_dir, status = execute_run(spec, quiet=args.quiet)
        print(run_dir)
        if status != RunStatus.COMPLETE:
            error = read_manifest(run_dir).get("error")
            print(f"capbench run: error: {run_dir} is {status.value}: {error}", file=sys.stderr)
        worst = max(worst, 0 if status == RunStatus.COMPLETE else 1)
    return worst
