"""Run sweep points as tasks on an existing Ray cluster (``capbench sweep --executor ray``): the driver side.

Ray is optional (``pip install 'capbench[ray]'``) and imported only inside these functions. The driver
connects with ``ray.init(address=...)`` (usage statistics off; an address nothing answers is reported at
once), submits each :class:`~capbench.sweep.point.Job` as one task of
:func:`capbench.sweep.ray_worker.execute_point` (``num_gpus=job.gpus``; every CPU of the largest node for a
``whole_node`` job, else one; never retried; a job needing more GPUs than the largest node has is not
submitted and is reported failed), and as each task ends unpacks its run directory into ``job.run_dir``
(:func:`capbench.sweep.archive.extract_run_archive`), appends its log, recomputes the status and calls
``on_done(job, Outcome)``. Ctrl-C cancels the outstanding tasks and waits up to :data:`CANCEL_WAIT_S` seconds
for their partial runs (a second Ctrl-C force-cancels). The full behavior is in docs/sweep.md.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from capbench.errors import CapbenchError, one_line
from capbench.sweep.archive import extract_run_archive
from capbench.sweep.point import ERROR_TAIL_CHARS, Job, Outcome, run_dir_status
from capbench.sweep.ray_worker import execute_point

CANCEL_WAIT_S = 90.0
"""How long the driver waits, after Ctrl-C, for cancelled tasks to hand back their partial runs."""
CONNECT_PROBE_S = 5.0
"""Timeout of the TCP probe of ``host:port`` before connecting (Ray itself waits minutes on a dead address)."""
WAIT_POLL_S = 1.0
""":func:`ray.wait` timeout per loop (keeps the driver responsive to Ctrl-C)."""
INSTALL_HINT = "pip install 'capbench[ray]'"


def _import_ray() -> ModuleType:
    try:
        import ray
    except ImportError as exc:
        raise CapbenchError(
            f"the Ray executor needs the Python package 'ray', which is not installed: {INSTALL_HINT}"
        ) from exc
    return ray


def _probe(address: str) -> None:
    """Fail fast, naming the address, when ``host:port`` refuses TCP (``auto``/``local`` are left to Ray)."""
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit():
        return
    host = host.strip("[]")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_PROBE_S).close()
    except OSError as exc:
        raise CapbenchError(_connect_message(address, exc)) from exc


def _connect_message(address: str, exc: BaseException) -> str:
    reason = one_line(exc, ERROR_TAIL_CHARS)
    return (
        f"cannot connect to the Ray cluster at {address!r} ({reason}). Start one with `ray start --head "
        f"--port=6379 --disable-usage-stats` on the head machine (and `ray start --address=HEAD:6379` on the "
        f"others), then pass its address (HEAD:6379), or check the address and that its port is reachable"
    )


def _connect(address: str) -> ModuleType:
    """Import Ray and connect this driver to the cluster at ``address`` (a no-op when already connected)."""
    ray = _import_ray()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        return ray
    _probe(address)
    try:
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, logging_level="ERROR")
    except (ConnectionError, ValueError, RuntimeError, TimeoutError) as exc:
        raise CapbenchError(_connect_message(address, exc)) from exc
    return ray


def cluster_has_gpus(address: str) -> bool:
    """Whether the Ray cluster at ``address`` has any GPU (connecting this driver to it if needed)."""
    ray = _connect(address)
    return float(ray.cluster_resources().get("GPU", 0) or 0) > 0


def _append_log(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as log:
        log.write(data)


def _gather(job: Job, result: tuple[dict[str, Any], bytes | None, bytes]) -> Outcome:
    """The driver's half of a finished task: unpack its run directory and log, and recompute the status."""
    fields, archive, log = result
    _append_log(job.log_path, log)
    problem: str | None = None
    if archive is not None:
        try:
            extract_run_archive(archive, job.run_dir)
        except CapbenchError as exc:
            problem = f"cannot gather the run directory: {exc}"
            _append_log(job.log_path, f"[capbench sweep] {problem}\n".encode())
    status = run_dir_status(job.run_dir)
    worker = Outcome(**fields)
    error: str | None = None
    if status != "complete" or problem is not None:
        error = "; ".join(e for e in (problem, worker.error) if e) or f"the point ended {status} on the worker"
    return Outcome(status, worker.exit_code, worker.duration_s, error)


def _failure(ray: ModuleType, job: Job, exc: BaseException, started: float) -> Outcome:
    if isinstance(exc, ray.exceptions.TaskCancelledError):
        error = "cancelled (Ctrl-C) before the point could start or hand back its run"
    else:
        error = f"Ray task failed: {one_line(exc, ERROR_TAIL_CHARS)}"[-ERROR_TAIL_CHARS:]
    with contextlib.suppress(OSError):
        _append_log(job.log_path, f"[capbench sweep] {error}\n".encode())
    return Outcome("failed", None, time.monotonic() - started, error)


