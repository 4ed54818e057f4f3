"""Shared fixtures. Integration tests get a tiny MoE built offline once per session, in a private cache."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def capbench_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A session-wide CAPBENCH_CACHE_DIR, so tests never touch the user's cache."""
    path = tmp_path_factory.mktemp("capbench-cache")
    old = os.environ.get("CAPBENCH_CACHE_DIR")
    os.environ["CAPBENCH_CACHE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("CAPBENCH_CACHE_DIR", None)
    else:
        os.environ["CAPBENCH_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def tiny_model_dir(capbench_cache: Path) -> Path:
    """The embedded tiny Qwen3-MoE (random weights, local tokenizer), built once per session."""
    from capbench.models.tiny import build_tiny_moe

    return build_tiny_moe(root=capbench_cache / "models")


def _nvidia_gpu_present() -> bool:
    from capbench.hostinfo import gpu_inventory

    return bool(gpu_inventory().names)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked ``gpu`` where NVML finds no NVIDIA GPU."""
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if gpu_items and not _nvidia_gpu_present():
        skip = pytest.mark.skip(reason="needs an NVIDIA GPU (NVML found none)")
        for item in gpu_items:
            item.add_marker(skip)
