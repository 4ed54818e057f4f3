"""Write a run directory as the run goes: the manifest first, then records appended and flushed line by line.

A crash loses at most the line being written. ``run.json`` is replaced atomically (write to a temporary file,
then rename), so a reader never sees half a manifest.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import orjson

from capbench.clock import utc_now_iso
from capbench.errors import CapbenchError, interruption
from capbench.paths import replace_file
from capbench.records.pass_codec import compact_pass
from capbench.records.schema import (
    MANIFEST_FILE,
    PASSES_FILE,
    POWER_FILE,
    REQUESTS_FILE,
    SUMMARY_FILE,
    RunStatus,
)
from capbench.records.token_times import compact_request

_JSON_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def dumps_line(record: Mapping[str, Any]) -> bytes:
    """One JSON object on one line, newline-terminated (full float precision, no rounding)."""
    return orjson.dumps(record, option=_JSON_OPTS | orjson.OPT_APPEND_NEWLINE)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically (:func:`replace_file`)."""
    data = orjson.dumps(obj, option=_JSON_OPTS | orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    replace_file(path, lambda f: f.write(data))


class JsonlAppender:
    """Append JSON records to a ``.jsonl`` file, one per line, flushed after every line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = path.open("ab")
        self.count = 0

    def append(self, record: Mapping[str, Any]) -> None:
        """Write one record and flush it to the operating system."""
        if self._file is None:
            raise ValueError(f"{self.path} is closed")
        self._file.write(dumps_line(record))
        self._file.flush()
        self.count += 1

    def close(self) -> None:
        """Flush to disk (fsync) and close; closing twice is harmless. The file is closed even when the flush
        fails (a full disk), and that failure is raised after."""
        if self._file is not None:
            file, self._file = self._file, None
            try:
                file.flush()
                os.fsync(file.fileno())
            finally:
                with contextlib.suppress(OSError):  # close() re-tries a failed flush: the first error is raised
                    file.close()


def prepare_run_dir(run_dir: Path) -> Path:
    """Create ``run_dir`` (and parents) and check it can be written, before any expensive work.

    Raises :class:`CapbenchError` naming the directory when it exists and is not empty of run files, or
    when it cannot be created or written.
    """
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CapbenchError(f"cannot create the output directory {run_dir}: {exc.strerror or exc}") from exc
    if (run_dir / MANIFEST_FILE).exists():
        raise CapbenchError(
            f"{run_dir} already holds a run ({MANIFEST_FILE} exists); choose a new --out directory "
            "so no measurement is overwritten"
        )
    probe = run_dir / ".capbench-write-test"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise CapbenchError(f"the output directory {run_dir} is not writable: {exc.strerror or exc}") from exc
    return run_dir


class RunWriter:
    """Owns one run directory while a run writes it.

    Usage: create it (the manifest is written at once with ``status: running``), ``append_request`` /
    ``append_pass`` / ``append_power`` as facts arrive, then ``finish(status)``. Used as a context manager,
    an exception leaves ``status: partial`` (``KeyboardInterrupt``) or ``failed`` with the error recorded,
    and all appended lines stay on disk.
    """

    def __init__(self, run_dir: Path, manifest: Mapping[str, Any]) -> None:
        self.run_dir = prepare_run_dir(run_dir)
        self.manifest: dict[str, Any] = dict(manifest)
        self.manifest.setdefault("status", RunStatus.RUNNING.value)
        self.manifest.setdefault("error", None)
        self.write_manifest()
        self.requests = JsonlAppender(self.run_dir / REQUESTS_FILE)
        # Created on the first record: a runner that cannot see engine steps (or a run without a power
        # sensor) leaves no empty file suggesting otherwise.
        self._passes: JsonlAppender | None = None
        self._power: JsonlAppender | None = None
        self.finished = False
        self.manifest_write_error: str | None = None
        self.measured_requests = 0
        self.failed_requests = 0
        self.first_error: str | None = None

    @property
    def status(self) -> str:
        return str(self.manifest["status"])

    def write_manifest(self) -> None:
        write_json_atomic(self.run_dir / MANIFEST_FILE, self.manifest)

    def update_manifest(self, **fields: Any) -> None:
        """Merge ``fields`` into ``run.json`` and rewrite it atomically."""
        self.manifest.update(fields)
        self.write_manifest()

    def append_request(self, record: Mapping[str, Any]) -> None:
        """Append a request record, its ``token_times_ns`` stored compactly (schema 2: :mod:`.token_times`)."""
        self.requests.append(compact_request(record))
        if not record.get("warmup"):
            self.measured_requests += 1
            if record.get("error") is not None:
                self.failed_requests += 1
                self.first_error = self.first_error or str(record["error"])

    def failure(self, max_error_rate: float) -> str | None:
        """Why the run, although it ran to its end, must count as failed: no measured request, none succeeded, or
        more than ``max_error_rate`` of them failed (with the first error); None when it did not fail."""
        measured, failed = self.measured_requests, self.failed_requests
        if measured == 0:
            return "no measured request was served"
        first = f" (first error: {self.first_error[:200]})" if self.first_error else ""
        if failed == measured:
            return f"every measured request failed ({failed} of {measured}){first}"
        if failed / measured > max_error_rate:
            rate = f"max_error_rate {max_error_rate:g}"
            return f"{failed} of {measured} measured requests failed, more than {rate}{first}"
        return None

    def append_pass(self, record: Mapping[str, Any]) -> None:
        """Append a pass record, its integer lists stored compactly (schema 3: :mod:`.pass_codec`)."""
        if self._passes is None:
            self._passes = JsonlAppender(self.run_dir / PASSES_FILE)
        self._passes.append(compact_pass(record))

    def append_power(self, record: Mapping[str, Any]) -> None:
        if self._power is None:
            self._power = JsonlAppender(self.run_dir / POWER_FILE)
        self._power.append(record)

    def rewrite_requests(self, update: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        """Replace every ``requests.jsonl`` record by ``update(record)`` (e.g. to add accuracy scores once a task
        has been scored). The new file is written beside the old one and renamed over it, so a crash leaves
        either the old or the new file whole; appending continues afterwards."""
        self.requests.close()
        path = self.run_dir / REQUESTS_FILE
        lines = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]

        def write(f: IO[bytes]) -> None:
            for record in lines:
                f.write(dumps_line(update(record)))

        try:
            replace_file(path, write)
        finally:
            count = self.requests.count
            self.requests = JsonlAppender(path)
            self.requests.count = count

    def write_summary(self, summary: Mapping[str, Any]) -> None:
        write_json_atomic(self.run_dir / SUMMARY_FILE, summary)

    def close_files(self) -> None:
        """Close every record file; when some cannot be flushed (a full disk), all are still closed and the
        first failure is raised after."""
        failure: OSError | None = None
        for appender in (self.requests, self._passes, self._power):
            if appender is not None:
                try:
                    appender.close()
                except OSError as exc:
                    failure = failure or exc
        if failure is not None:
            raise failure

    def finish(self, status: RunStatus, error: str | None = None, **fields: Any) -> None:
        """Close the record files and write the final manifest with ``status``, ``error`` and ``ended_at``. A
        record file that cannot be flushed does not stop the manifest from being written (with the error)."""
        try:
            self.close_files()
        except OSError as exc:
            error = error or f"{type(exc).__name__}: {exc}"
            if status == RunStatus.COMPLETE:
                status = RunStatus.FAILED
        self.update_manifest(status=status.value, error=error, ended_at=utc_now_iso(), **fields)
        self.finished = True

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.finished:
            return
        try:
            if exc is None:
                self.finish(RunStatus.COMPLETE)
            elif isinstance(exc, KeyboardInterrupt):
                self.finish(RunStatus.PARTIAL, error=interruption(exc))
            else:
                status = RunStatus.PARTIAL if self.requests.count else RunStatus.FAILED
                self.finish(status, error=f"{type(exc).__name__}: {exc}")
        except OSError as write_error:
            if exc is None:  # nothing else to report: the manifest write itself failed
                raise
            # The run already failed (often for the same reason: a full disk); the records written so far stay
            # readable, and the original error is the one to report, not this second one.
            self.finished = True
            self.manifest_write_error = f"{type(write_error).__name__}: {write_error}"
