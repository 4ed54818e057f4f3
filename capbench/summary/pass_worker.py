"""Scan a large ``passes.jsonl`` in child processes, one segment of the file each, while this one scans the
requests (issue #18).

Scoring a long run is two independent reads: ``requests.jsonl`` (:mod:`capbench.metrics.request_scan`) and
``passes.jsonl`` (:mod:`capbench.metrics.passes`), each bound by one core's decoding. When the pass file holds at
least :data:`SEGMENT_MIN_BYTES` and the machine has a second core, :func:`start_pass_scan` cuts it at line
boundaries into segments of at least that size (one per core, or one per core but the one this process reads the
requests on: :func:`_segments`; at most :data:`MAX_SEGMENTS`; :func:`~capbench.records.reader.line_bounds`) and
starts one child process per segment (``spawn``: nothing of this process is inherited). Each child runs exactly
the in-process scan, :func:`capbench.metrics.score._scan_passes`, over its segment
(:meth:`capbench.records.reader.RunFiles.pass_segment`, line numbers those of the whole file):

- a child's :class:`~capbench.metrics.passes.PassScan` comes back as a small pickled header; its per-pass features
  stay in the file the child's :class:`~capbench.metrics.feature_store.FeatureStore` wrote, in a temporary
  directory this process made and removes (:meth:`PassScanInChildren.close`), and the segments' stores are
  adopted as one store, read a slice at a time in file order (bounded memory in every process); the expert
  tallies and counts are added;
- duplicates span segments, so a child does not look for them: it logs every record's key hash
  (:class:`~capbench.records.key_hashes.HashLog`) and this process checks all the logs together;
- warnings a child's read raised (a torn line) are raised again here, segment by segment, with the same category
  and text.

The segments are simply joined only when nothing needs the whole file: anything else (two hashes alike, which
is a duplicate record or a rare collision; a key that cannot be hashed; segments that found different numbers of
MoE layers; a child's error; a child that could not start, died or hit a bug) sends the scan back in-process,
where the whole file is read once more by the same code, so the figures, warnings (the dropped duplicates
included) and errors are always those of a scan in one process.

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
from capbench.metrics.experts import ExpertTally
from capbench.metrics.feature_store import FeatureStore
from capbench.metrics.passes import PassScan
from capbench.records.key_hashes import HashLog, any_colliding
from capbench.records.reader import RunFiles, line_bounds
from capbench.records.schema import PASSES_FILE, REQUESTS_FILE
from capbench.records.validate import pass_key
from capbench.summary.heap import heap_kept

SEGMENT_MIN_BYTES = 64 * 1024 * 1024
"""A ``passes.jsonl`` at least this large (bytes) is scanned in child processes, when there is a second core; each
child reads at least this many bytes (a file below twice this is read by one child)."""

MAX_SEGMENTS = 8
"""Most child processes for one file."""


def usable_cores() -> int:
    """The cores this process may run on (its affinity, not its cgroup's CPU quota)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _segments(size: int, request_bytes: int = 0) -> int:
    """How many children read a pass file of ``size`` bytes while this process reads ``request_bytes`` of requests
    (0: none, scan in-process).

    One reader per core, but one core is left to this process's request scan unless the pass file is the larger
    of the two (a byte of passes costs more to scan than a byte of requests, so its scan is then the longer and
    sharing every core finishes sooner). Measured on two cores (docs/metrics.md), 1M requests (473 MB): with 1M
    compact passes (305 MB), one reader 5.0–5.5 s, two 5.7–5.9 s; with the same passes as JSON lists (563 MB),
    one reader 8.9 s, two 7.2–7.4 s.
    """
    cores = usable_cores()
    if size < SEGMENT_MIN_BYTES or cores < 2:
        return 0
    readers = cores if size > request_bytes else cores - 1
    return min(readers, MAX_SEGMENTS, size // SEGMENT_MIN_BYTES)


def start_pass_scan(run: RunFiles, options: dict[str, Any]) -> PassScanInChildren | None:
    """Start scanning ``run``'s passes in child processes (module docstring), or None when it should not (a small
    or absent file, one core) or could not start; ``options``: :func:`capbench.metrics.score.pass_scan_options`."""
    path = run.run_dir / PASSES_FILE
    try:
        requests = run.run_dir / REQUESTS_FILE
        parts = _segments(path.stat().st_size, requests.stat().st_size if requests.is_file() else 0)
        bounds = line_bounds(path, parts) if parts else []
    except OSError:
        return None
    if not bounds:
        return None
    context = multiprocessing.get_context("spawn")
    directory = tempfile.mkdtemp(prefix="capbench-passes-")
    child_options = {**options, "store_directory": directory}
    pending = PassScanInChildren(run, options, [], directory)
    for index, (begin, end) in enumerate(bounds):
        receive, send = context.Pipe(duplex=False)
        hashes = str(Path(directory) / f"keys-{index}")
        process = context.Process(
            target=_child, args=(send, str(run.run_dir), child_options, begin, end, hashes), daemon=True
        )
        try:
            process.start()
        except (OSError, AssertionError):  # no process to be had (limits), or this one is a daemon and may have none
            receive.close()
            send.close()
            pending.close()
            return None
        send.close()
        pending.children.append(Child(process, receive))
    return pending


@dataclass
class Child:
    """One child process reading one segment, and the end of the pipe its answer comes through."""

    process: Any
    connection: Connection


@dataclass
class PassScanInChildren:
    """A pass scan under way in child processes (a :class:`~capbench.metrics.passes.PendingPassScan`), one per
    segment of the file, in file order."""

    run: RunFiles
    options: dict[str, Any]
    children: list[Child]
    directory: str

    def result(self) -> PassScan:
        """The children's scans joined (module docstring); in-process when they cannot simply be joined."""
        answers: list[tuple[str, Any, list[tuple[str, type[Warning]]]]] = []
        try:
            for child in self.children:
                try:
                    answers.append(child.connection.recv())
                except (EOFError, OSError):
                    answers.append(("lost", None, []))
        finally:
            self._stop()
        scan = None
        if all(kind == "ok" for kind, _, _ in answers):
            with contextlib.suppress(OSError):  # a log or store that cannot be read: read the file here instead
                scan = _join([payload for _, payload, _ in answers])
        if scan is not None:
            for _, _, shown in answers:
                for message, category in shown:
                    warnings.warn(message, category, stacklevel=2)
            return scan
        from capbench.metrics.score import _scan_passes

        return _scan_passes(self.run.passes, **self.options)

    def close(self) -> None:
        """Stop the children (if they still run), release the pipes and remove the directory of their files."""
        self._stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _stop(self) -> None:
        for child in self.children:
            with contextlib.suppress(OSError):
                child.connection.close()
            if child.process.is_alive():
                child.process.terminate()
        for child in self.children:
            child.process.join(timeout=10)


def _join(headers: list[dict[str, Any]]) -> PassScan | None:
    """The segments' scans as one (their stores adopted in file order, tallies and counts added); None when they
    cannot simply be joined (module docstring)."""
    if any(header["unhashable"] for header in headers):
        return None
    layers = {header["num_moe_layers"] for header in headers} - {None}
    if len(layers) > 1 or any_colliding([header["hashes"] for header in headers]):
        return None
    experts = ExpertTally()
    try:
        for header in headers:
            experts.merge(header["experts"])
    except ValueError:  # per-expert counts of different shapes: the whole-file scan says what is wrong
        return None
    return PassScan(
        store=FeatureStore.adopt(*(header["store"] for header in headers)),
        experts=experts,
        records=sum(header["records"] for header in headers),
        warmup=sum(header["warmup"] for header in headers),
        num_moe_layers=next(iter(layers), None),
        experts_below_top_k=sum(header["experts_below_top_k"] for header in headers),
    )


# -- in the child ------------------------------------------------------------------------------------------


def _child(
    connection: Connection, run_dir: str, options: dict[str, Any], start: int, stop: int | None, hashes: str
) -> None:
    """The child's whole life: scan its segment, then send the outcome (module docstring)."""
    import gc

    from capbench.metrics.score import _scan_passes
    from capbench.records.reader import open_run

    gc.disable()  # as score_run_dir does: millions of short-lived containers, none in a cycle
    log = HashLog(hashes, pass_key)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with heap_kept():
                scan = _scan_passes(open_run(Path(run_dir)).pass_segment(start, stop, log), **options)
        except CapbenchError as exc:
            outcome: tuple[str, Any] = ("error", str(exc))
        except Exception as exc:
            outcome = ("failed", f"{type(exc).__name__}: {exc}")
        else:
            outcome = ("ok", None)
        finally:
            log.close()
    shown = [(str(w.message), w.category) for w in caught]
    if outcome[0] != "ok":
        connection.send((outcome[0], outcome[1], shown))
        connection.close()
        return
    header = {
        "store": scan.store.handoff(),
        "experts": scan.experts,
        "records": scan.records,
        "warmup": scan.warmup,
        "num_moe_layers": scan.num_moe_layers,
        "experts_below_top_k": scan.experts_below_top_k,
        "hashes": hashes,
        "unhashable": log.unhashable,
    }
    connection.send(("ok", header, shown))
    connection.close()
