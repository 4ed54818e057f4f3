"""The Ray task that runs one sweep point on a worker (see docs/sweep.md, "How a Ray task runs a point").

The task writes the point's YAML into a temporary directory, runs it with
:func:`~capbench.sweep.point.run_point` (a fresh ``capbench run`` process) in the driver's working directory
where that exists on the worker, with Ray's per-task defaults that would change the measurement undone
(``OMP_NUM_THREADS``, ``PYTHONBREAKPOINT``; ``CUDA_VISIBLE_DEVICES`` is kept), forwards a cancellation to the
point as SIGINT (killing it :data:`CHILD_GRACE_S` seconds later), and returns the outcome, the packed run
directory and the log.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from typing import Any

from capbench.sweep.archive import pack_run_dir
from capbench.sweep.point import Outcome, run_point

CHILD_GRACE_S = 60.0
"""How long a cancelled point's ``capbench run`` process has, after SIGINT, to write its partial run."""
POLL_S = 0.2
"""How often a Ray task's main thread wakes while its point runs (to notice a cancellation)."""
RAY_TASK_ENV_DEFAULTS = ("OMP_NUM_THREADS", "PYTHONBREAKPOINT")
"""Variables Ray sets for each task that a point's process must not inherit (they revert to the worker's own)."""


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


def execute_point(
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
        forward = SigintForwarder()
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


class SigintForwarder:
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
