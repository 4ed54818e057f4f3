"""Run sweep points as tasks on an existing Ray cluster (``capbench sweep --executor ray``).

Ray is optional (``pip install 'capbench[ray]'``) and imported only inside the functions here. The driver
connects to a running cluster (``ray start --head`` on one machine, ``ray start --address=HEAD:PORT`` on the
others) with ``ray.init(address=..., log_to_driver=False, logging_level="ERROR")``; usage statistics stay off
(``RAY_USAGE_STATS_ENABLED=0``, as ``ray start --disable-usage-stats`` does). An address that nothing answers is
reported at once, before Ray's own connection attempts (which wait minutes). Every node needs the same
capbench (and the runners' extras) installed in the Python environment its Ray workers use: the task function
is this module's, imported on the worker, and the point runs with the worker's interpreter.

Each :class:`~capbench.sweep.point.Job` becomes one Ray task asking for ``num_gpus=job.gpus`` and ``num_cpus=1``
(every CPU of the largest node for a ``whole_node`` job: a point that computes on the CPU, so no other point
shares the cores it is measured on), never retried (a point that died is recorded, and ``--resume`` runs it
again). A job needing more GPUs than the largest alive node has is not submitted (Ray would queue it forever)
and is reported failed with the reason. On the worker the task:

1. makes a temporary directory and writes ``job.config_yaml`` there as the point's run YAML;
2. runs the point with :func:`~capbench.sweep.point.run_point` (a fresh ``capbench run`` process) into
   ``TMP/run``, its output in ``TMP/<log name>``, in the working directory the driver chose (default: the
   driver's own working directory when that exists on the worker, so relative paths in the run settings mean
   the same; else the temporary directory) and with the worker's environment plus the ``env`` given. Ray's
   per-task defaults that would change the measurement are undone for the point: ``OMP_NUM_THREADS`` (Ray pins
   it to the task's one CPU) and ``PYTHONBREAKPOINT`` go back to the worker process's own values, while
   ``CUDA_VISIBLE_DEVICES`` (the GPUs Ray assigned to the task) is kept;
   The log starts with one line naming the point, the host and the working directory;
3. packs the run directory into a ``tar.gz`` and returns ``(outcome fields, archive bytes or None, log bytes)``.

The driver, as each task finishes (:func:`ray.wait`, any order), unpacks the archive into ``job.run_dir`` (so the
run directory is gathered to the driver's output directory even when the point ran on another machine),
appends the log to ``job.log_path``, recomputes the status with :func:`~capbench.sweep.point.run_dir_status`
and calls ``on_done(job, Outcome)`` with the worker's exit code, duration and error. ``job.run_dir`` must not
exist: :func:`run_on_ray` refuses to start when one does, and a point whose directory appeared meanwhile is
recorded as failed. Unpacking is strict (:func:`extract_run_archive`): members must lie under the archive's
``run/`` folder, with no absolute names, no ``..``, and only files and folders (no links);
the directory appears whole (unpacked beside it, then renamed) or not at all.

``on_start(job)`` is called on the driver just before the job is submitted to Ray (it may then wait for
resources).
A task that raises (the worker died, the node was lost, the task crashed, it was cancelled) is reported as
``on_done(job, Outcome("failed", None, seconds since submission, "<the Ray error on one line>"))``, also
appended to the job's log; the other jobs go on.

Ctrl-C (:class:`KeyboardInterrupt`) on the driver cancels the outstanding tasks (:func:`ray.cancel`): a running
point gets SIGINT and :data:`CHILD_GRACE_S` seconds to write its partial run (then it is killed), which is
gathered like any other; tasks still queued end cancelled (reported as failed). The driver waits up to
:data:`CANCEL_WAIT_S` seconds for all of them, reporting each through ``on_done`` as it ends (a second Ctrl-C
force-cancels the rest at once; Ray then kills the workers and the points' processes with them), then
re-raises :class:`KeyboardInterrupt`. Any other exception (from a callback, say) cancels the outstanding tasks
without waiting and propagates. At the end the driver only disconnects (``ray.shutdown()``); the cluster keeps
running.
"""

from __future__ import annotations

import contextlib
import io
import os
import posixpath
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

from capbench.errors import CapbenchError
from capbench.sweep.point import ERROR_TAIL_CHARS, Job, Outcome, run_dir_status, run_point

