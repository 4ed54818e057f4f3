"""``run.json`` as a run writes it first (status ``running``), and the one a run that failed during set-up leaves.

The fields are specified in docs/records.md.
"""

from __future__ import annotations

import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from capbench import __version__
from capbench.clock import CLOCK_NAME, now_ns, utc_now_iso
from capbench.config import RunSpec
from capbench.errors import interruption
from capbench.records import SCHEMA_VERSION, RunStatus
from capbench.run.plan import ModelChoice, load_section
from capbench.run.versions import run_versions
from capbench.workload import Workload


def new_run_id() -> str:
    """A run id: UTC time to the second plus 6 random hex digits, e.g. ``20261121T234501-3fa9c2``."""
    return f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"


def build_manifest(
    spec: RunSpec,
    run_id: str,
    runner: Any,
    model: ModelChoice,
    workload: Workload,
    dataset: dict[str, Any],
    hardware: dict[str, Any],
) -> dict[str, Any]:
    """The ``run.json`` content written before the first request (docs/records.md)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "created_at": utc_now_iso(),
        "capbench_version": __version__,
        "status": RunStatus.RUNNING.value,
        "error": None,
        "spec": spec.model_dump(mode="json"),
        "command": sys.argv,
        "versions": run_versions(),
        "model": {
            "name": model.name or getattr(runner, "model_name", None),
            "path": str(model.path.resolve()) if model.path is not None else None,
            "source": model.source,
            "config": runner.model_config(),
            "config_source": model_config_source(runner),
            "top_k_override": spec.top_k,
        },
        "engine": runner.engine_info(),
        "hardware": hardware,
        "dtypes": runner.dtypes(),
        "load": load_section(spec, workload, dataset),
        "clock": {"name": CLOCK_NAME, "start_ns": now_ns(), "start_utc": utc_now_iso()},
    }


def model_config_source(runner: Any) -> str | None:
    """Where ``run.json`` ``model.config`` came from: the runner says (a launched vLLM: the directory, or what the
    engine loaded), else the model directory's config.json, or None when there is no config."""
    if hasattr(runner, "model_config_source"):
        return runner.model_config_source()
    return "model directory config.json" if runner.model_config() is not None else None


def write_failed_manifest(run_dir: Path, spec: RunSpec, run_id: str, exc: BaseException) -> None:
    """A ``run.json`` for a run that failed before its first request after writing something (e.g. a launched
    server's log: the server never became healthy), so the run directory says what happened instead of holding
    only logs. A run that failed before writing anything (bad input, an unreachable server) leaves no run.json."""
    from capbench.records.writer import write_json_atomic

    interrupted = isinstance(exc, KeyboardInterrupt)
    write_json_atomic(
        run_dir / "run.json",
        {
            "schema_version": SCHEMA_VERSION,
            "run_id": run_id,
            "created_at": utc_now_iso(),
            "ended_at": utc_now_iso(),
            "capbench_version": __version__,
            "status": (RunStatus.PARTIAL if interrupted else RunStatus.FAILED).value,
            "error": f"{interruption(exc)} during set-up" if interrupted else f"{type(exc).__name__}: {exc}",
            "spec": spec.model_dump(mode="json"),
            "command": sys.argv,
            "engine": {"name": spec.runner},
        },
    )
