"""``capbench score RUN_DIR [--hardware ID] [--json]``: recompute ``summary.json`` from the raw records.

Needs only ``run.json`` and ``passes.jsonl`` (plus ``requests.jsonl`` / ``power.jsonl`` when present): never the
model weights, never a GPU. Re-scoring with another hardware profile or price is how "what if" questions
are answered.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from capbench.cli.text import HARDWARE_OVERRIDE_HELP, plain


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "score",
        help="recompute a run's summary.json from its raw records",
        description=plain(__doc__ or ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", type=Path, help="run directory (holds run.json)")
    parser.add_argument("--hardware", help="hardware profile id or YAML file (default: the run's own)")
    parser.add_argument(
        "--hardware-override",
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=HARDWARE_OVERRIDE_HELP,
    )
    parser.add_argument(
        "--expert-estimate",
        action="store_true",
        help="where expert activation was not measured, use the labeled uniform-routing estimate for S-MBU",
    )
    cost = parser.add_argument_group("cost assumptions (written into the summary)")
    cost.add_argument(
        "--pricing",
        type=lambda value: "amortized" if value == "amortised" else value,  # the old spelling still works
        choices=("rental", "amortized"),
        default="rental",
        help="rental: a price per GPU-hour; amortized: purchase prices over a lifetime (default: rental)",
    )
    cost.add_argument("--usd-per-gpu-hour", type=float, help="rental price of one GPU-hour (default: the profile's)")
    cost.add_argument("--usd-per-kwh", type=float, help="electricity price (rental default: included in the price)")
    cost.add_argument("--gpu-purchase-usd", type=float, help="purchase price of one GPU (amortized pricing)")
    cost.add_argument("--host-purchase-usd", type=float, help="purchase price of the host (amortized pricing)")
    cost.add_argument("--lifetime-years", type=float, help="amortization period (amortized pricing)")
    cost.add_argument(
        "--utilization", "--utilisation", type=float, help="fraction of the lifetime in paid use (amortized pricing)"
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON instead of tables")
    parser.add_argument("--no-write", action="store_true", help="do not rewrite summary.json")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    import orjson
    from rich.console import Console

    from capbench.hardware import parse_overrides
    from capbench.summary.report import print_summary
    from capbench.summary.score import ScoreOptions, score_run_dir

    options = ScoreOptions(
        hardware=args.hardware,
        hardware_overrides=parse_overrides(args.overrides),
        expert_estimate=args.expert_estimate,
        pricing=args.pricing,
        usd_per_gpu_hour=args.usd_per_gpu_hour,
        usd_per_kwh=args.usd_per_kwh,
        gpu_purchase_usd=args.gpu_purchase_usd,
        host_purchase_usd=args.host_purchase_usd,
        lifetime_years=args.lifetime_years,
        utilization=args.utilization,
    )
    summary = score_run_dir(args.run_dir, options, write=not args.no_write)
    status = summary.get("status")
    if status != "complete":
        reason = summary.get("run_error") or "no reason recorded"
        print(
            f"capbench score: warning: {args.run_dir} is a {status} run ({reason}): its figures cover only what was "
            "measured before it ended, and they carry that status into summary.json, the CSV and the leaderboard",
            file=sys.stderr,
        )
    if args.json:
        sys.stdout.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY).decode())
        sys.stdout.write("\n")
    else:
        print_summary(summary, Console())
    return 0
