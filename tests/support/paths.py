"""Where the repository and the test data are, for tests at any depth."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
"""The repository root."""
DATA = REPO / "tests" / "data"
"""Recorded traces, model configs, Prometheus scrapes and vLLM facts the tests read."""
