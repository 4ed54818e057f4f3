"""The sweep loop: expand, skip what is complete, run the rest, and always leave results behind.

``run_sweep`` validates every point before running any, then runs the points that are not complete (all of
them on a fresh directory; with ``resume``, those whose latest attempt is not ``complete`` on disk), each as
a new attempt in a new run directory (``manifest``). A failed point is recorded with its error and the sweep
goes on. At the end, and on Ctrl-C, it writes ``results.csv`` over every complete point (``capbench
export`` rows with ``sweep_point_id`` and ``sweep_point`` in front), the manifest, and prints the grid.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd
from rich.console import Console
from rich.table import Table

from capbench.clock import utc_now_iso
from capbench.config import RunSpec
from capbench.errors import CapbenchError
from capbench.paths import replace_file
from capbench.runners import runner_traits
from capbench.summary.columns import NAMES as COLUMNS
from capbench.summary.export import export_runs
from capbench.sweep.manifest import (
    MANIFEST_NAME,
    RESULTS_NAME,
    SWEEP_COPY_NAME,
    Attempt,
    SweepManifest,
    attempt_dir,
    point_dir,
)
from capbench.sweep.point import Job, Outcome, gpus_needed, run_dir_status, run_point
from capbench.sweep.spec import Point, expand, load_sweep

Executor = Literal["local", "ray"]
LOCK_NAME = ".sweep.lock"
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
    repeats: int | None = None
    """``--repeats N``: ``repeats: N`` added to every point's settings (so to their ids)."""


def plan(sweep_file: Path, repeats: int | None = None) -> list[Point]:
    """Every point of the sweep file, validated (raises :class:`~capbench.errors.ConfigError` on the first bad one);
    ``repeats`` sets every point's ``repeats`` (each point then runs that many times, docs/summary.md "Repeats")."""
    sweep = load_sweep(sweep_file)
    if repeats is not None:
        sweep = sweep.model_copy(update={"base": {**sweep.base, "repeats": repeats}})
    return expand(sweep, base_dir=sweep_file.parent)


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


def _open_manifest(options: SweepOptions, points: Sequence[Point], console: Console) -> SweepManifest:
    out = options.out
    existing = (out / MANIFEST_NAME).is_file()
    if existing and not options.resume:
        raise CapbenchError(
            f"{out} already holds a sweep ({MANIFEST_NAME}); pass --resume to continue it, or choose another --out"
        )
    name = load_sweep(options.sweep_file).name
    if existing:
        manifest = SweepManifest.load(out)
        manifest.executor = options.executor
    else:
        manifest = SweepManifest(out=out, name=name, sweep_file=str(options.sweep_file), executor=options.executor)
    copy = out / SWEEP_COPY_NAME
    text = options.sweep_file.read_bytes()
    if not (copy.exists() and copy.resolve() == options.sweep_file.resolve()):
        write_bytes(copy, text)  # the sweep file as last run (each run's hash is in runs[])
    cwd = str(Path.cwd())
    earlier = [r.get("cwd") for r in manifest.runs if r.get("cwd")]
    if earlier and earlier[-1] != cwd:
        console.print(
            f"[yellow]warning:[/] this sweep last ran from {earlier[-1]}; relative paths in its settings (model "
            f"directories, prompt files) now resolve from {cwd}",
            highlight=False,
        )
    manifest.add_points(points)
    manifest.refresh_from_disk()
    manifest.state = "running"
    manifest.runs.append(
        {
            "started_at": utc_now_iso(),
            "ended_at": None,
            "executor": options.executor,
            "resume": options.resume,
            "sweep_file": str(options.sweep_file),
            "sweep_sha256": hashlib.sha256(text).hexdigest(),
            "cwd": cwd,
            "error": None,
        }
    )
    manifest.save()
    for point in points:
        config = point_dir(out, point.id) / "config.yaml"
        config.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(config, point.config_yaml().encode())
    return manifest


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[int]:
    """Hold an exclusive lock on ``OUT/.sweep.lock`` (one sweep per directory); refuse at once when it is held.

    Yields the lock's file descriptor: the local executor hands it to each point's process, so the lock stays
    held until the last process that works in ``OUT`` has exited, even when the sweep itself was killed.
    """
    out.mkdir(parents=True, exist_ok=True)
    with (out / LOCK_NAME).open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise CapbenchError(
                f"another capbench sweep (or a point it started) is using {out} right now; wait for it or stop it"
            ) from exc
        yield handle.fileno()  # closing the file at the end releases this process's hold on the lock


