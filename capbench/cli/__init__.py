"""The ``capbench`` command: a thin entry point that dispatches to one module per subcommand.

Each subcommand module defines ``register(subparsers)`` and imports nothing heavy at module level (torch,
transformers, gradio load only inside the handler that needs them), so ``capbench --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
import warnings
from collections.abc import Sequence
from typing import TextIO

from capbench import __version__
from capbench.errors import CapbenchError, Terminated, interruption, interruption_exit_code

# Subcommand modules, in the order `capbench --help` lists them.
SUBCOMMANDS: tuple[str, ...] = ("run", "sweep", "score", "export", "model_info", "profiles", "leaderboard")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="capbench",
        description="Benchmark Mixture-of-Experts LLM serving on Cost, Accuracy and Performance.",
    )
    parser.add_argument("--version", action="version", version=f"capbench {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"capbench.cli.{name}")
        module.register(subparsers)
    return parser


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """Print warnings as one plain line on stderr (no source line), e.g. a skipped torn record."""
    print(f"warning: {message}", file=sys.stderr)


def _terminate(signum: int, frame: object) -> None:
    raise Terminated(signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen subcommand; return the process exit status.

    SIGTERM (a batch scheduler's time limit, ``timeout``) and SIGHUP (a closed terminal) take the Ctrl-C path:
    the run ends ``partial`` with its records kept, and a server capbench launched is stopped.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.showwarning = _show_warning
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
        signal.signal(signal.SIGHUP, _terminate)  # a closed terminal or dropped ssh session: the same clean end
    try:
        return int(args.handler(args) or 0)
    except CapbenchError as exc:
        print(f"capbench {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"capbench {args.command}: {interruption(exc)}", file=sys.stderr)
        return interruption_exit_code(exc)
