"""The embedded demo model: a tiny Qwen3-MoE trained by capbench on its offline arithmetic task.

Shipped as a checkpoint with its tokenizer in ``capbench/models/demo_moe/`` (built by
``scripts/train_demo_moe.py``; how and how well: ``docs/demo_model.md`` and the checkpoint's
``training_report.json``). ``capbench run`` with no model serves it on ``capbench_arithmetic``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from capbench.errors import CapbenchError

DEMO_MODEL_NAME = "capbench-demo-moe"
DEMO_DIR_NAME = "demo_moe"


def demo_model_dir() -> Path:
    """The demo checkpoint's directory inside the installed package."""
    path = Path(str(resources.files("capbench.models").joinpath(DEMO_DIR_NAME)))
    if not (path / "config.json").is_file():
        raise CapbenchError(
            f"the embedded demo model is missing from {path}; reinstall capbench or rebuild it with "
            "`python scripts/train_demo_moe.py --out capbench/models/demo_moe`"
        )
    return path
