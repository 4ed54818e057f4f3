"""Score a run while it goes: its requests are read as they are written, so its summary is ready seconds after
its last request, however long it ran (issue #18).

An hour at thousands of requests per second writes millions of request records, and reading them after the run
took over a minute. :func:`start_live_score` starts one child process (``spawn``) once ``requests.jsonl`` exists.
The child reads the file as it grows, each line once its newline is written
(:func:`capbench.records.reader.iter_jsonl_blocks` with ``more``), into the request tallies
(:func:`capbench.metrics.request_scan.scan_requests`), looking for new lines every :data:`POLL_S` seconds. When the
run has ended, :meth:`LiveScore.result` tells it so: it reads the rest, then scores the run with that scan
(:func:`capbench.summary.score.score_loaded_run`: the final ``run.json``, the passes, the power) and sends the summary
back. It is the code of ``capbench score`` on the same records; the request tallies do not depend on where reads
cut the file (tests/integration/summary/test_live_score.py), so the figures are the same.

Anything out of the ordinary leaves the scoring to this process, as if there were no child (:meth:`result` gives
None): the child could not start, died or raised (the scorer then raises the same error here); ``run.json``'s SLO
or fixed lengths changed since the scan began (its tallies were made with the first ones); ``requests.jsonl``
was replaced (a task run rewrites it, and does not use this). It needs a second core (on one, the child would
take time from the run it measures), and runs at a lower priority (:data:`NICE`); following costs it about 3 µs
of CPU a request.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import warnings
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from capbench.errors import CapbenchError
from capbench.records.reader import open_run
from capbench.records.schema import REQUESTS_FILE
from capbench.summary.pass_worker import usable_cores

POLL_S = 0.5
"""How often the child looks for new request lines while the run goes (seconds)."""
NICE = 10
"""The child's niceness increment: the scheduler gives the run's own processes a core before it."""
_FINISHED = "finished"


MIN_REQUESTS = 50_000
"""A run of fewer requests than this (and no duration) is scored after it: reading its file then takes about half a
second (about 10 µs a request), about what starting the child (an interpreter importing the scorer) costs."""


def worth_following(num_requests: int | None, duration_s: float | None) -> bool:
    """Whether a run of ``num_requests`` (or lasting ``duration_s``: a soak) is long enough to score as it goes."""
    return duration_s is not None or (num_requests or 0) >= MIN_REQUESTS


def start_live_score(run_dir: Path) -> LiveScore | None:
    """Start scoring ``run_dir`` as it is written (module docstring); None when it should not (one core, no
    ``requests.jsonl`` yet) or could not start."""
    if usable_cores() < 2 or not (Path(run_dir) / REQUESTS_FILE).is_file():
        return None
    context = multiprocessing.get_context("spawn")
    mine, theirs = context.Pipe(duplex=True)
    process = context.Process(target=_child, args=(theirs, str(run_dir)), name="capbench-live-score")
    try:
        process.start()
    except (OSError, AssertionError):  # no process to be had (limits), or this one is a daemon and may have none
        mine.close()
        theirs.close()
        return None
    theirs.close()
    return LiveScore(process, mine)


@dataclass
class LiveScore:
    """The child scoring a run as it goes, and this end of the pipe to it."""

    process: Any
    connection: Connection

    def result(self) -> dict[str, Any] | None:
        """Tell the child the run has ended and wait for the summary (the warnings its reads raised are raised
        again here); None when the child cannot give it (module docstring). The child is stopped either way."""
        try:
            self.connection.send(_FINISHED)
            kind, payload, shown = self.connection.recv()
        except (EOFError, OSError):
            return None
        finally:
            self.close()
        if kind != "ok":
            return None
        for message, category in shown:
            warnings.warn(message, category, stacklevel=2)
        return payload

    def close(self) -> None:
        """Stop the child if it still runs and release the pipe."""
        with contextlib.suppress(OSError):
            self.connection.close()
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(timeout=10)


# -- in the child ------------------------------------------------------------------------------------------


def _scan_inputs(manifest: dict[str, Any]) -> tuple[Any, Any]:
    """What of ``run.json`` the request tallies are made with: the SLO and the fixed lengths asked."""
    return (manifest.get("spec") or {}).get("slo"), (manifest.get("load") or {}).get("fixed_length")


def _child(connection: Connection, run_dir: str) -> None:
    """The child's whole life: follow the requests until the run ends, score, send the outcome."""
    import gc
    import signal

    from capbench.metrics.request_scan import scan_requests
    from capbench.summary.heap import heap_kept
    from capbench.summary.score import score_loaded_run

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the run's to handle; the run then asks for the end
    with contextlib.suppress(OSError):
        os.nice(NICE)  # never ahead of the client (or of a server on the same machine) for a core
    gc.disable()  # as score_run_dir does: millions of short-lived containers, none in a cycle
    state = {"finished": False, "orphaned": False}

    def more() -> bool:
        """Read again? Yes, after waiting up to POLL_S, until the run has ended; once told, one last read."""
        if state["finished"]:
            return False
        try:
            if connection.poll(POLL_S):
                connection.recv()
                state["finished"] = True
        except (EOFError, OSError):  # the run's process is gone: nobody waits for a summary
            state["finished"] = state["orphaned"] = True
            return False
        return True

    path = Path(run_dir)
    outcome: tuple[str, Any]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            run = open_run(path, follow_requests=more)
            inode = (path / REQUESTS_FILE).stat().st_ino
            scan = scan_requests(run.request_chunks, run.manifest)
            if state["orphaned"]:
                return
            final = open_run(path)  # the run.json the run ended with
            if (path / REQUESTS_FILE).stat().st_ino != inode or _scan_inputs(final.manifest) != _scan_inputs(
                run.manifest
            ):
                outcome = ("stale", None)
            else:
                with heap_kept():
                    outcome = ("ok", score_loaded_run(final, request_scan=scan))
        except CapbenchError as exc:
            outcome = ("error", str(exc))
        except Exception as exc:
            outcome = ("failed", f"{type(exc).__name__}: {exc}")
    shown = [(str(w.message), w.category) for w in caught]
    with contextlib.suppress(OSError):
        connection.send((outcome[0], outcome[1], shown))
        connection.close()


__all__ = ["MIN_REQUESTS", "POLL_S", "LiveScore", "start_live_score", "worth_following"]
