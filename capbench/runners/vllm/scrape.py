"""Scrape a server's Prometheus ``/metrics`` during a run and keep every scrape in ``server_metrics.jsonl``.

The runner scrapes once when the measured phase starts (``phase`` ``start``), every ``interval_s`` seconds
during it from a daemon thread (``periodic``) and once when it ends (``end``). Each scrape becomes one JSON
line (docs/records.md, ``server_metrics.jsonl``), appended and flushed on its own, so a crash loses at most
the line being written. A failed scrape (server down, timeout, HTTP error) is an ``ok: false`` line saying
why; scraping never raises. What the scrapes mean is worked out later, offline, by
:func:`capbench.metrics.engine_side.engine_side_summary`.

Stdlib only: no vLLM or torch import.
"""

from __future__ import annotations

import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from capbench.clock import now_ns
from capbench.records.writer import dumps_line

log = logging.getLogger(__name__)

PHASES: tuple[str, ...] = ("start", "periodic", "end")
"""The ``phase`` values of a scrape line."""


class MetricsScraper:
    """Scrape ``base_url + "/metrics"`` into ``out_path`` (JSON lines, appended).

    ``interval_s`` is the period of :meth:`start_periodic` (``None`` or ≤ 0: no periodic scrapes);
    ``headers`` go with every request (an API key); ``timeout_s`` bounds each request. Thread-safe: the
    periodic thread and the caller's :meth:`scrape` calls write whole lines under one lock.
    """

    def __init__(
        self,
        base_url: str,
        out_path: Path,
        interval_s: float | None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 5.0,
    ) -> None:
        self.url = base_url.rstrip("/") + "/metrics"
        self.out_path = Path(out_path)
        self.interval_s = interval_s
        self.headers = dict(headers or {})
        self.timeout_s = timeout_s
        self.ok_count = 0
        self.failed_count = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def scrape(self, phase: str) -> bool:
        """GET ``/metrics`` once and append its line; True when the server answered 200 and the line was written.

        ``t_ns`` (:func:`capbench.clock.now_ns`) is read when the response headers arrived (the server renders
        the whole text before sending them), or when the failure was seen.
        """
        record = self._fetch(phase)
        written = self._append(record)
        with self._lock:
            if record["ok"] and written:
                self.ok_count += 1
            else:
                self.failed_count += 1
        return bool(record["ok"]) and written

    def _fetch(self, phase: str) -> dict[str, Any]:
        request = urllib.request.Request(self.url, headers=self.headers)
        status: int | None = None
        t_ns: int | None = None
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                t_ns = now_ns()
                status = int(response.status)
                text = response.read().decode("utf-8", errors="replace")
                if status != 200:
                    return _line(t_ns, phase, status, f"HTTP {status}")
                return _line(t_ns, phase, status, None, text)
        except urllib.error.HTTPError as exc:
            return _line(now_ns(), phase, exc.code, f"HTTP {exc.code} {exc.reason}")
        except Exception as exc:  # a scrape must never take the run down (URLError, timeout, reset, ...)
            reason = getattr(exc, "reason", None) or exc
            return _line(t_ns if t_ns is not None else now_ns(), phase, status, f"{type(exc).__name__}: {reason}")

    def _append(self, record: Mapping[str, Any]) -> bool:
        """Append one line (open, write, flush, close); False with a logged warning when the file cannot be
        written."""
        data = dumps_line(record)
        with self._lock:
            try:
                with self.out_path.open("ab") as f:
                    f.write(data)
                    f.flush()
            except OSError as exc:
                log.warning("cannot write a /metrics scrape to %s: %s", self.out_path, exc)
                return False
        return True

    def start_periodic(self) -> None:
        """Start the daemon thread that scrapes with phase ``periodic`` every ``interval_s`` seconds (the first
        one ``interval_s`` after this call). Does nothing when ``interval_s`` is ``None`` or ≤ 0, or when the
        thread already runs."""
        if not self.interval_s or self.interval_s <= 0:
            return
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="capbench-metrics-scraper", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        assert self.interval_s is not None
        while not self._stop.wait(self.interval_s):
            self.scrape("periodic")

    def stop(self) -> None:
        """Stop the periodic thread and wait for it (at most one in-flight request, bounded by ``timeout_s``)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=self.timeout_s + 5.0)
            if thread.is_alive():
                log.warning("the /metrics scraper thread did not stop within %.1f s", self.timeout_s + 5.0)

    def __enter__(self) -> MetricsScraper:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _line(t_ns: int, phase: str, http_status: int | None, error: str | None, text: str | None = None) -> dict[str, Any]:
    """One ``server_metrics.jsonl`` record; ``ok`` is true exactly when the text came back (no error)."""
    return {
        "t_ns": t_ns,
        "phase": phase,
        "ok": error is None,
        "http_status": http_status,
        "error": error,
        "text": text if error is None else None,
    }
