"""The sweep loop: expand, skip what is complete, run the rest, and always leave results behind.

``run_sweep`` validates every point before running any, then runs the points that are not complete (all of
them on a fresh directory; with ``resume``, those whose latest attempt is not ``complete`` on disk), each as
a new attempt in a new run directory (``manifest``). A failed point is recorded with its error and the sweep
goes on. At the end, and on Ctrl-C, it writes ``results.csv`` over every complete point (``capbench
export`` rows with ``sweep_point_id`` and ``sweep_point`` in front), the manifest, and prints the grid.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd
from rich.console import Console
from rich.table import Table

from capbench.clock import utc_now_iso
from capbench.errors import CapbenchError
from capbench.export import COLUMNS, export_runs, write_csv
from capbench.records.writer import replace_file
from capbench.sweep.manifest import (
    MANIFEST_NAME,
    RESULTS_NAME,
    SWEEP_COPY_NAME,
    Attempt,
    PointRecord,
    SweepManifest,
    attempt_dir,
    point_dir,
)
from capbench.sweep.point import Job, Outcome, gpus_needed, run_dir_status, run_point
from capbench.sweep.spec import Point, expand, load_sweep

Executor = Literal["local", "ray"]
SWEEP_COLUMNS: tuple[str, ...] = ("sweep_point_id", "sweep_point")
"""Columns ``results.csv`` adds in front of the export's: the point's id and its settings as ``k=v, ...``."""


@dataclass(frozen=True)
class SweepOptions:
    sweep_file: Path
    out: Path
    executor: Executor = "local"
    resume: bool = False
    ray_address: str | None = None
    python: str | None = None
    """Interpreter for the points' ``capbench run`` processes (default: this one)."""


def plan(sweep_file: Path) -> list[Point]:
    """Every point of the sweep file, validated (raises :class:`~capbench.errors.ConfigError` on the first bad one)."""
    return expand(load_sweep(sweep_file), base_dir=sweep_file.parent)


def points_table(points: Sequence[Point], title: str) -> Table:
    """The expanded grid: id, origin and one column per swept setting."""
    keys: list[str] = []
    for point in points:
        keys.extend(k for k in point.assignment if k not in keys)
    table = Table(title=title)
    for column in ("#", "point id", *keys, "from"):
        table.add_column(column)
    for i, point in enumerate(points, 1):
        values = [_cell(point.assignment[k]) if k in point.assignment else "" for k in keys]
        table.add_row(str(i), point.id, *values, point.origin)
    return table


def _cell(value: object) -> str:
    return "null" if value is None else str(value)


def _open_manifest(options: SweepOptions, points: Sequence[Point]) -> SweepManifest:
    out = options.out
    existing = (out / MANIFEST_NAME).is_file()
    if existing and not options.resume:
        raise CapbenchError(
            f"{out} already holds a sweep ({MANIFEST_NAME}); pass --resume to continue it, or choose another --out"
        )
    if not existing and out.exists() and any(out.iterdir()):
        raise CapbenchError(f"{out} exists and is not a sweep directory; choose an empty or new --out")
    out.mkdir(parents=True, exist_ok=True)
    name = load_sweep(options.sweep_file).name
    if existing:
        manifest = SweepManifest.load(out)
        manifest.executor = options.executor
    else:
        manifest = SweepManifest(out=out, name=name, sweep_file=str(options.sweep_file), executor=options.executor)
    shutil.copyfile(options.sweep_file, out / SWEEP_COPY_NAME)
    manifest.add_points(points)
    manifest.refresh_from_disk()
    manifest.state = "running"
    manifest.runs.append(
        {"started_at": utc_now_iso(), "ended_at": None, "executor": options.executor, "resume": options.resume}
    )
    manifest.save()
    for point in points:
        config = point_dir(out, point.id) / "config.yaml"
        config.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(config, point.config_yaml().encode())
    return manifest