def write_bytes(path: Path, data: bytes) -> None:
    """Atomically replace ``path`` with ``data``."""
    replace_file(path, lambda f: f.write(data))


def write_results(manifest: SweepManifest, console: Console) -> tuple[Path, pd.DataFrame]:
    """``results.csv`` over every complete point of the current grid (header only when none is), replaced
    atomically; a run directory that cannot be exported is skipped with a warning, never the whole file."""
    rows: list[pd.DataFrame] = []
    for record in manifest.points.values():
        run_dir = record.complete_run_dir()
        if run_dir is None or not record.in_grid:
            continue
        try:
            row = export_runs([manifest.out / run_dir])
        except CapbenchError as exc:
            console.print(f"[yellow]warning:[/] {record.id} left out of {RESULTS_NAME}: {exc}", highlight=False)
            continue
        row.insert(0, "sweep_point", [record.label])
        row.insert(0, "sweep_point_id", [record.id])
        rows.append(row)
    empty = pd.DataFrame(columns=[*SWEEP_COLUMNS, *COLUMNS])
    frame = pd.concat(rows, ignore_index=True) if rows else empty
    path = manifest.out / RESULTS_NAME
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    write_bytes(path, buffer.getvalue().encode())
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
        if not record.in_grid:
            continue
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
    """Run the sweep; 0 when every point is complete, 1 when any is not. Ctrl-C propagates after the wrap-up.

    Everything that can be checked is checked before the output directory is touched: every point, and for
    ``ray`` the cluster and the points' GPU settings.
    """
    points = plan(options.sweep_file, options.repeats)
    out = options.out
    if out.exists() and not out.is_dir():
        raise CapbenchError(f"--out {out} is a file, not a directory")
    if out.is_dir() and not (out / MANIFEST_NAME).is_file() and any(p.name != LOCK_NAME for p in out.iterdir()):
        raise CapbenchError(f"{out} exists and is not a sweep directory; choose an empty or new --out")
    if options.executor == "ray":
        _check_ray(options, points)
    with _locked(out) as lock_fd:
        manifest = _open_manifest(options, points, console)
        done = {p.id for p in points if manifest.points[p.id].status == "complete"}
        todo = [p for p in points if p.id not in done]
        for point in points:
            if point.id in done:
                where = manifest.points[point.id].complete_run_dir()
                console.print(f"skip {point.id} ({point.label()}): complete in {where}", highlight=False)
        console.print(f"sweep: {len(points)} points, {len(todo)} to run ({options.executor}) -> {options.out}")
        state, error = "finished", None
        try:
            if options.executor == "ray":
                _run_ray(options, manifest, todo, console)
            else:
                _run_local(options, manifest, todo, console, lock_fd)
        except KeyboardInterrupt:
            state = "interrupted"
            raise
        except BaseException as exc:
            state, error = "failed", f"{type(exc).__name__}: {exc}"
            raise
        finally:
            _wrap_up(manifest, state, error, console)
    return 0 if all(manifest.points[p.id].status == "complete" for p in points) else 1


def _wrap_up(manifest: SweepManifest, state: str, error: str | None, console: Console) -> None:
    """Manifest, results.csv and the summary, whatever ended the sweep; a problem here never hides that cause."""
    try:
        manifest.refresh_from_disk()
        manifest.state = state
        manifest.runs[-1].update(ended_at=utc_now_iso(), error=error)
        manifest.save()
        path, frame = write_results(manifest, console)
        console.print(summary_table(manifest, frame))
        console.print(f"results: {path} ({len(frame)} complete points); manifest: {manifest.out / MANIFEST_NAME}")
    except Exception as exc:  # e.g. a full disk: say so, and let the original outcome stand
        console.print(f"[red]error:[/] could not write the sweep's results: {exc}", highlight=False)


