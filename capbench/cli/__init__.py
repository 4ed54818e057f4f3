"""The ``capbench`` command: a thin entry point that dispatches to one module per subcommand.

Each subcommand module defines ``register(subparsers)`` and imports nothing heavy at module level (torch,
transformers, gradio load only inside the handler that needs them), so ``capbench --help`` is instant.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from typing import TextIO

from capbench import __version__
from capbench.errors import CapbenchError, Terminated, interruption, interruption_exit_code

# Subcommand modules, in the order `capbench --help` lists them.
SUBCOMMANDS: tuple[str, ...] = ("run", "sweep", "capacity", "score", "export", "model_info", "profiles", "leaderboard")


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


BROKEN_PIPE_EXIT = 128 + 13
"""Exit status when stdout's reader closed the pipe: 128 + SIGPIPE, as a process killed by it reports."""
_QUIET_ENV = {"TRANSFORMERS_VERBOSITY": "error", "TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}


@contextlib.contextmanager
def quiet_foreign_output(quiet: bool) -> Iterator[None]:
    """``--quiet``: no Python warnings, no log records below ERROR and no progress bars from the libraries
    capbench drives (transformers, lm-eval, datasets), for the handler's duration; errors still print."""
    if not quiet:
        yield
        return
    saved_env = {key: os.environ.get(key) for key in _QUIET_ENV}
    saved_disable = logging.root.manager.disable
    os.environ.update(_QUIET_ENV)
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(saved_disable)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


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
        with quiet_foreign_output(bool(getattr(args, "quiet", False))):
            return int(args.handler(args) or 0)
    except BrokenPipeError:
        # The reader of our output went away (`capbench score --json RUN | head`): end quietly, as SIGPIPE would.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush must not fail again
        return BROKEN_PIPE_EXIT
    except CapbenchError as exc:
        print(f"capbench {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"capbench {args.command}: {interruption(exc)}", file=sys.stderr)
        return interruption_exit_code(exc)