CANCEL_WAIT_S = 90.0
"""How long the driver waits, after Ctrl-C, for cancelled tasks to hand back their partial runs."""
CHILD_GRACE_S = 60.0
"""How long a cancelled point's ``capbench run`` process has, after SIGINT, to write its partial run."""
CONNECT_PROBE_S = 5.0
"""Timeout of the TCP probe of ``host:port`` before connecting (Ray itself waits minutes on a dead address)."""
POLL_S = 0.2
"""How often a Ray task's main thread wakes while its point runs (to notice a cancellation)."""
WAIT_POLL_S = 1.0
""":func:`ray.wait` timeout per loop (keeps the driver responsive to Ctrl-C)."""
ARCHIVE_ROOT = "run"
"""The folder every member of a run archive lies under."""
RAY_TASK_ENV_DEFAULTS = ("OMP_NUM_THREADS", "PYTHONBREAKPOINT")
"""Variables Ray sets for each task that a point's process must not inherit (they revert to the worker's own)."""
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
    reason = _one_line(exc)
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


def _one_line(exc: BaseException) -> str:
    """An exception as one line: its type and the last non-empty line of its message (where the reason is)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    name = type(exc).__name__
    text = f"{name}: {lines[-1]}" if lines and not lines[-1].startswith(name) else (lines[-1] if lines else name)
    return text[-ERROR_TAIL_CHARS:]


# --- worker side -------------------------------------------------------------------------------------------------


def _initial_environ() -> dict[str, str] | None:
    """The environment this process started with (``/proc/self/environ``), or None where it cannot be read."""
    try:
        raw = Path("/proc/self/environ").read_bytes()
    except OSError:
        return None
    pairs = (entry.split(b"=", 1) for entry in raw.split(b"\0") if b"=" in entry)
    return {key.decode(errors="replace"): value.decode(errors="replace") for key, value in pairs}


def _point_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    """The worker's environment with Ray's per-task defaults undone, updated with ``extra``."""
    env = dict(os.environ)
    initial = _initial_environ()
    if initial is not None:
        for key in RAY_TASK_ENV_DEFAULTS:
            if key in initial:
                env[key] = initial[key]
            else:
                env.pop(key, None)
    env.update(extra or {})
    return env


def pack_run_dir(run_dir: Path) -> bytes:
    """``run_dir`` as a gzip-compressed tar, its members under :data:`ARCHIVE_ROOT` (a link is refused on unpacking)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as tar:
        tar.add(run_dir, arcname=ARCHIVE_ROOT, recursive=True)
    return buffer.getvalue()


def _execute(
    point_id: str, config_yaml: str, log_name: str, env: Mapping[str, str] | None, cwd: str | None, cwd_fallback: bool
) -> tuple[dict[str, Any], bytes | None, bytes]:
    """The Ray task: run one point in a temporary directory; return its outcome, packed run directory and log."""
    tmp = Path(tempfile.mkdtemp(prefix=f"capbench-{point_id}-"))
    try:
        config = tmp / "point.yaml"
        config.write_text(config_yaml, encoding="utf-8")
        run_dir = tmp / "run"
        log_path = tmp / log_name
        workdir = Path(cwd) if cwd is not None else tmp
        if cwd_fallback and not workdir.is_dir():
            workdir = tmp
        with log_path.open("ab") as log:
            log.write(
                f"[capbench sweep] point {point_id} on {socket.gethostname()} (Ray task), cwd {workdir}\n".encode()
            )
        forward = _SigintForwarder()
        try:
            outcome = forward.run(
                lambda: run_point(config, run_dir, log_path, env=_point_env(env), cwd=workdir, on_start=forward.started)
            )
        finally:
            forward.close()
        archive = pack_run_dir(run_dir) if run_dir.is_dir() else None
        return asdict(outcome), archive, log_path.read_bytes()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class _SigintForwarder:
    """While a point runs in a Ray task, pass a cancellation (Ray calls the SIGINT handler in the task's thread)
    to the point's process as SIGINT, and kill it if it has not ended :data:`CHILD_GRACE_S` seconds later.

    The task then returns normally with the point's partial run. Ray does not send a real signal: it asks the
    interpreter to run the handler, which happens only when the main thread runs Python code, so :meth:`run`
    waits for the point in a helper thread while the main thread polls. Outside the main thread (where signal
    handlers cannot be set) it does nothing and Ray's KeyboardInterrupt ends the task as usual.
    """

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._interrupted = False
        self._timer: threading.Timer | None = None
        self._previous: Any = None
        self._mask: set[int | signal.Signals] | None = None
        self._installed = threading.current_thread() is threading.main_thread()
        if self._installed:
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
            # Ray workers block SIGINT, and a blocked mask is inherited by the point's process, which would then
            # never see the SIGINT forwarded to it: unblock it while the point runs.
            self._mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

    def run(self, call: Callable[[], Outcome]) -> Outcome:
        """``call()``, in a helper thread (which inherits the unblocked SIGINT) when handling SIGINT here."""
        if not self._installed:
            return call()
        results: list[Outcome] = []
        errors: list[BaseException] = []

        def target() -> None:
            try:
                results.append(call())
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=target, name="capbench-point", daemon=True)
        thread.start()
        while thread.is_alive():
            thread.join(POLL_S)
        if errors:
            raise errors[0]
        return results[0]

    def started(self, process: subprocess.Popen[bytes]) -> None:
        self._process = process
        if self._interrupted:
            self._forward()

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        self._interrupted = True
        self._forward()

    def _forward(self) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        if self._timer is None:
            self._timer = threading.Timer(CHILD_GRACE_S, self._kill)
            self._timer.daemon = True
            self._timer.start()

    def _kill(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._installed:
            if self._mask is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, self._mask)
            signal.signal(signal.SIGINT, self._previous)


