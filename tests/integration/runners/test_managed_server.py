"""The managed server process, with a stand-in for vLLM (a real process serving /health on 127.0.0.1).

Start-up waits for health, start-up death quotes the log, a timeout stops the process, and stopping takes the
whole process group down, escalating to SIGKILL when SIGTERM is ignored.
"""

from __future__ import annotations

import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from capbench.errors import CapbenchError
from capbench.runners.vllm.server import ManagedServer, plugin_path

STAND_IN = textwrap.dedent(
    """
    import http.server, os, signal, subprocess, sys, time
    mode = os.environ["STAND_IN_MODE"]
    print("stand-in starting", mode, flush=True)
    if mode == "die":
        print("fatal: unsupported model architecture", flush=True)
        sys.exit(3)
    if mode == "ignore_term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    open(os.environ["STAND_IN_CHILD"], "w").write(str(child.pid))
    time.sleep(float(os.environ.get("STAND_IN_DELAY", "0")))
    port = int(sys.argv[sys.argv.index("--port") + 1])
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            code = 200 if self.path == "/health" and mode != "never_healthy" else 503
            self.send_response(code); self.end_headers()
        def log_message(self, *a): pass
    http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
    """
)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


def stand_in(tmp_path: Path, mode: str, delay_s: float = 0.0) -> tuple[ManagedServer, Path]:
    script = tmp_path / "stand_in.py"
    script.write_text(STAND_IN)
    child_file = tmp_path / "child.pid"
    env = {**os.environ, "STAND_IN_MODE": mode, "STAND_IN_CHILD": str(child_file), "STAND_IN_DELAY": str(delay_s)}
    server = ManagedServer(sys.executable, "tiny", [], env, tmp_path / "vllm" / "server.log")
    server.command = [sys.executable, str(script), *server.command[3:]]  # the stand-in instead of vLLM
    return server, child_file


def test_waits_for_health_then_stops_the_whole_group(tmp_path: Path) -> None:
    server, child_file = stand_in(tmp_path, "ok", delay_s=1.0)
    server.start()
    try:
        took = server.wait_ready(30)
        assert 1.0 <= took < 30
        assert server.healthy()
        child = int(child_file.read_text())
        assert pid_alive(child)
    finally:
        code = server.stop(grace_s=5)
    assert code is not None
    deadline = time.monotonic() + 5
    while pid_alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(child), "the server's child process survived"
    assert "stand-in starting ok" in server.log_path.read_text()
    assert server.log_path.read_text().startswith("# capbench: ")


def test_sigkill_when_sigterm_is_ignored(tmp_path: Path) -> None:
    server, _ = stand_in(tmp_path, "ignore_term")
    server.start()
    server.wait_ready(30)
    pid = server.process.pid if server.process else -1
    start = time.monotonic()
    server.stop(grace_s=1)
    assert time.monotonic() - start < 10
    assert not pid_alive(pid)


def test_death_during_start_up_quotes_the_log(tmp_path: Path) -> None:
    server, _ = stand_in(tmp_path, "die")
    server.start()
    with pytest.raises(CapbenchError, match=r"exited during start-up \(exit code 3\)(.|\n)*unsupported model"):
        server.wait_ready(30)
    server.stop()


def test_start_up_timeout_stops_the_server(tmp_path: Path) -> None:
    server, _ = stand_in(tmp_path, "never_healthy")
    server.start()
    pid = server.process.pid if server.process else -1
    with pytest.raises(CapbenchError, match=r"not ready after 1\.5 s"):
        server.wait_ready(1.5)
    assert not pid_alive(pid)
    assert server.process is None


def test_plugin_path_declares_the_entry_point(tmp_path: Path) -> None:
    """Another interpreter, with only this directory on its path, discovers and imports the plugin."""
    import subprocess

    root = plugin_path(tmp_path)
    code = (
        "import importlib.metadata as m; "
        "eps = [e for e in m.entry_points(group='vllm.general_plugins') if e.name == 'capbench']; "
        "f = eps[0].load(); print(f.__module__, f.__name__)"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(root)!r}); {code}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == ["capbench.runners.vllm.plugin", "register"]
