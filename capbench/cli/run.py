"""``capbench run [CONFIG.yaml] [--out DIR] [overrides]``: run a benchmark and write a run directory.

Every run setting is also a flag (``num_requests`` -> ``--num-requests``); flags override the YAML file. With no
config, the embedded default runs: the demo MoE on this machine, with its accuracy task.

``--concurrency`` and ``--request-rate`` take a comma-separated list to sweep: a thin front for ``capbench sweep``
(one ``capbench run`` process per value, ``<out>/points/<id>/attempt-<n>``, ``<out>/results.csv``, resumable with
``capbench sweep <out>/sweep.yaml --out <out> --resume``).
"""

from __future__ import annotations

import argparse
import sys
import typing
from pathlib import Path
from typing import Any

from capbench.cli.text import HARDWARE_OVERRIDE_HELP, plain, with_default
from capbench.config import RunSpec

# Fields given on the command line in a form other than --field VALUE.
_KEY_VALUE_FIELDS = {"hardware_overrides": "--hardware-override", "slo": "--slo", "engine_args": "--engine-arg"}
SWEEPABLE = ("concurrency", "request_rate")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a benchmark (no config: the embedded demo MoE on CPU)",
        description=plain(__doc__ or ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", nargs="?", type=Path, help="YAML run config (optional)")
    add_run_settings(parser)
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors and the run directory")
    parser.set_defaults(handler=handle)


def add_run_settings(parser: argparse.ArgumentParser, exclude: tuple[str, ...] = ()) -> None:
    """Every run setting as a flag (``capbench run`` and the commands that run runs: ``capacity``), but those in
    ``exclude`` (a command that gives the name another meaning)."""
    group = parser.add_argument_group("run settings (also YAML keys; flags win)")
    for name, field in RunSpec.model_fields.items():
        if name in _KEY_VALUE_FIELDS or name in exclude:
            continue
        help_text = with_default(field.description or "", field.default)
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
        "--set",
        dest="hardware_overrides",
        action="append",
        default=None,
        metavar="KEY=VALUE",
        help=HARDWARE_OVERRIDE_HELP,
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


def run_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The run settings the command line gave (None where not given), parsed as ``build_run_spec`` takes them."""
    from capbench.runners.vllm.engine_args import parse_engine_args

    overrides: dict[str, Any] = {name: getattr(args, name) for name in RunSpec.model_fields if hasattr(args, name)}
    overrides["hardware_overrides"] = parse_key_values(args.hardware_overrides, "--hardware-override")
    overrides["slo"] = parse_key_values(args.slo, "--slo")
    overrides["engine_args"] = parse_engine_args(args.engine_args)
    if isinstance(overrides.get("gpus"), str):
        overrides["gpus"] = [g.strip() for g in overrides["gpus"].split(",") if g.strip()]
    return overrides


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


def swept_values(overrides: dict[str, Any]) -> tuple[str, list[str]] | None:
    """``(setting, values)`` when ``--concurrency`` or ``--request-rate`` lists several comma-separated values,
    else None (a single run)."""
    from capbench.errors import ConfigError

    swept = [k for k in SWEEPABLE if isinstance(overrides.get(k), str) and "," in overrides[k]]
    if not swept:
        return None
    if len(swept) > 1:
        raise ConfigError("sweep either --concurrency or --request-rate in one command, not both")
    key = swept[0]
    values = [v.strip() for v in overrides[key].split(",") if v.strip()]
    if len(set(values)) != len(values):
        raise ConfigError(f"--{key.replace('_', '-')} lists a value twice: {overrides[key]}")
    return key, values


def sweep_file(config: Path | None, overrides: dict[str, Any], key: str, values: list[str]) -> dict[str, Any]:
    """The sweep file a swept ``capbench run`` stands for: the run's settings as the base, one axis."""
    base = {k: v for k, v in overrides.items() if v is not None and k not in (key, "out")}
    out: dict[str, Any] = {"name": f"run-{key.replace('_', '-')}", "base": base, "axes": {key: values}}
    if config is not None:
        out["base_config"] = str(config.resolve())
    return out


def _run_sweep(args: argparse.Namespace, overrides: dict[str, Any], key: str, values: list[str]) -> int:
    """``capbench run --concurrency 1,4,16``: the same grid through the sweep engine (docs/sweep.md)."""
    import tempfile

    import yaml
    from rich.console import Console

    from capbench.sweep.local import SweepOptions, run_sweep

    out = Path(overrides["out"]) if overrides.get("out") else Path("runs") / f"sweep-{key.replace('_', '-')}"
    with tempfile.TemporaryDirectory(prefix="capbench-run-sweep-") as tmp:
        path = Path(tmp) / "sweep.yaml"
        path.write_text(yaml.safe_dump(sweep_file(args.config, overrides, key, values), sort_keys=False))
        console = Console(stderr=True, quiet=args.quiet)
        return run_sweep(SweepOptions(sweep_file=path, out=out), console)


def handle(args: argparse.Namespace) -> int:
    from capbench.config import build_run_spec
    from capbench.records import RunStatus, read_manifest
    from capbench.run.execute import execute_run

    overrides = run_overrides(args)
    swept = swept_values(overrides)
    if swept is not None:
        return _run_sweep(args, overrides, *swept)
    spec = build_run_spec(args.config, overrides)
    if spec.repeats > 1:
        return _run_repeats(spec, args.quiet)
    run_dir, status = execute_run(spec, quiet=args.quiet)
    print(run_dir)
    if status != RunStatus.COMPLETE:
        error = read_manifest(run_dir).get("error")
        print(f"capbench run: error: {run_dir} is {status.value}: {error}", file=sys.stderr)
        return 1
    return 0


def _run_repeats(spec: RunSpec, quiet: bool) -> int:
    """``--repeats N``: N run directories and the repeats' summary (docs/summary.md, "Repeats")."""
    from capbench.records import RunStatus
    from capbench.run.repeats import run_repeats

    out, statuses, summary = run_repeats(spec, quiet=quiet)
    print(out)
    failed = [i + 1 for i, status in enumerate(statuses) if status != RunStatus.COMPLETE]
    if failed or summary is None:
        print(f"capbench run: error: repeats {failed} of {out} did not complete", file=sys.stderr)
        return 1
    return 0
