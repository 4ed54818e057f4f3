"""A vLLM OpenAI server run as a managed subprocess: started, awaited, logged, always stopped.

The server runs in its own session (process group), so a Ctrl-C in the terminal reaches capbench only and
capbench stops the server itself: SIGTERM to the whole group, a grace period, then SIGKILL. On Linux the
server also gets SIGTERM if capbench dies without cleaning up (``PR_SET_PDEATHSIG``), and an ``atexit``
handler stops servers still running at interpreter exit. Its stdout and stderr go to a log file in the run
directory; start-up failures quote the log's tail.

vLLM finds capbench's plugin through an entry point: :func:`plugin_path` builds a directory holding a
``capbench`` link to this package and a minimal ``.dist-info`` that declares the entry point, and the
server gets it first on ``PYTHONPATH``. vLLM's own environment therefore needs no capbench install, and the
plugin is the code of the capbench that launched it.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from capbench import __version__
from capbench.errors import CapbenchError

API_SERVER_MODULE = "vllm.entrypoints.openai.api_server"
HOST = "127.0.0.1"

_live: weakref.WeakSet[ManagedServer] = weakref.WeakSet()


def free_port(host: str = HOST) -> int:
    """A TCP port free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def plugin_path(parent: Path | None = None) -> Path:
    """A directory that makes this capbench's vLLM plugin importable and discoverable (see module doc)."""
    import capbench

    root = Path(tempfile.mkdtemp(prefix="capbench-vllm-plugin-", dir=parent))
    (root / "capbench").symlink_to(Path(capbench.__file__).resolve().parent, target_is_directory=True)
    info = root / f"capbench_vllm_plugin-{__version__}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: capbench-vllm-plugin\nVersion: {__version__}\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(
        "[vllm.general_plugins]\ncapbench = capbench.runners.vllm.plugin:register\n", encoding="utf-8"
    )
    return root


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def log_tail(path: Path, lines: int = 20) -> str:
    """What a start-up failure should show from a log: its distinct error lines, then its last ``lines`` lines."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    errors = list(dict.fromkeys(line.strip() for line in text if re.search(r"\w+(Error|Exception): ", line)))
    head = ["errors in the log:", *errors[-5:], "last lines:"] if errors else []
    return "\n".join([*head, *text[-lines:]])


class ManagedServer:
    """One vLLM API server process (see the module docstring)."""

    def __init__(
        self,
        python: str,
        model: str,
        args: Sequence[str],
        env: Mapping[str, str],
        log_path: Path,
        host: str = HOST,
        port: int | None = None,
    ) -> None:
        self.python = python
        self.model = model
        self.host = host
        self.port = port or free_port(host)
        self.command = [
            python,
            "-m",
            API_SERVER_MODULE,
            "--model",
            model,
            "--host",
            host,
            "--port",
            str(self.port),
            *args,
        ]
        self.env = dict(env)
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.exit_code: int | None = None
        self.started_ns: int | None = None
        self.ready_s: float | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"# capbench: {' '.join(self.command)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self.started_ns = time.monotonic_ns()
        _live.add(self)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def healthy(self, timeout_s: float = 2.0) -> bool:
        """``GET /health`` answers 200."""
        try:
            with urllib.request.urlopen(f"{self.base_url}/health", timeout=timeout_s) as response:
                return int(response.status) == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def wait_ready(self, timeout_s: float, on_wait: Callable[[float], None] | None = None) -> float:
        """Block until ``/health`` answers; return the seconds it took. Raises when it dies or times out."""
        start = time.monotonic()
        while True:
            elapsed = time.monotonic() - start
            if not self.alive():
                code = self.process.returncode if self.process else None
                raise CapbenchError(
                    f"the vLLM server exited during start-up (exit code {code}); log {self.log_path}:\n"
                    f"{log_tail(self.log_path)}"
                )
            if self.healthy():
                self.ready_s = elapsed
                return elapsed
            if elapsed > timeout_s:
                self.stop()
                raise CapbenchError(
                    f"the vLLM server was not ready after {timeout_s:g} s (server_start_timeout_s); "
                    f"log {self.log_path}:\n{log_tail(self.log_path)}"
                )
            if on_wait is not None:
                on_wait(elapsed)
            time.sleep(0.5)

    def wait_exit(self, timeout_s: float) -> int | None:
        """The exit code once the process has exited (waiting at most ``timeout_s``), else None."""
        if self.process is None:
            return self.exit_code
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace_s: float = 30.0) -> int | None:
        """Stop the whole process group: SIGTERM, wait up to ``grace_s``, then SIGKILL. Returns the exit code."""
        process = self.process
        if process is None:
            return self.exit_code
        if process.poll() is None:
            for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
                try:
                    os.killpg(process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    process.wait(timeout=wait_s)
                    break
                except subprocess.TimeoutExpired:
                    continue
        # The leader is gone; engine and worker processes it left in the group (holding GPU memory) go too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        self.exit_code = process.poll()
        self.process = None
        _live.discard(self)
        return self.exit_code


@atexit.register
def _stop_all() -> None:
    for server in list(_live):
        server.stop(grace_s=5.0)
