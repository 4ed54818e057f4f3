"""Run one sweep point as its own ``capbench run`` process, and read back how it ended.

Each point runs in a fresh interpreter (clean GPU and host memory; a crash, an out-of-memory kill or a hung
import stays in that process): ``python -m capbench run CONFIG.yaml --out RUN_DIR --quiet``, its stdout and
stderr in a log file. The outcome comes from the run directory, not from the exit code alone:

- ``complete``: ``run.json`` says ``complete`` and ``summary.json`` exists;
- ``partial``: ``run.json`` exists with any other status but ``failed`` (interrupted, a dead server, a killed
  process that left ``running``): its completed requests are on disk but the point is re-run on ``--resume``;
- ``failed``: no ``run.json`` (the run never started: a bad model path, a server that never came up), or
  ``run.json`` says ``failed`` (nothing usable was measured).

Both executors (local and Ray) run points through :func:`run_point`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

from capbench.config import RunSpec
from capbench.records.schema import MANIFEST_FILE, SUMMARY_FILE
from capbench.runners import runner_traits

PointStatus = Literal["complete", "partial", "failed"]
PR_SET_PDEATHSIG = 1
"""``prctl`` option: the signal a process gets when its parent dies (Linux)."""
STOP_GRACE_S = 60.0
"""How long an interrupted point may take to write its partial run (and stop a server it launched)."""
ERROR_TAIL_CHARS = 2000
"""How much of a failed point's log its recorded error keeps (the end, where the reason is)."""


@dataclass(frozen=True)
class Outcome:
    """How a point's run ended: status from its run directory, the process's exit code, wall time, error text."""

    status: PointStatus
    exit_code: int | None
    duration_s: float
    error: str | None


@dataclass(frozen=True)
class Job:
    """One attempt at one point, as an executor receives it."""

    point_id: str
    config_yaml: str
    """The point's run settings as a run YAML (``Point.config_yaml()``)."""
    run_dir: Path
    """Where the attempt's run directory must end up on the driver (it does not exist yet)."""
    log_path: Path
    """Where the attempt's ``capbench run`` output must end up on the driver."""
    gpus: int
    """GPUs the attempt occupies (:func:`gpus_needed`)."""
    whole_node: bool = False
    """The point computes on the CPU of the machine it runs on (hf or a launched vLLM without GPUs): no other
    point may share that machine while it is measured."""


def run_dir_status(run_dir: Path) -> PointStatus:
    """``complete`` / ``partial`` / ``failed`` from what the run directory holds (module docstring)."""
    from capbench.summary.repeats import is_repeats_dir

    if is_repeats_dir(run_dir):  # a point run with repeats: complete when every repeat is
        summary = orjson.loads((run_dir / SUMMARY_FILE).read_bytes())
        return "partial" if (summary.get("repeats") or {}).get("incomplete") else "complete"
    manifest = run_dir / MANIFEST_FILE
    if not manifest.is_file():
        return "failed"
    try:
        status = orjson.loads(manifest.read_bytes()).get("status")
    except (OSError, orjson.JSONDecodeError, AttributeError):
        return "partial"
    if status == "failed":
        return "failed"
    return "complete" if status == "complete" and (run_dir / SUMMARY_FILE).is_file() else "partial"


def run_command(config_path: Path, run_dir: Path, python: str | None = None) -> list[str]:
    """The command that runs one point."""
    return [python or sys.executable, "-m", "capbench", "run", str(config_path), "--out", str(run_dir), "--quiet"]


def _error_text(log_path: Path, exit_code: int | None) -> str:
    """The reason a point did not complete: ``capbench run``'s own error line, else the exception line that
    ends a traceback, else the last line; with the exit code or the signal that killed the process."""
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    ours = [line for line in lines if line.startswith("capbench run: ")]
    traceback = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")]
    if ours:
        reason = ours[-1]
    elif traceback:
        after = [line for line in lines[traceback[-1] + 1 :] if not line.startswith(("File ", "^", "~"))]
        reason = after[-1] if after else lines[-1]
    else:
        reason = lines[-1] if lines else "no output"
    if exit_code is not None and exit_code < 0:
        try:
            code = f"killed by {signal.Signals(-exit_code).name}"
        except ValueError:
            code = f"killed by signal {-exit_code}"
    else:
        code = f"exit code {exit_code}"
    return f"{reason[-ERROR_TAIL_CHARS:]} ({code}; log: {log_path.name})"


def _prctl() -> Any:
    """libc's ``prctl`` (Linux), loaded in the parent: nothing is loaded between fork and exec."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl() if sys.platform.startswith("linux") else None


def _die_with(parent: int) -> Callable[[], None]:
    """A ``preexec_fn``: SIGTERM the child when ``parent`` (the sweep) dies, so no point outlives a killed sweep
    (the CLI maps SIGTERM to Ctrl-C, so the run still ends ``partial`` with its records); when the parent is
    already gone by then, end at once."""

    def set_death_signal() -> None:  # pragma: no cover - runs in the child between fork and exec
        if _PRCTL is not None:
            _PRCTL(PR_SET_PDEATHSIG, int(signal.SIGTERM))
        if os.getppid() != parent:
            os._exit(1)

    return set_death_signal


def run_point(
    config_path: Path,
    run_dir: Path,
    log_path: Path,
    *,
    python: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    on_start: Any = None,
    pass_fds: Sequence[int] = (),
) -> Outcome:
    """Run one point in a fresh ``capbench run`` process and wait for it.

    The child runs in its own session, so a terminal's Ctrl-C reaches only the sweep, and (Linux) gets SIGTERM
    if the sweep dies, so it never outlives it; a
    :class:`KeyboardInterrupt` here (Ctrl-C, or SIGTERM mapped to it by the CLI) forwards exactly one SIGINT
    to the child, which ends its run ``partial`` with every completed request kept, gives it up to
    :data:`STOP_GRACE_S` to finish writing, then kills it, and is re-raised. ``on_start(process)`` is called
    once the process exists; ``pass_fds`` stay open in the child (the sweep's lock).
    """
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            run_command(config_path, run_dir, python),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with(os.getpid()) if _PRCTL is not None else None,
            pass_fds=tuple(pass_fds),
        )
        if on_start is not None:
            on_start(process)
        try:
            exit_code = process.wait()
        except KeyboardInterrupt:
            stop_process(process)
            raise
    duration_s = time.monotonic() - started
    status = run_dir_status(run_dir)
    error = None if status == "complete" else _error_text(log_path, exit_code)
    return Outcome(status, exit_code, duration_s, error)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """One SIGINT (the run ends ``partial``), up to :data:`STOP_GRACE_S` to finish, then SIGKILL."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    except KeyboardInterrupt:  # a second Ctrl-C: stop waiting, and leave no process behind
        process.kill()
        process.wait()
        raise


def gpus_needed(spec: RunSpec, *, gpus_available: bool) -> int:
    """GPUs a point occupies while it runs (what a Ray task asks for): the runner's answer
    (:meth:`capbench.runners.traits.RunnerTraits.gpus_needed`): a launched vLLM needs tensor × pipeline × data
    parallel sizes, hf needs 1 (always with ``device: cuda``), an attached server and every point on a cluster
    without GPUs or with ``device: cpu`` need 0."""
    return runner_traits(spec.runner).gpus_needed(spec, gpus_available=gpus_available)