# --- driver side -------------------------------------------------------------------------------------------------


def _inside(name: str) -> bool:
    """Whether the normalised archive path ``name`` is :data:`ARCHIVE_ROOT` or lies under it."""
    return name == ARCHIVE_ROOT or name.startswith(ARCHIVE_ROOT + "/")


def _check_member(member: tarfile.TarInfo) -> None:
    name = member.name
    if name.startswith("/") or (len(name) > 1 and name[1] == ":") or "\\" in name:
        raise CapbenchError(f"refusing to unpack a run archive: member {name!r} has an absolute or foreign path")
    parts = name.split("/")
    if ".." in parts:
        raise CapbenchError(f"refusing to unpack a run archive: member {name!r} climbs out with '..'")
    normal = posixpath.normpath(name)
    if not _inside(normal):
        raise CapbenchError(f"refusing to unpack a run archive: member {name!r} is not under {ARCHIVE_ROOT}/")
    if member.issym() or member.islnk():  # a run directory holds none; a link could reach outside it
        raise CapbenchError(f"refusing to unpack a run archive: member {name!r} is a link ({member.linkname!r})")
    if not (member.isfile() or member.isdir()):
        raise CapbenchError(f"refusing to unpack a run archive: member {name!r} is not a file or folder")


def extract_run_archive(data: bytes, dest: Path) -> None:
    """Unpack a run archive (:func:`pack_run_dir`) into ``dest``, which must not exist; all or nothing.

    Raises :class:`CapbenchError` when ``dest`` exists, the archive is unreadable, or any member is unsafe (an
    absolute name, ``..``, a name outside ``run/``, a link, a device or fifo); then nothing is left behind.
    """
    if dest.exists() or dest.is_symlink():
        raise CapbenchError(f"refusing to unpack a run into {dest}: it already exists")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".unpack", dir=dest.parent))
    try:
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
                members = tar.getmembers()
                for member in members:
                    _check_member(member)
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(staging, members=members, filter="data")
                else:  # Python < 3.11.4: the checks above are the guard
                    tar.extractall(staging, members=members)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise CapbenchError(f"cannot unpack the run archive into {dest}: {_one_line(exc)}") from exc
        unpacked = staging / ARCHIVE_ROOT
        if not unpacked.is_dir() or unpacked.is_symlink():
            raise CapbenchError(f"the run archive for {dest} holds no {ARCHIVE_ROOT}/ folder")
        if dest.exists() or dest.is_symlink():
            raise CapbenchError(f"refusing to unpack a run into {dest}: it already exists")
        unpacked.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


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
        error = f"Ray task failed: {_one_line(exc)}"[-ERROR_TAIL_CHARS:]
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
    task = ray.remote(_execute)
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
