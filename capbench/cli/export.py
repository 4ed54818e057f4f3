"""``capbench export RUN_DIR... [-o results.csv]``: one CSV row per scored run, units in every column name."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "export",
        help="flatten scored runs to a CSV, one row per run",
        description=(
            "Flatten each run directory's run.json and summary.json into one CSV row (column names carry "
            "units; an empty cell means not measured). Score a run first with `capbench score RUN_DIR`. A "
            "directory of `capbench run --repeats N` gives one row (headline figures averaged, with their "
            "intervals); a `capbench capacity` directory gives one row per probe run, with the capacity columns."
        ),
    )
    parser.add_argument(
        "run_dirs", nargs="+", type=Path, metavar="RUN_DIR", help="scored run, repeats or capacity directories"
    )
    parser.add_argument(
        "-o", "--output", type=Path, default=None, metavar="CSV", help="file to write (default: standard output)"
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from capbench.summary.export import export_runs, write_csv

    frame = export_runs(args.run_dirs)
    write_csv(frame, args.output)
    return 0
