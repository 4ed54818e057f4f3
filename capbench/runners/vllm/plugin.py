"""capbench's vLLM plugin: the ``vllm.general_plugins`` entry point ``capbench``.

vLLM calls :func:`register` in every one of its processes at start-up. It does nothing unless the
environment variable :data:`ENV_RECORD_DIR` names a directory (the capbench runner sets it, to the run
directory, when it launches the server); then it installs the step recorder (:mod:`.adapter`), which writes
``<dir>/passes.jsonl`` and ``<dir>/vllm/engine-dp<R>.json``. The path is always passed explicitly, never
derived from ``~`` or the working directory. ``CAPBENCH_VLLM_RECORD_EXPERTS=0`` records steps without
expert routing.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_RECORD_DIR = "CAPBENCH_VLLM_RECORD_DIR"
ENV_RECORD_EXPERTS = "CAPBENCH_VLLM_RECORD_EXPERTS"


def register() -> None:
    """Entry point: install the recorder when :data:`ENV_RECORD_DIR` is set (a no-op otherwise)."""
    record_dir = os.environ.get(ENV_RECORD_DIR)
    if not record_dir:
        return
    path = Path(record_dir)
    if not path.is_absolute():
        raise RuntimeError(f"{ENV_RECORD_DIR} must be an absolute path, got {record_dir!r}")
    from capbench.runners.vllm.adapter import install

    install(path, record_experts=os.environ.get(ENV_RECORD_EXPERTS, "1") != "0")
