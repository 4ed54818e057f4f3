"""The leaderboard folder deploys as a Hugging Face Space: a fresh venv installs ``requirements.txt`` (the
capbench wheel with its ``leaderboard`` extra) and ``python app.py`` serves the page, as the Space runtime does.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_space_folder_installs_and_serves(tmp_path: Path) -> None:
    space = tmp_path / "space"
    shutil.copytree(REPO / "leaderboard", space, ignore=shutil.ignore_patterns("__pycache__", "*.whl"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(REPO), "-w", str(space)],
        check=True,
        timeout=300,
    )
    shutil.copy(REPO / "results" / "results.csv", space / "results.csv")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "-r", "requirements.txt"],
        cwd=space,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    where = subprocess.run(
        [str(python), "-c", "import capbench, gradio; print(capbench.__file__); print(gradio.__version__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert where[0].startswith(str(venv)), "the Space must run the installed wheel, not the checkout"

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GRADIO_ANALYTICS_ENABLED")}
    env.update(GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port))  # what the Space runtime sets
    log_path = tmp_path / "space.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([str(python), "app.py"], cwd=space, env=env, stdout=log, stderr=subprocess.STDOUT)
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
