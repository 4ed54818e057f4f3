"""The mock server in a child process (``python -m capbench.testing.mock_server``): for tests that kill the
server and benchmarks that pin it to a core."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Sequence
from typing import Any

from orjson import loads

from capbench.testing.mock_server.settings import MockSettings


def settings_to_args(settings: MockSettings) -> list[str]:
    """Command-line arguments of ``python -m capbench.testing.mock_server`` for ``settings``."""
    args = [
        f"--ttft-s={settings.ttft_s!r}",
        f"--itl-s={settings.itl_s!r}",
        f"--ttft-per-stream-s={settings.ttft_per_stream_s!r}",
        f"--itl-per-stream-s={settings.itl_per_stream_s!r}",
        f"--ttft-jitter-s={settings.ttft_jitter_s!r}",
        f"--output-tokens={settings.output_tokens}",
        f"--fail-rate={settings.fail_rate!r}",
        f"--hang-rate={settings.hang_rate!r}",
        f"--seed={settings.seed}",
        f"--model={settings.model}",
        f"--record-limit={settings.record_limit}",
    ]
    if not settings.honor_max_tokens:
        args.append("--no-honor-max-tokens")
    if not settings.record:
        args.append("--no-record")
    if settings.coalesce:
        args.append("--coalesce")
    if not settings.send_usage:
        args.append("--no-usage")
    return args


class MockServerProcess:
    """The mock server in a child process (``python -m capbench.testing.mock_server``): for tests that kill
    the server, and for benchmarks that pin it to a core. Use as a context manager, or ``start()``/``stop()``.
    """

    def __init__(
        self,
        settings: MockSettings | None = None,
        *,
        cpus: Sequence[int] | None = None,
        python: str = sys.executable,
        extra_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        start_timeout_s: float = 30.0,
    ) -> None:
        self.settings = settings or MockSettings()
        self.cpus = list(cpus) if cpus is not None else None
        self.python = python
        self.extra_args = list(extra_args)
        self.env = env
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> str:
        cmd = [self.python, "-m", "capbench.testing.mock_server", "--port", "0", *settings_to_args(self.settings)]
        cmd += self.extra_args
        cpus = self.cpus

        def pin() -> None:  # pragma: no cover - runs in the child
            if cpus is not None:
                os.sched_setaffinity(0, cpus)

        proc = self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, env=self.env, preexec_fn=pin if cpus is not None else None
        )
        assert proc.stdout is not None
        try:
            ready, _, _ = select.select([proc.stdout], [], [], self.start_timeout_s)
            line = proc.stdout.readline().decode().strip() if ready else ""
        except BaseException:
            self._abandon()
            raise
        if not line.startswith("http://"):
            status = proc.poll()
            if ready and status is None:  # its stdout ended (or said something else): it is likely exiting
                with contextlib.suppress(subprocess.TimeoutExpired):
                    status = proc.wait(timeout=1.0)
            self._abandon()
            if status is not None:
                how = f"exited with status {status}"
            else:
                how = "printed no URL" if ready else f"no URL within {self.start_timeout_s:g} s"
            raise RuntimeError(f"mock server did not start ({how}; first line {line!r})")
        self.url = line
        return line

    def _abandon(self) -> None:
        """A failed start: kill the child (if it still runs) and close its stdout pipe."""
        try:
            self.kill()
        finally:
            if self.proc is not None and self.proc.stdout is not None:
                self.proc.stdout.close()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _request(self, method: str, path: str) -> bytes:
        req = urllib.request.Request(self.url + path, method=method, data=b"" if method == "POST" else None)
        with urllib.request.urlopen(req, timeout=60) as resp:  # a local URL we started
            data: bytes = resp.read()
            return data

    def sent(self) -> dict[str, Any]:
        """``{"records": [...], "stats": {...}}`` from ``GET /_capbench/sent``."""
        result: dict[str, Any] = loads(self._request("GET", "/_capbench/sent"))
        return result

    def reset(self) -> None:
        self._request("POST", "/_capbench/reset")

    def kill(self) -> None:
        """SIGKILL: the server dies without closing its sockets cleanly (the kernel resets them)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> MockServerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
