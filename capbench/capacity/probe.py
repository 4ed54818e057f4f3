"""One capacity probe: a full ``capbench run`` at one load, in its own process, stopped early once it cannot pass.

A probe is an ordinary run directory (the sweep's :func:`~capbench.sweep.point.run_point`: a fresh interpreter,
its log beside it). While it runs, its ``requests.jsonl`` is followed: each measured request either met every
SLO bound or did not (:func:`capbench.metrics.goodput.meets_slo`). When the run has a known number of measured
requests ``n`` and more than ``floor((1 − target)·n)`` have already missed, the probe cannot reach the target
attainment whatever the rest do, so it is stopped (one SIGINT: the run ends ``partial`` with every finished
request kept) instead of waiting out a saturated server: ``stopped_early``. Its counts are then those of the
requests that finished.

``<probe>.json`` beside the run directory records the outcome once the probe ended; a resumed search reuses it.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from capbench.metrics.goodput import meets_slo
from capbench.paths import replace_file
from capbench.records import write_json_atomic
from capbench.records.schema import REQUESTS_FILE

POLL_S = 0.2
"""How often a running probe's requests are read."""


@dataclass(frozen=True)
class ProbeRun:
    """One run of one load: where, how it ended, and its SLO counts over measured requests."""

    load: float
    repeat: int
    run_dir: str
    status: str
    """``complete``, ``partial`` (stopped early, or interrupted) or ``failed`` (nothing usable measured)."""
    met: int
    measured: int
    stopped_early: bool
    wall_s: float
    error: str | None


def count_slo(path: Path, slo: dict[str, float], offset: int = 0) -> tuple[int, int, int]:
    """``(met, measured, new offset)`` over the whole lines of ``requests.jsonl`` from byte ``offset`` (a line
    still being written is left for the next call); warm-up requests are not counted."""
    try:
        with path.open("rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return 0, 0, offset
    end = data.rfind(b"\n") + 1
    met = measured = 0
    for line in data[:end].splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a torn line left by a crash is not a request
        if not isinstance(record, dict) or record.get("warmup"):
            continue
        measured += 1
        met += meets_slo(record, slo)
    return met, measured, offset + end


class EarlyStop:
    """Follows a running probe and stops it once more requests missed than the target allows (module docstring)."""

    def __init__(self, requests_path: Path, slo: dict[str, float], target: float, planned: int | None) -> None:
        self.path = requests_path
        self.slo = slo
        self.allowed_misses = math.floor((1 - target) * planned + 1e-9) if planned is not None else None
        self.stopped = False
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, process: subprocess.Popen[bytes]) -> None:
        if self.allowed_misses is None:
            return
        self._thread = threading.Thread(target=self._follow, args=(process,), name="capacity-early-stop", daemon=True)
        self._thread.start()

    def _follow(self, process: subprocess.Popen[bytes]) -> None:
        assert self.allowed_misses is not None
        misses, offset = 0, 0
        while not self._done.wait(POLL_S) and process.poll() is None:
            met, measured, offset = count_slo(self.path, self.slo, offset)
            misses += measured - met
            if misses > self.allowed_misses:
                self.stopped = True
                process.send_signal(signal.SIGINT)  # the run ends partial, its finished requests kept
                return

    def finish(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()


def probe_record_path(run_dir: Path) -> Path:
    return run_dir.with_name(run_dir.name + ".json")


def load_probe(run_dir: Path) -> ProbeRun | None:
    """The recorded outcome of a probe that ended (None when it never did)."""
    path = probe_record_path(run_dir)
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return ProbeRun(**data)


def run_probe(
    settings: dict[str, Any],
    run_dir: Path,
    *,
    load: float,
    repeat: int,
    slo: dict[str, float],
    target: float,
    planned: int | None,
    python: str | None = None,
) -> ProbeRun:
    """Run ``settings`` (a run YAML mapping, its load set) into ``run_dir`` and record the outcome."""
    from capbench.sweep.point import run_point

    config = run_dir.with_name(run_dir.name + ".yaml")
    config.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(settings, sort_keys=True).encode()
    replace_file(config, lambda f: f.write(text))
    early = EarlyStop(run_dir / REQUESTS_FILE, slo, target, planned)
    try:
        outcome = run_point(
            config, run_dir, run_dir.with_name(run_dir.name + ".log"), python=python, on_start=early.start
        )
    finally:
        early.finish()
    met, measured, _ = count_slo(run_dir / REQUESTS_FILE, slo)
    status = outcome.status
    result = ProbeRun(
        load=load,
        repeat=repeat,
        run_dir=run_dir.name,
        status=status,
        met=met,
        measured=measured,
        stopped_early=early.stopped,
        wall_s=outcome.duration_s,
        error=None if status == "complete" or early.stopped else outcome.error,
    )
    write_json_atomic(probe_record_path(run_dir), asdict(result))
    return result
