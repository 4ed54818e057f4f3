"""Read a run directory back: the manifest, and records line by line.

A torn last line (the process died mid-write) is skipped with a :class:`RecordWarning`; so is any other line
that is not a JSON object, with its line number. Reading never fails a run because of one bad line.
"""

from __future__ import annotations

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
)


class RecordWarning(UserWarning):
    """A record line was skipped (torn or not a JSON object)."""


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Yield each JSON object of a ``.jsonl`` file; a missing file yields nothing.

    Blank lines are ignored. A line that does not parse as a JSON object is skipped with a
    :class:`RecordWarning` naming the file and line (a torn last line is the usual cause).
    """
    if not path.exists():
        return
    with path.open("rb") as f:
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
            yield obj


def read_json_object(path: Path, fix: str = "") -> dict[str, Any]:
    """Load a JSON file that must hold an object; a clear error (with ``fix`` appended) when it does not."""
    try:
        obj = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise CapbenchError(f"{path} is not valid JSON ({exc}){fix}") from exc
    if not isinstance(obj, dict):
        raise CapbenchError(f"{path} must hold a JSON object{fix}")
    return obj


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """Load ``run.json``; a clear error when it is missing, unreadable or of an unknown schema version."""
    path = Path(run_dir) / MANIFEST_FILE
    if not path.is_file():
        raise CapbenchError(f"{run_dir} is not a capbench run directory: {MANIFEST_FILE} is missing")
    manifest = read_json_object(path)
    version = manifest.get("schema_version")
    if version not in READABLE_SCHEMA_VERSIONS:
        raise CapbenchError(
            f"{path}: schema_version {version!r} is not one this capbench reads "
            f"({sorted(READABLE_SCHEMA_VERSIONS)}); upgrade capbench"
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
        return iter_jsonl(self.run_dir / PASSES_FILE)

    @property
    def has_passes(self) -> bool:
        return (self.run_dir / PASSES_FILE).is_file()

    def iter_server_metrics(self) -> Iterator[dict[str, Any]]:
        """The ``/metrics`` scrapes of ``server_metrics.jsonl`` (server runners), in file order."""
        return iter_jsonl(self.run_dir / SERVER_METRICS_FILE)

    @property
    def has_server_metrics(self) -> bool:
        return (self.run_dir / SERVER_METRICS_FILE).is_file()


def read_run(run_dir: Path) -> RunData:
    """Read a run directory: ``run.json`` (required), ``requests.jsonl`` and ``power.jsonl`` (optional)."""
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    return RunData(
        run_dir=run_dir,
        manifest=manifest,
        requests=list(iter_jsonl(run_dir / REQUESTS_FILE)),
        power=list(iter_jsonl(run_dir / POWER_FILE)),
    )
