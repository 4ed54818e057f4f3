"""`capbench leaderboard --build-space DIR` writes a folder that runs as a Hugging Face Space does: `python app.py`
in that folder, with the capbench package it carries (not the installed one), on the host and port the Space
runtime sets in the environment, showing the CSV it was given. Nothing is installed or downloaded."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from capbench.cli import main
from capbench.runners.vllm.server import free_port
from tests.support.paths import REPO

pytestmark = pytest.mark.integration


def test_built_space_serves_with_its_own_capbench(tmp_path: Path) -> None:
    pytest.importorskip("gradio")
    space = tmp_path / "space"
    assert main(["leaderboard", str(REPO / "results" / "results.csv"), "--build-space", str(space)]) == 0
    assert {p.name for p in space.iterdir()} == {"README.md", "app.py", "requirements.txt", "capbench", "results.csv"}
    assert not any(space.rglob("demo_moe")) and not any(space.rglob("__pycache__"))
    assert not any(p.is_symlink() for p in space.rglob("*"))  # metrics/, leaderboard/ ... copied, not linked
    assert main(["leaderboard", "x.csv", "--build-space", str(space)]) == 2  # never over an existing Space

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GRADIO_ANALYTICS_ENABLED")}
    found = subprocess.run(
        [sys.executable, "-c", "import capbench.leaderboard.app as a; print(a.__file__)"],
        cwd=space,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(found).resolve().is_relative_to(space.resolve()), found  # the Space's own copy is the one imported

    port = free_port()
    env.update(GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port))  # what the Space runtime sets
    log_path = tmp_path / "space.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=space, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            body = ""
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=2) as response:
                        body = response.read().decode()
                        break
                except OSError:
                    time.sleep(0.5)
            assert body, f"the Space did not serve: {log_path.read_text()[-3000:]}"
            assert "capbench CAP leaderboard" in body
            # It read the results.csv next to app.py: the filters offer the example runs' task, and no load warning.
            assert "capbench_arithmetic" in body and "while loading the results" not in body
        finally:
            proc.terminate()
            proc.wait(timeout=30)
