"""``capbench sweep SWEEP.yaml [--out DIR] [--executor local|ray] [--resume] [--dry-run]``: run a grid of runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="run a grid of configurations, each point its own `capbench run`",
        description=(
            "Expand a sweep file (a base run config, axes to vary, include/exclude lists) and run every point "
            "as its own `capbench run` process with its own run directory, id = content hash of its resolved "
            "settings. A failed point is recorded and the sweep goes on; --resume skips complete points and "
            "re-runs partial or failed ones in a new attempt directory. At the end (and on Ctrl-C): "
            "DIR/results.csv over every complete point, DIR/sweep.json (points, status, durations) and a "
            "summary table. See docs/sweep.md."
        ),
    )
    parser.add_argument("sweep_file", type=Path, metavar="SWEEP.yaml", help="the sweep file")
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: runs/sweep-<name>)")
    parser.add_argument("--executor", choices=("local", "ray"), default="local", help="where points run")
    parser.add_argument("--ray-address", default=None, help="--executor ray: the cluster, e.g. 10.0.0.1:6379")
    parser.add_argument("--resume", action="store_true", help="continue the sweep in --out")
    parser.add_argument("--dry-run", action="store_true", help="print the expanded points with their ids; run nothing")
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="run every point this many times (repeats: N in each point's settings, so in its id): each point's "
        "directory holds its repeats and their summary (mean, std, 95 percent interval)",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from rich.console import Console

    from capbench.errors import CapbenchError
    from capbench.sweep.local import SweepOptions, plan, points_table, run_sweep
    from capbench.sweep.spec import load_sweep

    if not args.sweep_file.is_file():
        raise CapbenchError(f"sweep file {args.sweep_file} does not exist")
    console = Console() if sys.stdout.isatty() else Console(width=200)  # a log file gets whole lines
    if args.repeats is not None and args.repeats < 1:
        raise CapbenchError(f"--repeats must be >= 1, got {args.repeats}")
    if args.dry_run:
        points = plan(args.sweep_file, args.repeats)
        console.print(points_table(points, f"{args.sweep_file}: {len(points)} points"))
        return 0
    out = args.out
    if out is None:
        name = load_sweep(args.sweep_file).name or args.sweep_file.stem
        out = Path("runs") / f"sweep-{name}"
    options = SweepOptions(
        sweep_file=args.sweep_file,
        out=out,
        executor=args.executor,
        resume=args.resume,
        ray_address=args.ray_address,
        repeats=args.repeats,
    )
    return run_sweep(options, console)
