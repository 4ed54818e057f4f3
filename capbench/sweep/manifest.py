"""The sweep's own record, ``sweep.json`` in its output directory, and the directory layout.

Layout of ``OUT/``::

    sweep.yaml                    the sweep file as given (provenance)
    sweep.json                    this manifest: every point, its status, attempts and durations
    points/<id>/config.yaml       the settings base and assignment give (what ``capbench run`` received)
    points/<id>/attempt-<n>/      attempt n's run directory (a fresh one per attempt, never reused)
    points/<id>/attempt-<n>.log   attempt n's ``capbench run`` output
    results.csv                   ``capbench export`` of every complete point, plus sweep_point_id / sweep_point

A point's status is that of its latest attempt, read back from the run directory on disk (so a manifest
left behind by a killed sweep cannot claim more than the directories hold): ``pending`` (never attempted),
``running``, ``complete``, ``partial`` or ``failed``. Points an edited sweep file no longer has stay on record
with ``in_grid: false`` and are left out of ``results.csv``. The manifest is replaced atomically after every
change; one sweep at a time may use a directory (``.sweep.lock``, an exclusive ``flock``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from capbench import __version__
from capbench.clock import utc_now_iso
from capbench.errors import CapbenchError
from capbench.records.writer import write_json_atomic
from capbench.sweep.point import Outcome, run_dir_status
from capbench.sweep.spec import Point

SWEEP_SCHEMA_VERSION = 1
MANIFEST_NAME = "sweep.json"
SWEEP_COPY_NAME = "sweep.yaml"
RESULTS_NAME = "results.csv"
POINTS_DIR = "points"


def point_dir(out: Path, point_id: str) -> Path:
    return out / POINTS_DIR / point_id


def attempt_dir(out: Path, point_id: str, n: int) -> Path:
    return point_dir(out, point_id) / f"attempt-{n}"


@dataclass
class Attempt:
    """One ``capbench run`` of a point: where it ran and how it ended (paths relative to the sweep's OUT)."""

    n: int
    run_dir: str
    log: str
    started_at: str
    status: str = "running"
    exit_code: int | None = None
    duration_s: float | None = None
    error: str | None = None


@dataclass
class PointRecord:
    """A point in the manifest: id, where it came from, the settings that distinguish it, and its attempts."""

    id: str
    origin: str
    assignment: dict[str, Any]
    label: str
    attempts: list[Attempt] = field(default_factory=list)
    in_grid: bool = True
    """Whether the sweep file as last run still has this point (results.csv holds only those)."""

    @property
    def status(self) -> str:
        return self.attempts[-1].status if self.attempts else "pending"

    def complete_run_dir(self) -> str | None:
        """The run directory of the attempt that completed, if any (the last complete one)."""
        done = [a for a in self.attempts if a.status == "complete"]
        return done[-1].run_dir if done else None


@dataclass
class SweepManifest:
    """``sweep.json``: the sweep's identity, executor, state and every point."""

    out: Path
    name: str | None
    sweep_file: str
    executor: str
    points: dict[str, PointRecord] = field(default_factory=dict)
    created_at: str = field(default_factory=utc_now_iso)
    state: str = "running"
    """``running``, ``finished`` (every point attempted), or ``interrupted``."""
    runs: list[dict[str, Any]] = field(default_factory=list)
    """One entry per ``capbench sweep`` invocation on this directory: started_at, ended_at, executor, resume."""

    def add_points(self, points: Iterable[Point]) -> None:
        """Make ``points`` the current grid: existing records keep their attempts and take the current origin,
        assignment and label; records of an earlier grid stay on record after them, ``in_grid`` false."""
        ordered: dict[str, PointRecord] = {}
        for point in points:
            record = self.points.get(point.id) or PointRecord(point.id, point.origin, point.assignment, point.label())
            record.origin, record.assignment, record.label = point.origin, point.assignment, point.label()
            record.in_grid = True
            ordered[point.id] = record
        for pid, record in self.points.items():
            if pid not in ordered:
                record.in_grid = False
                ordered[pid] = record
        self.points = ordered

    def refresh_from_disk(self) -> None:
        """Re-read every attempt's status from its run directory (a killed sweep may have left ``running``)."""
        for record in self.points.values():
            for attempt in record.attempts:
                status = run_dir_status(self.out / attempt.run_dir)
                if attempt.status == "running" and status != "complete" and attempt.error is None:
                    attempt.error = "the sweep stopped while this attempt ran (killed, or the machine was lost)"
                attempt.status = status

    def next_attempt(self, point_id: str) -> int:
        """1 + the highest attempt number on record or on disk: an attempt directory is never reused."""
        record = self.points[point_id]
        names = (
            p.name.removeprefix("attempt-").removesuffix(".log")
            for p in point_dir(self.out, point_id).glob("attempt-*")
        )
        on_disk = [int(n) for n in names if n.isdigit()]  # directories and logs: neither is ever reused
        return 1 + max([a.n for a in record.attempts] + on_disk, default=0)

    def start_attempt(self, point_id: str, n: int) -> Attempt:
        attempt = Attempt(
            n=n,
            run_dir=str(attempt_dir(self.out, point_id, n).relative_to(self.out)),
            log=str((point_dir(self.out, point_id) / f"attempt-{n}.log").relative_to(self.out)),
            started_at=utc_now_iso(),
        )
        self.points[point_id].attempts.append(attempt)
        self.save()
        return attempt

    def finish_attempt(self, attempt: Attempt, outcome: Outcome) -> None:
        attempt.status = outcome.status
        attempt.exit_code = outcome.exit_code
        attempt.duration_s = outcome.duration_s
        attempt.error = outcome.error
        self.save()

    def to_json(self) -> dict[str, Any]:
        return {
            "sweep_schema_version": SWEEP_SCHEMA_VERSION,
            "capbench_version": __version__,
            "name": self.name,
            "sweep_file": self.sweep_file,
            "executor": self.executor,
            "created_at": self.created_at,
            "updated_at": utc_now_iso(),
            "state": self.state,
            "runs": self.runs,
            "counts": self.counts(),
            "points": [
                {**asdict(record), "status": record.status, "run_dir": record.complete_run_dir()}
                for record in self.points.values()
            ],
        }

    def counts(self) -> dict[str, int]:
        """Points of the current grid per status."""
        out: dict[str, int] = {}
        for record in self.points.values():
            if not record.in_grid:
                continue
            out[record.status] = out.get(record.status, 0) + 1
        return out

    def save(self) -> None:
        write_json_atomic(self.out / MANIFEST_NAME, self.to_json())

    @classmethod
    def load(cls, out: Path) -> SweepManifest:
        path = out / MANIFEST_NAME
        try:
            data = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise CapbenchError(f"cannot read the sweep manifest {path}: {exc}") from exc
        if not isinstance(data, dict) or data.get("sweep_schema_version") != SWEEP_SCHEMA_VERSION:
            raise CapbenchError(f"{path} is not a sweep manifest this capbench reads (schema {SWEEP_SCHEMA_VERSION})")
        manifest = cls(
            out=out,
            name=data.get("name"),
            sweep_file=str(data.get("sweep_file")),
            executor=str(data.get("executor")),
            created_at=str(data.get("created_at")),
            state=str(data.get("state")),
            runs=list(data.get("runs") or []),
        )
        for entry in data.get("points") or []:
            attempts = [Attempt(**a) for a in entry.get("attempts") or []]
            manifest.points[entry["id"]] = PointRecord(
                entry["id"],
                entry.get("origin", "grid"),
                entry.get("assignment") or {},
                entry.get("label", ""),
                attempts,
                bool(entry.get("in_grid", True)),
            )
        return manifest