def run_on_ray(
    jobs: Sequence[Job],
    *,
    address: str,
    on_start: Callable[[Job], None],
    on_done: Callable[[Job, Outcome], None],
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> None:
    """Run ``jobs`` as Ray tasks on the cluster at ``address``; ``on_done`` as each ends (module docstring).

    ``cwd`` is the points' working directory on the workers (default: this process's working directory where
    it exists on the worker, else a temporary directory); ``env`` is added to the workers' environment.
    Raises :class:`CapbenchError` when Ray is missing, the cluster cannot be reached, or a run directory
    already exists; re-raises :class:`KeyboardInterrupt` after cancelling.
    """
    for job in jobs:
        if job.run_dir.exists() or job.run_dir.is_symlink():
            raise CapbenchError(
                f"run directory {job.run_dir} already exists (point {job.point_id}); refusing to overwrite"
            )
    if not jobs:
        return
    ray = _connect(address)
    cwd_fallback = cwd is None
    if cwd is None:
        try:
            cwd = Path.cwd()
        except OSError:
            cwd = None
    task = ray.remote(execute_point)
    pending: dict[Any, tuple[Job, float]] = {}
    node_gpus, node_cpus = _largest_node(ray)
    try:
        try:
            for job in jobs:
                on_start(job)  # before submission: a Ctrl-C in between leaves no task the caller does not know of
                if job.gpus > node_gpus:
                    on_done(job, _infeasible(job, node_gpus))
                    continue
                options = {
                    "num_cpus": node_cpus if job.whole_node else 1,
                    "num_gpus": job.gpus,
                    "max_retries": 0,
                    "name": f"capbench-point-{job.point_id}",
                }
                ref = task.options(**options).remote(
                    job.point_id,
                    job.config_yaml,
                    job.log_path.name,
                    dict(env) if env is not None else None,
                    str(cwd) if cwd is not None else None,
                    cwd_fallback,
                )
                pending[ref] = (job, time.monotonic())
            _drain(ray, pending, on_done, deadline=None)
        except KeyboardInterrupt:
            _cancel(ray, pending, force=False)
            try:
                _drain(ray, pending, on_done, deadline=time.monotonic() + CANCEL_WAIT_S)
            except KeyboardInterrupt:
                _cancel(ray, pending, force=True)
            raise
        except BaseException:
            _cancel(ray, pending, force=False)
            raise
    finally:
        ray.shutdown()


def _largest_node(ray: ModuleType) -> tuple[float, float]:
    """(GPUs, CPUs) of the alive node with the most GPUs (then CPUs): what one task can ask for at most."""
    best = (0.0, 1.0)
    for node in ray.nodes():
        if node.get("Alive"):
            resources = node.get("Resources") or {}
            best = max(best, (float(resources.get("GPU", 0) or 0), float(resources.get("CPU", 1) or 1)))
    return best


def _infeasible(job: Job, node_gpus: float) -> Outcome:
    error = (
        f"needs {job.gpus} GPU(s) on one node but the cluster's largest node has {node_gpus:g}: "
        "not submitted (Ray would wait for it forever)"
    )
    with contextlib.suppress(OSError):
        _append_log(job.log_path, f"[capbench sweep] {error}\n".encode())
    return Outcome("failed", None, 0.0, error)


def _drain(
    ray: ModuleType,
    pending: dict[Any, tuple[Job, float]],
    on_done: Callable[[Job, Outcome], None],
    *,
    deadline: float | None,
) -> None:
    """Report tasks as they finish until none is pending (or ``deadline``, a :func:`time.monotonic` value)."""
    while pending:
        timeout = WAIT_POLL_S if deadline is None else min(WAIT_POLL_S, deadline - time.monotonic())
        if timeout <= 0:
            return
        ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=timeout, fetch_local=True)
        for ref in ready:
            job, started = pending.pop(ref)
            try:
                result = ray.get(ref)
            except Exception as exc:  # a Ray error: the worker died, the task raised or was cancelled
                outcome = _failure(ray, job, exc, started)
            else:
                outcome = _gather(job, result)
            on_done(job, outcome)


def _cancel(ray: ModuleType, pending: dict[Any, tuple[Job, float]], *, force: bool) -> None:
    for ref in list(pending):
        with contextlib.suppress(Exception):  # already finished, or the cluster is gone: nothing to cancel
            ray.cancel(ref, force=force)
