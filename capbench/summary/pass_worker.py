"""Scan a large ``passes.jsonl`` in a second process while this one scans the requests (issue #18).

Scoring a long run is two independent reads: ``requests.jsonl`` (:mod:`capbench.metrics.request_scan`) and
``passes.jsonl`` (:mod:`capbench.metrics.passes`), each bound by one core's JSON decoding. When the pass file is
at least :data:`PARALLEL_MIN_BYTES` and the machine has a second core, :func:`start_pass_scan` starts a child
process (``spawn``: nothing of this process is inherited) that runs exactly the in-process scan,
:func:`capbench.metrics.score._scan_passes` over :meth:`capbench.records.reader.RunFiles.passes`, so its figures,
warnings and errors are the in-process ones:

- the child's :class:`~capbench.metrics.passes.PassScan` comes back as a small pickled header; its per-pass
  features stay in the file the child's :class:`~capbench.metrics.feature_store.FeatureStore` wrote, in a
  temporary directory this process made and removes (:meth:`PassScanInChild.close`), and are read from there a
  slice at a time (bounded memory in both processes);
- warnings the child's read raised (a torn line, dropped duplicates) are raised again here, in order, with the
  same category and text; an error it raised (:class:`~capbench.errors.CapbenchError`, a record that breaks the
  contract) is raised here;
- anything else (the child could not start, died, or hit a bug) sends the scan back in-process, where the same
  code runs again and fails, or not, in the open.

Small pass files are scanned in-process: starting an interpreter costs about a third of a second.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from capbench.errors import CapbenchError
from capbench.metrics.feature_store import FeatureStore
from capbench.metrics.passes import PassScan
from capbench.records.reader import RunFiles
from capbench.records.schema import PASSES_FILE

PARALLEL_MIN_BYTES = 64 * 1024 * 1024
"""A ``passes.jsonl`` at least this large (bytes) is scanned in a second process, when there is a second core."""


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def start_pass_scan(run: RunFiles, options: dict[str, Any]) -> PassScanInChild | None:
    """Start scanning ``run``'s passes in a child process (module docstring), or None when it should not (a small
    or absent file, one core) or could not start; ``options``: :func:`capbench.metrics.score.pass_scan_options`."""
    path = run.run_dir / PASSES_FILE
    try:
        size = path.stat().st_size
    except OSError:
        return None
    if size < PARALLEL_MIN_BYTES or _cores() < 2:
        return None
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    directory = tempfile.mkdtemp(prefix="capbench-passes-")
    child_options = {**options, "store_directory": directory}
    process = context.Process(target=_child, args=(send, str(run.run_dir), child_options), daemon=True)
    try:
        process.start()
    except (OSError, AssertionError):  # no process to be had (limits), or this one is a daemon and may have none
        receive.close()
        send.close()
        shutil.rmtree(directory, ignore_errors=True)
        return None
    send.close()
    return PassScanInChild(run, options, process, receive, directory)


@dataclass
class PassScanInChild:
    """A pass scan under way in a child process (a :class:`~capbench.metrics.passes.PendingPassScan`)."""

    run: RunFiles
    options: dict[str, Any]
    process: Any
    connection: Connection
    directory: str

    def result(self) -> PassScan:
        """The child's :class:`PassScan` (module docstring); in-process when the child could not give one."""
        try:
            kind, payload, shown = self.connection.recv()
            if kind == "ok":
                scan = _receive_scan(payload)
        except (EOFError, OSError):
            kind, shown = "lost", []
        finally:
            self._stop()
        if kind in ("ok", "error"):  # otherwise the scan below runs again and raises its own warnings
            for message, category in shown:
                warnings.warn(message, category, stacklevel=2)
        if kind == "ok":
            return scan
        if kind == "error":
            raise CapbenchError(payload)
        from capbench.metrics.score import _scan_passes

        return _scan_passes(self.run.passes, **self.options)

    def close(self) -> None:
        """Stop the child (if it still runs), release the pipe and remove the directory of its feature file."""
        self._stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _stop(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.close()
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(timeout=10)


# -- in the child ------------------------------------------------------------------------------------------


def _child(connection: Connection, run_dir: str, options: dict[str, Any]) -> None:
    """The child's whole life: scan, then send the outcome (module docstring)."""
    import gc

    from capbench.metrics.score import _scan_passes
    from capbench.records.reader import open_run

    gc.disable()  # as score_run_dir does: millions of short-lived containers, none in a cycle
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            scan = _scan_passes(open_run(Path(run_dir)).passes, **options)
        except CapbenchError as exc:
            outcome: tuple[str, Any] = ("error", str(exc))
        except Exception as exc:
            outcome = ("failed", f"{type(exc).__name__}: {exc}")
        else:
            outcome = ("ok", None)
    shown = [(str(w.message), w.category) for w in caught]
    if outcome[0] != "ok":
        connection.send((outcome[0], outcome[1], shown))
        connection.close()
        return
    _send_scan(connection, scan, shown)
    connection.close()


def _send_scan(connection: Connection, scan: PassScan, shown: list[tuple[str, type[Warning]]]) -> None:
    header = {
        "store": scan.store.handoff(),
        "experts": scan.experts,
        "records": scan.records,
        "warmup": scan.warmup,
        "num_moe_layers": scan.num_moe_layers,
        "experts_below_top_k": scan.experts_below_top_k,
    }
    connection.send(("ok", header, shown))


def _receive_scan(header: dict[str, Any]) -> PassScan:
    return PassScan(
        store=FeatureStore.adopt(header["store"]),
        experts=header["experts"],
        records=header["records"],
        warmup=header["warmup"],
        num_moe_layers=header["num_moe_layers"],
        experts_below_top_k=header["experts_below_top_k"],
    )
