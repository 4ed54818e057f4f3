"""One launched vLLM CPU engine serving the demo MoE, shared by the test modules that only drive it (the runner
contract; the log-likelihood, attach, fixed-length and workload tests): a launch costs one to two minutes on this
machine, so it is paid once.

The engine is launched on first use, by a module that has the ``vllm_environment`` fixture active (the
environment is read at launch), and closed by the last module that uses it (:meth:`SharedEngine.close`: the
workload module, which runs after the others in file order) or at the end of the session. Its runner's client
settings (concurrency 2, 6 new tokens, completions API) are the contract's; a module that needs others sets
``runner.client.config`` for its drive and restores it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

BLOCK_SIZE = 32
MAX_MODEL_LEN = 2048
ENGINE_ARGS: dict[str, Any] = {"max_model_len": MAX_MODEL_LEN, "block_size": BLOCK_SIZE, "enable_prefix_caching": True}


def engine_settings(model: Path, **extra: Any) -> dict[str, Any]:
    """Run settings for the shared engine's model and arguments, plus ``extra``."""
    return {"runner": "vllm", "model": str(model), "dtype": "float32", "engine_args": dict(ENGINE_ARGS), **extra}


class SharedEngine:
    """The engine (launched lazily) and the directory its step recorder writes to."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.run_dir = root / "engine"
        self._runner: Any = None
        self.closed = False

    def get(self) -> tuple[Any, Path, Path]:
        """``(runner, engine run directory, model directory)``, launching the engine on first use."""
        from capbench.config import build_run_spec
        from capbench.models.demo import demo_model_dir
        from capbench.runners.vllm.runner import VLLMRunner

        if self.closed:
            raise RuntimeError("the shared vLLM engine was closed by an earlier module")
        model = demo_model_dir()
        if self._runner is None:
            spec = build_run_spec(None, engine_settings(model, concurrency=2, max_tokens=6))
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._runner = VLLMRunner(spec, model, run_dir=self.run_dir)
        return self._runner, self.run_dir, model

    def close(self) -> None:
        if self._runner is not None:
            self._runner.close()
            self._runner = None
        self.closed = True