def write_bytes(path: Path, data: bytes) -> None:
    """Atomically replace ``path`` with ``data``."""
    replace_file(path, lambda f: f.write(data))


def write_results(manifest: SweepManifest) -> tuple[Path, pd.DataFrame]:
    """``results.csv`` over every complete point (header only when none is); returns its path and frame."""
    done: list[tuple[PointRecord, str]] = []
    for record in manifest.points.values():
        run_dir = record.complete_run_dir()
        if run_dir is not None:
            done.append((record, run_dir))
    frame = export_runs([manifest.out / d for _, d in done]) if done else pd.DataFrame(columns=list(COLUMNS))
    frame.insert(0, "sweep_point", [r.label for r, _ in done])
    frame.insert(0, "sweep_point_id", [r.id for r, _ in done])
    path = manifest.out / RESULTS_NAME
    write_csv(frame, path)
    return path, frame


def summary_table(manifest: SweepManifest, frame: pd.DataFrame) -> Table:
    """The grid after the sweep: each point's settings, status, attempts, last duration and headline figures."""
    by_id = {str(row["sweep_point_id"]): row for _, row in frame.iterrows()}
    table = Table(title=f"sweep {manifest.name or manifest.out}: {_counts(manifest)}")
    for column in (
        "point id",
        "settings",
        "status",
        "attempts",
        "duration (s)",
        "accuracy",
        "output tok/s",
        "USD/1M tok",
    ):
        table.add_column(column)
    for record in manifest.points.values():
        row = by_id.get(record.id)
        last = record.attempts[-1] if record.attempts else None
        table.add_row(
            record.id,
            record.label,
            record.status,
            str(len(record.attempts)),
            "—" if last is None or last.duration_s is None else f"{last.duration_s:.1f}",
            _figure(row, "accuracy"),
            _figure(row, "output_tokens_per_s"),
            _figure(row, "usd_per_1m_output_tokens"),
        )
    return table


def _figure(row: pd.Series | None, column: str) -> str:
    if row is None or column not in row or pd.isna(row[column]):
        return "—"
    return f"{float(row[column]):.4g}"


def _counts(manifest: SweepManifest) -> str:
    return ", ".join(f"{n} {status}" for status, n in sorted(manifest.counts().items()))


def run_sweep(options: SweepOptions, console: Console) -> int:
    """Run the sweep; 0 when every point is complete, 1 when any is not. Ctrl-C propagates after the wrap-up."""
    points = plan(options.sweep_file)
    manifest = _open_manifest(options, points)
    todo = [p for p in points if manifest.points[p.id].status != "complete"]
    for point in points:
        if point not in todo:
            console.print(
                f"skip {point.id} ({point.label()}): complete in {manifest.points[point.id].complete_run_dir()}"
            )
    console.print(f"sweep: {len(points)} points, {len(todo)} to run ({options.executor}) -> {options.out}")
    interrupted = False
    try:
        if options.executor == "ray":
            _run_ray(options, manifest, todo, console)
        else:
            _run_local(options, manifest, todo, console)
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        manifest.refresh_from_disk()
        manifest.state = "interrupted" if interrupted else "finished"
        manifest.runs[-1]["ended_at"] = utc_now_iso()
        manifest.save()
        path, frame = write_results(manifest)
        console.print(summary_table(manifest, frame))
        console.print(f"results: {path} ({len(frame)} complete points); manifest: {options.out / MANIFEST_NAME}")
    return 0 if all(manifest.points[p.id].status == "complete" for p in points) else 1


def _report(console: Console, i: int, total: int, point: Point, outcome: Outcome) -> None:
    colour = {"complete": "green", "partial": "yellow", "failed": "red"}[outcome.status]
    line = f"[{i}/{total}] {point.id} ({point.label()}): [{colour}]{outcome.status}[/] in {outcome.duration_s:.1f} s"
    console.print(line + (f"\n    {outcome.error}" if outcome.error else ""), highlight=False)


