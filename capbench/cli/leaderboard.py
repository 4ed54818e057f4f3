"""``capbench leaderboard [RESULTS.csv ...] [--host H] [--port P]``: serve the Gradio CAP leaderboard.

Gradio is imported only here, inside the handler (``pip install 'capbench[leaderboard]'``).
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from typing import Any

from capbench.errors import CapbenchError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "leaderboard",
        help="serve the Gradio CAP leaderboard for exported CSVs",
        description=(
            "Serve the CAP leaderboard (table with filters, cost-vs-accuracy Pareto front, CAP radar, per-run "
            "roofline, expert activation and latency) for CSVs written by `capbench export`. Without a CSV: "
            "$CAPBENCH_RESULTS, else results/results.csv under the working directory. Malformed rows are "
            "skipped with a warning on the page; Gradio's analytics are off and nothing is fetched from the "
            "network."
        ),
    )
    parser.add_argument("csvs", nargs="*", type=Path, metavar="RESULTS.csv", help="CSVs from `capbench export`")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on (default: %(default)s)")
    parser.add_argument(
        "--build-space",
        type=Path,
        default=None,
        metavar="DIR",
        help="instead of serving: write a Hugging Face Space folder showing the CSVs (push DIR to a Gradio Space)",
    )
    parser.set_defaults(handler=handle)


def check_csv(path: Path) -> None:
    """A CSV the board should show must exist and be readable now: a typo is an error before anything serves
    (rows inside a readable file are still checked one by one, with warnings on the page)."""
    if not path.exists():
        raise CapbenchError(f"{path} does not exist: give CSVs written by `capbench export`")
    if path.is_dir():
        raise CapbenchError(f"{path} is a directory; give the CSV file (e.g. {path / 'results.csv'})")
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise CapbenchError(f"cannot read {path}: {exc.strerror or exc}") from exc


def handle(args: argparse.Namespace) -> int:
    if args.build_space is not None:
        from capbench.leaderboard.space import build_space

        if not args.csvs:
            raise CapbenchError("--build-space needs the CSVs the Space should show")
        written = build_space(args.build_space, args.csvs)
        print(f"Space folder: {args.build_space} ({len(written)} CSV file(s)); push it to a Gradio Space")
        return 0
    if not 0 < args.port < 65536:
        raise CapbenchError(f"--port must be in 1..65535, got {args.port}")
    missing = [name for name in ("gradio", "plotly") if importlib.util.find_spec(name) is None]
    if missing:
        raise CapbenchError(f"the leaderboard needs {' and '.join(missing)}: pip install 'capbench[leaderboard]'")
    from capbench.leaderboard.app import default_csv_paths, launch

    paths = list(args.csvs) or default_csv_paths()
    for path in paths:
        check_csv(Path(path))
    print(f"capbench leaderboard: http://{args.host}:{args.port}/ ({len(paths)} CSV file(s); Ctrl-C stops it)")
    try:
        launch(paths, host=args.host, port=args.port, quiet=True)
    except OSError as exc:  # Gradio's "Cannot find empty port", an address it cannot bind
        raise CapbenchError(f"cannot serve on {args.host}:{args.port}: {exc}; pick another --port") from exc
    return 0