def _check_ray(options: SweepOptions, points: Sequence[Point]) -> None:
    """Before anything is written: Ray assigns each task its GPUs, so a point may not pin ``gpus`` itself; the
    cluster must answer (connecting now, not after the output directory exists)."""
    pinned = [p for p in points if p.spec.gpus]
    if pinned:
        raise CapbenchError(
            f"point {pinned[0].id} ({pinned[0].label()}) sets gpus: {pinned[0].spec.gpus}; with --executor ray "
            "Ray assigns each point its GPUs, so leave gpus unset (the point asks for the GPUs its settings need)"
        )
    if not options.ray_address:
        raise CapbenchError("--executor ray needs --ray-address (e.g. 127.0.0.1:6379, or 'auto')")
    from capbench.sweep.ray_executor import cluster_has_gpus

    cluster_has_gpus(options.ray_address)  # connects, or raises a clear error naming the address


def _report(console: Console, i: int, total: int, point: Point, outcome: Outcome) -> None:
    color = {"complete": "green", "partial": "yellow", "failed": "red"}[outcome.status]
    line = f"[{i}/{total}] {point.id} ({point.label()}): [{color}]{outcome.status}[/] in {outcome.duration_s:.1f} s"
    console.print(line + (f"\n    {outcome.error}" if outcome.error else ""), highlight=False)


def _run_local(
    options: SweepOptions, manifest: SweepManifest, todo: Sequence[Point], console: Console, lock_fd: int
) -> None:
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
                    pass_fds=(lock_fd,),
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
NOT_FORWARDED: frozenset[str] = frozenset({"VLLM_HOST_IP", "CAPBENCH_VLLM_PYTHON", "CAPBENCH_CHROMIUM"})
"""Machine-specific settings: each node has its own."""
SECRET_MARKERS: tuple[str, ...] = ("TOKEN", "KEY", "SECRET", "PASSWORD")
"""A variable whose name holds one of these is never sent through Ray (API keys must be set on the workers)."""


def worker_environment() -> dict[str, str]:
    """The driver's :data:`FORWARDED_PREFIXES` variables, without machine-specific ones and without secrets."""
    return {
        key: value
        for key, value in os.environ.items()
        if key.startswith(FORWARDED_PREFIXES)
        and key not in NOT_FORWARDED
        and not any(marker in key.upper() for marker in SECRET_MARKERS)
    }


def computes_locally(spec: RunSpec) -> bool:
    """Whether the point computes on the machine it runs on (hf, or a vLLM it launches), not on a server elsewhere."""
    return runner_traits(spec.runner).computes_locally(spec)


def _run_ray(options: SweepOptions, manifest: SweepManifest, todo: Sequence[Point], console: Console) -> None:
    """Every point as a Ray task on the cluster at ``ray_address``; run directories gathered under OUT."""
    from capbench.sweep.ray_executor import cluster_has_gpus, run_on_ray

    assert options.ray_address is not None  # checked by _check_ray
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
                gpus=(needed := gpus_needed(point.spec, gpus_available=gpus)),
                whole_node=needed == 0 and computes_locally(point.spec),
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
        entry = started.pop(job.point_id, None)
        if entry is None:  # cannot happen: on_start precedes submission; never lose the outcome to a KeyError
            entry = (manifest.start_attempt(job.point_id, int(job.run_dir.name.removeprefix("attempt-"))), 0.0)
        manifest.finish_attempt(entry[0], outcome)
        _report(console, finished, len(jobs), points[job.point_id], outcome)

    env = worker_environment()
    try:
        run_on_ray(jobs, address=options.ray_address, on_start=on_start, on_done=on_done, env=env)
    except KeyboardInterrupt:
        for attempt, t0 in started.values():  # dispatched, never reported back
            _finish_interrupted(manifest, attempt, time.monotonic() - t0)
        raise
