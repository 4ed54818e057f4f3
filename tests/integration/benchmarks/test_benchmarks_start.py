"""Every benchmark script still starts: its imports resolve and its arguments parse (``--help``), so a refactor
cannot silently break the scripts whose figures the docs quote."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.paths import REPO

pytestmark = pytest.mark.integration

SCRIPTS = sorted(path.name for path in (REPO / "benchmarks").glob("*.py"))


def test_there_are_benchmarks() -> None:
    assert "vllm_recorder_overhead.py" in SCRIPTS and "routing_counter.py" in SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_starts(script: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), "--help"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage:" in proc.stdout
