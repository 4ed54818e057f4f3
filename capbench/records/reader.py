"""Read a run directory back: the manifest, and records line by line.

A torn last line (the process died mid-write) is skipped with a :class:`RecordWarning`; so is any other line
that is not a JSON object, with its line number. Reading never fails a run because of one torn line. Records
that parse but cannot be true (a string where a count belongs, a negative power, conflicting duplicates) are
refused with a :class:`CapbenchError` naming file, line and value; identical duplicates are dropped with a
warning (:mod:`capbench.records.validate`). The manifest must have a known ``status``, a ``run_id`` and a
``spec``.
"""

from __future__ import annotations

import stat
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from capbench.errors import CapbenchError
from capbench.records.schema import (
    MANIFEST_FILE,
    PASSES_FILE,
    POWER_FILE,
    READABLE_SCHEMA_VERSIONS,
    REQUESTS_FILE,
    SERVER_METRICS_FILE,
    RunStatus,
)
from capbench.records.validate import check_power, check_request, checked, pass_key, power_key, request_key, unique


class RecordWarning(UserWarning):
    """A record line was skipped (torn or not a JSON object)."""


def present(path: Path) -> bool:
    """Whether a record file exists: False only when nothing is there. A path that exists but cannot be a record
    file (a directory, a symlink loop, no permission) is a clear error, never read as absent."""
    try:
        info = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise CapbenchError(f"{path} is a broken symbolic link") from None
        return False
    except OSError as exc:
        raise CapbenchError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if stat.S_ISDIR(info.st_mode):
        raise CapbenchError(f"{path} is a directory, not a record file")
    return True


def iter_jsonl_numbered(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each JSON object of a ``.jsonl`` file; a missing file yields nothing.

    Blank lines are ignored. A line that does not parse as a JSON object is skipped with a
    :class:`RecordWarning` naming the file and line (a torn last line is the usual cause). A path that exists
    but is not a readable file raises :class:`CapbenchError` (:func:`present`).
    """
    if not present(path):
        return
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise CapbenchError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with handle as f:
        lineno = 0
        for lineno, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError:
                torn = not raw.endswith(b"\n")
                what = "torn last line" if torn else "line that is not valid JSON"
                warnings.warn(f"{path}: skipped {what} {lineno}", RecordWarning, stacklevel=2)
                continue
            if not isinstance(obj, dict):
                warnings.warn(f"{path}: skipped line {lineno} (not a JSON object)", RecordWarning, stacklevel=2)
                continue
            yield lineno, obj


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Each JSON object of a ``.jsonl`` file (:func:`iter_jsonl_numbered` without the line numbers)."""
    for _, obj in iter_jsonl_numbered(path):
        yield obj


def read_json_object(path: Path, fix: str = "") -> dict[str, Any]:
    """Load a JSON file that must hold an object; a clear error (with ``fix`` appended) when it does not."""
    if not present(path):
        raise CapbenchError(f"{path} does not exist{fix}")
    try:
        obj = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise CapbenchError(f"cannot read {path}: {exc.strerror or exc}{fix}") from exc
    except orjson.JSONDecodeError as exc:
        raise CapbenchError(f"{path} is not valid JSON ({exc}){fix}") from exc
    if not isinstance(obj, dict):
        raise CapbenchError(f"{path} must hold a JSON object{fix}")
    return obj


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """Load ``run.json``; a clear error when it is missing, unreadable or of an unknown schema version."""
    path = Path(run_dir) / MANIFEST_FILE
    if not present(path):
        raise CapbenchError(f"{run_dir} is not a capbench run directory: {MANIFEST_FILE} is missing")
    manifest = read_json_object(path)
    version = manifest.get("schema_version")
    if version not in READABLE_SCHEMA_VERSIONS:
        raise CapbenchError(
            f"{path}: schema_version {version!r} is not one this capbench reads "
            f"({sorted(READABLE_SCHEMA_VERSIONS)}); upgrade capbench"
        )
    status = manifest.get("status")
    if status not in {s.value for s in RunStatus}:
        raise CapbenchError(
            f"{path}: status {status!r} is not one of {', '.join(s.value for s in RunStatus)}; this is not a "
            "run.json capbench wrote (or it was edited)"
        )
    return manifest


@dataclass
class RunData:
    """A run directory in memory: the manifest and its requests and power samples.

    Passes are not loaded here (a run may hold millions); iterate them with :meth:`iter_passes`. Neither are
    the server's ``/metrics`` scrapes (:meth:`iter_server_metrics`).
    """

    run_dir: Path
    manifest: dict[str, Any]
    requests: list[dict[str, Any]] = field(default_factory=list)
    power: list[dict[str, Any]] = field(default_factory=list)

    def iter_passes(self) -> Iterator[dict[str, Any]]:
        """The step records, identical duplicates dropped, conflicting ones refused (:mod:`.validate`)."""
        path = self.run_dir / PASSES_FILE
        return unique(iter_jsonl_numbered(path), pass_key, path)

    @property
    def has_passes(self) -> bool:
        return present(self.run_dir / PASSES_FILE)

    def iter_server_metrics(self) -> Iterator[dict[str, Any]]:
        """The ``/metrics`` scrapes of ``server_metrics.jsonl`` (server runners), in file order."""
        return iter_jsonl(self.run_dir / SERVER_METRICS_FILE)

    @property
    def has_server_metrics(self) -> bool:
        return present(self.run_dir / SERVER_METRICS_FILE)


def read_requests(path: Path) -> list[dict[str, Any]]:
    """``requests.jsonl``, every record checked and deduplicated (:mod:`.validate`)."""
    return list(unique(checked(iter_jsonl_numbered(path), check_request, path), request_key, path))


def read_power(path: Path) -> list[dict[str, Any]]:
    """``power.jsonl``, every sample checked and deduplicated (:mod:`.validate`)."""
    return list(unique(checked(iter_jsonl_numbered(path), check_power, path), power_key, path))


def read_run(run_dir: Path) -> RunData:
    """Read a run directory: ``run.json`` (required), ``requests.jsonl`` and ``power.jsonl`` (optional), each
    record checked where it enters (:mod:`.validate`)."""
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    return RunData(
        run_dir=run_dir,
        manifest=manifest,
        requests=read_requests(run_dir / REQUESTS_FILE),
        power=read_power(run_dir / POWER_FILE),
    )
