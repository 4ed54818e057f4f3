"""``capbench capacity [CONFIG.yaml] --slo ttft_s=0.5,tpot_s=0.05 [--attainment 0.99] [--search concurrency|rate]``:
the highest load served within the latency targets, and what a token costs there.

Takes every ``capbench run`` setting (the load itself excepted: the search sets ``concurrency`` or
``request_rate``). Each probe is a full run directory under ``<out>/probes/``, run in its own process and stopped
early once it cannot reach the target; the search brackets the capacity by doubling from ``--start`` and then
bisects to ``--resolution``, repeating a probe whose attainment is not clearly on one side of the target (95 %
interval) up to ``--max-repeats`` runs. Writes ``<out>/capacity.json`` and prints the capacity, how sure it is,
the figures at it (throughput per GPU and per user, TTFT/TPOT, S-MBU/S-MFU, energy and USD per 1M output
tokens) and every probe. ``--resume`` continues a search in ``--out``. See docs/capacity.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from capbench.cli.text import plain


def register(subparsers: Any) -> None:
    from capbench.cli.run import add_run_settings

    parser = subparsers.add_parser(
        "capacity",
        help="search the highest load served within latency targets (SLO), and its cost per token",
        description=plain(__doc__ or ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", nargs="?", type=Path, help="YAML run config (optional)")
    search = parser.add_argument_group("capacity search")
    search.add_argument(
        "--search",
        choices=("concurrency", "rate"),
        default="concurrency",
        help="what to search: concurrency (closed loop, default) or rate (open loop, requests/s)",
    )
    search.add_argument(
        "--attainment",
        type=float,
        default=0.99,
        help="fraction of measured requests that must meet every SLO bound (default 0.99)",
    )
    search.add_argument(
        "--resolution", type=float, default=0.05, help="stop bisecting within this fraction of the load (default 0.05)"
    )
    search.add_argument("--start", type=float, default=None, help="the first load probed (default 1)")
    search.add_argument("--max-load", type=float, default=None, help="never probe above this load")
    search.add_argument("--max-probes", type=int, default=20, help="most loads probed (default 20)")
    search.add_argument("--repeats", type=int, default=1, help="runs of every probe at least (default 1)")
    search.add_argument(
        "--max-repeats",
        type=int,
        default=3,
        help="runs of a probe whose attainment is not clearly on one side of the target, at most (default 3)",
    )
    search.add_argument("--resume", action="store_true", help="continue the search in --out")
    add_run_settings(parser, exclude=("repeats",))
    parser.add_argument("--quiet", action="store_true", help="print only the result table and errors")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from rich.console import Console

    from capbench.capacity.orchestrate import CapacityOptions, capacity_settings, run_capacity
    from capbench.cli.run import run_overrides
    from capbench.errors import CapbenchError

    if args.config is not None and not args.config.is_file():
        raise CapbenchError(f"run config {args.config} does not exist")
    overrides = run_overrides(args)
    out = Path(overrides["out"]) if overrides.get("out") else Path("runs") / f"capacity-{args.search}"
    if args.start is not None and args.search == "concurrency" and args.start != int(args.start):
        raise CapbenchError(f"--start {args.start}: a concurrency search starts at an integer")
    options = CapacityOptions(
        settings=capacity_settings(args.config, overrides),
        out=out,
        search=args.search,
        target=args.attainment,
        resolution=args.resolution,
        start=args.start,
        max_load=args.max_load,
        max_probes=args.max_probes,
        repeats=args.repeats,
        max_repeats=args.max_repeats,
        resume=args.resume,
    )
    console = Console() if sys.stdout.isatty() else Console(width=200)
    result = run_capacity(options, console if not args.quiet else Console(quiet=True))
    if args.quiet:
        from capbench.capacity.orchestrate import result_table

        console.print(result_table(result))
    print(out / "capacity.json")
    return 0 if result["outcome"] in ("found", "at_least_max_load") else 1
