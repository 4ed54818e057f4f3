"""``capbench profiles``: list, show, probe and match hardware profiles.

Human output is a rich table in TFLOP/s, TB/s and GiB; ``--json`` prints SI base units at full precision.
torch is imported only by ``probe`` (inside :mod:`capbench.hardware.probe`).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from capbench.cli.text import HARDWARE_OVERRIDE_HELP
from capbench.errors import CapbenchError

if TYPE_CHECKING:
    from capbench.hardware import HardwareProfile


def register(subparsers: Any) -> None:
    """Add ``profiles`` and its sub-commands to the top-level ``subparsers``."""
    parser = subparsers.add_parser(
        "profiles",
        help="list, show, probe and match hardware profiles",
        description="Hardware profiles: peak memory bandwidth and dense peak FLOP/s per dtype (docs/hardware.md).",
    )
    commands = parser.add_subparsers(dest="profiles_command", metavar="ACTION", required=True)

    ls = commands.add_parser("list", help="list the shipped profiles", description="List the shipped profiles.")
    ls.add_argument("--json", action="store_true", help="print JSON (SI units, full precision)")
    ls.set_defaults(handler=_list)

    show = commands.add_parser(
        "show", help="show one profile", description="Show one profile: a shipped id or a YAML file."
    )
    show.add_argument("profile", metavar="ID_OR_FILE", help="shipped profile id or path to a YAML profile file")
    show.add_argument("--json", action="store_true", help="print JSON (SI units, full precision)")
    show.add_argument(
        "--hardware-override",
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=HARDWARE_OVERRIDE_HELP,
    )
    show.set_defaults(handler=_show)

    probe = commands.add_parser(
        "probe",
        help="measure this machine's memory bandwidth and matmul FLOP/s",
        description="Measure achievable memory bandwidth and matmul FLOP/s (needs torch); caches the result.",
    )
    probe.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="device to measure (default cpu)")
    probe.add_argument("--out", metavar="FILE", help="also write the measured profile to this YAML file")
    probe.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats (~5 s)")
    probe.add_argument("--json", action="store_true", help="print JSON (SI units, full precision)")
    probe.set_defaults(handler=_probe)

    match = commands.add_parser(
        "match",
        help="find the profile for a device name as NVML reports it",
        description="Find the profile whose alias equals NAME (case-insensitive, whitespace-normalized).",
    )
    match.add_argument("name", metavar="NAME", help='device name, e.g. "NVIDIA H100 80GB HBM3"')
    match.add_argument("--json", action="store_true", help="print the matched profile as JSON")
    match.set_defaults(handler=_match)


def _print_json(data: object) -> None:
    print(json.dumps(data, indent=2))


def _tflops(profile: HardwareProfile, key: str) -> str:
    value = profile.peak_flops_per_s.get(key)
    return "—" if value is None else f"{value / 1e12:.4g}"


def _list(args: argparse.Namespace) -> int:
    from capbench.hardware import DTYPE_KEYS, list_profiles

    profiles = list_profiles()
    if args.json:
        _print_json([p.to_dict() for p in profiles])
        return 0
    import shutil

    show_name = shutil.get_terminal_size().columns >= 140  # narrow: the numbers keep their room
    columns = ["id", *(["name"] if show_name else []), "GiB", "TB/s", *DTYPE_KEYS, "TDP"]
    rows = []
    for p in profiles:
        tdp = "—" if p.tdp_w is None else f"{p.tdp_w:g}"
        row = [p.id, *([p.name] if show_name else []), f"{p.memory_bytes / 2**30:g}"]
        rows.append([*row, f"{p.memory_bandwidth_bytes_per_s / 1e12:.3g}", *(_tflops(p, k) for k in DTYPE_KEYS), tdp])
    widths = [max(len(column), *(len(row[i]) for row in rows)) for i, column in enumerate(columns)]
    left = {"id", "name"}

    def line(cells: list[str]) -> str:
        return " ".join(
            c.ljust(w) if col in left else c.rjust(w) for c, w, col in zip(cells, widths, columns, strict=True)
        )

    print("Hardware profiles: memory in GiB, bandwidth in TB/s, dense peaks in TFLOP/s, TDP in W")
    print(line(columns))
    print(" ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))
    return 0


def _render_profile(profile: HardwareProfile) -> None:
    from rich.console import Console
    from rich.table import Table

    from capbench.hardware import overridden_keys

    overridden = set(overridden_keys(profile))
    table = Table(title=f"{profile.id} — {profile.name} (v{profile.version}, measured={profile.measured})")
    for column in ("figure", "value", "source"):
        table.add_column(column, overflow="fold")

    def money(amount: float | None, unit: str) -> str:
        return "unknown" if amount is None else f"{amount:,.4g} {unit}"

    bandwidth_tb_s = profile.memory_bandwidth_bytes_per_s / 1e12
    rows: list[tuple[str, str]] = [
        ("vendor", profile.vendor),
        ("aliases", ", ".join(profile.aliases) or "—"),
        ("memory_bytes", f"{profile.memory_bytes / 2**30:,.2f} GiB"),
        ("memory_bandwidth_bytes_per_s", f"{bandwidth_tb_s:.4g} TB/s"),
    ]
    for dtype, flops in profile.peak_flops_per_s.items():
        unit = "TOP/s" if dtype == "int8" else "TFLOP/s"
        rows.append((f"peak_flops_per_s.{dtype}", f"{flops / 1e12:,.4g} {unit}"))
    rows.append(("tdp_w", money(profile.tdp_w, "W")))
    rows.append(("purchase_usd", money(profile.purchase_usd, "USD")))
    rows.append(("rental_usd_per_gpu_hour", money(profile.rental_usd_per_gpu_hour, "USD/h")))
    for figure, text in rows:
        label = f"{figure} *" if figure in overridden else figure
        table.add_row(label, text, profile.sources.get(figure, ""))
    console = Console()
    console.print(table)
    if overridden:
        console.print("* overridden")
    if profile.notes:
        console.print(profile.notes)


def _show(args: argparse.Namespace) -> int:
    from capbench.hardware import apply_overrides, parse_overrides, resolve_profile

    profile = apply_overrides(resolve_profile(args.profile), parse_overrides(args.overrides))
    if args.json:
        _print_json(profile.to_dict())
    else:
        _render_profile(profile)
    return 0


def _probe(args: argparse.Namespace) -> int:
    from capbench.hardware import cached_probe_profile, default_cache_dir, save_profile_file

    profile = cached_probe_profile(device=args.device, refresh=True, quick=args.quick)
    written = [str(default_cache_dir() / f"{profile.id}.yaml")]
    if args.out:
        written.append(str(save_profile_file(profile, args.out)))
    if args.json:
        _print_json(profile.to_dict())
    else:
        _render_profile(profile)
    print(f"wrote {', '.join(written)}", file=sys.stderr)
    return 0


def _match(args: argparse.Namespace) -> int:
    from capbench.hardware import match_gpu_name

    profile = match_gpu_name(args.name)
    if profile is None:
        if not args.name.strip():
            raise CapbenchError("NAME must not be empty")
        print(
            f"no profile matches {args.name!r} (exact alias match only); "
            "see `capbench profiles list`, or pass a profile file / `capbench profiles probe`",
            file=sys.stderr,
        )
        return 1
    if args.json:
        _print_json(profile.to_dict())
    else:
        print(profile.id)
    return 0