def _run_local(options: SweepOptions, manifest: SweepManifest, todo: Sequence[Point], console: Console) -> None:
    """One point at a time, each in a fresh process (points may each use every GPU of the machine)."""
    for i, point in enumerate(todo, 1):
        n = manifest.next_attempt(point.id)
        attempt = manifest.start_attempt(point.id, n)
        started = time.monotonic()
        with console.status(f"[{i}/{len(todo)}] {point.id} ({point.label()}): running, attempt {n}"):
            try:
                outcome = run_point(
                    point_dir(options.out, point.id) / "config.yaml",
                    attempt_dir(options.out, point.id, n),
                    options.out / attempt.log,
                    python=options.python,
                )
            except KeyboardInterrupt:
                _finish_interrupted(manifest, attempt, time.monotonic() - started)
                raise
        manifest.finish_attempt(attempt, outcome)
        _report(console, i, len(todo), point, outcome)


def _finish_interrupted(manifest: SweepManifest, attempt: Attempt, duration_s: float) -> None:
    status = run_dir_status(manifest.out / attempt.run_dir)
    manifest.finish_attempt(attempt, Outcome(status, None, duration_s, "interrupted (Ctrl-C or SIGTERM)"))


FORWARDED_PREFIXES: tuple[str, ...] = ("CAPBENCH_", "HF_", "VLLM_", "TRANSFORMERS_")
"""Environment variables a Ray worker's point gets from the driver (workers have the environment of the node's
``ray start``, not of this shell): capbench's, the Hugging Face hub's (offline mode) and vLLM's settings."""


def worker_environment(points: Sequence[Point]) -> dict[str, str]:
    """The driver's :data:`FORWARDED_PREFIXES` variables, plus each point's API-key variable when it is set."""
    env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_PREFIXES)}
    for point in points:
        key = point.spec.api_key_env
        if key and key in os.environ:
            env[key] = os.environ[key]
    return env


def _run_ray(options: SweepOptions, manifest: SweepManifest, todo: Sequence[Point], console: Console) -> None:
    """Every point as a Ray task on the cluster at ``ray_address``; run directories gathered under OUT."""
    from capbench.sweep.ray_executor import cluster_has_gpus, run_on_ray

    if not options.ray_address:
        raise CapbenchError("--executor ray needs --ray-address (e.g. 127.0.0.1:6379, or 'auto')")
    gpus = cluster_has_gpus(options.ray_address)
    points = {point.id: point for point in todo}
    jobs: list[Job] = []
    for point in todo:
        n = manifest.next_attempt(point.id)
        jobs.append(
            Job(
                point_id=point.id,
                config_yaml=point.config_yaml(),
                run_dir=attempt_dir(options.out, point.id, n),
                log_path=point_dir(options.out, point.id) / f"attempt-{n}.log",
                gpus=gpus_needed(point.spec, gpus_available=gpus),
            )
        )
    started: dict[str, tuple[Attempt, float]] = {}
    finished = 0

    def on_start(job: Job) -> None:
        n = int(job.run_dir.name.removeprefix("attempt-"))
        started[job.point_id] = (manifest.start_attempt(job.point_id, n), time.monotonic())

    def on_done(job: Job, outcome: Outcome) -> None:
        nonlocal finished
        finished += 1
        attempt, _ = started.pop(job.point_id)
        manifest.finish_attempt(attempt, outcome)
        _report(console, finished, len(jobs), points[job.point_id], outcome)

    env = worker_environment(todo)
    try:
        run_on_ray(jobs, address=options.ray_address, on_start=on_start, on_done=on_done, cwd=Path.cwd(), env=env)
    except KeyboardInterrupt:
        for attempt, t0 in started.values():  # dispatched, never reported back
            _finish_interrupted(manifest, attempt, time.monotonic() - t0)
        raise
