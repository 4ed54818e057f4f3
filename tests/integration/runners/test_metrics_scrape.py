"""MetricsScraper against a real HTTP server (stdlib, 127.0.0.1, any free port) serving a changing /metrics.

Covers start/periodic/end lines, a prompt stop, failures written as ``ok: false`` lines (server gone, HTTP
error, timeout, unwritable file) without an exception, concurrent writers, and a torn last line.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest

from capbench.metrics.engine_side import engine_side_summary
from capbench.records import SERVER_METRICS_FILE, RecordWarning, iter_jsonl
from capbench.records.prometheus import parse_prometheus
from capbench.records.reader import RunData
from capbench.runners.vllm.scrape import MetricsScraper

pytestmark = pytest.mark.integration


class MetricsState:
    """What the fake server serves: a counter that grows by 7 per scrape, and knobs for failures."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.scrapes = 0
        self.status = 200
        self.delay_s = 0.0
        self.headers: list[dict[str, str]] = []

    def text(self) -> str:
        with self.lock:
            self.scrapes += 1
            n = self.scrapes
        return (
            "# HELP vllm:generation_tokens_total Number of generation tokens processed.\n"
            "# TYPE vllm:generation_tokens_total counter\n"
            f'vllm:generation_tokens_total{{engine="0",model_name="m"}} {7 * n}.0\n'
            f'vllm:num_requests_running{{engine="0",model_name="m"}} {n % 3}.0\n'
        )


def make_handler(state: MetricsState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                self._answer()

        def _answer(self) -> None:
            state.headers.append(dict(self.headers))
            if state.delay_s:
                time.sleep(state.delay_s)
            if self.path != "/metrics":
                self.send_error(404)
                return
            if state.status != 200:
                self.send_error(state.status, "Broken on purpose")
                return
            body = state.text().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # keep the test output quiet
            pass

    return Handler


class FakeServer:
    def __init__(self) -> None:
        self.state = MetricsState()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(self.state))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.running = True

    def shutdown(self) -> None:
        if self.running:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(5)
            self.running = False


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer()
    yield fake
    fake.shutdown()


def read_lines(path: Path) -> list[dict[str, Any]]:
    return list(iter_jsonl(path))


def test_start_periodic_end_lines(server: FakeServer, tmp_path: Path) -> None:
    out = tmp_path / SERVER_METRICS_FILE
    scraper = MetricsScraper(server.base_url + "/", out, interval_s=0.05, headers={"Authorization": "Bearer k"})
    assert scraper.scrape("start") is True
    scraper.start_periodic()
    deadline = time.monotonic() + 10
    while len(read_lines(out)) < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    scraper.stop()
    assert scraper.scrape("end") is True
    lines = read_lines(out)
    phases = [line["phase"] for line in lines]
    assert phases[0] == "start" and phases[-1] == "end" and set(phases[1:-1]) == {"periodic"}
    assert len(phases) >= 5
    assert all(line["ok"] and line["http_status"] == 200 and line["error"] is None for line in lines)
    times = [line["t_ns"] for line in lines]
    assert times == sorted(times)
    assert all(parse_prometheus(line["text"]).malformed == 0 for line in lines)
    assert all(h.get("Authorization") == "Bearer k" for h in server.state.headers)
    assert scraper.ok_count == len(lines) and scraper.failed_count == 0
    # Nothing is written after stop(): the periodic thread is gone.
    time.sleep(0.2)
    assert len(read_lines(out)) == len(lines)
    summary = engine_side_summary(lines)
    assert summary is not None
    assert summary["counters"]["generation_tokens"] == 7 * (len(lines) - 1)  # +7 per scrape after the first
    assert summary["scrapes"]["in_window"] == len(lines)
    assert summary["scrapes"]["window_s"] == pytest.approx((times[-1] - times[0]) / 1e9)


def test_stop_is_prompt_with_a_long_interval(server: FakeServer, tmp_path: Path) -> None:
    scraper = MetricsScraper(server.base_url, tmp_path / "m.jsonl", interval_s=60.0)
    scraper.start_periodic()
    started = time.monotonic()
    scraper.stop()
    assert time.monotonic() - started < 1.0
    assert not (tmp_path / "m.jsonl").exists()  # the first periodic scrape was 60 s away


@pytest.mark.parametrize("interval_s", [0.0, -1.0, None])
def test_no_periodic_scrapes_without_a_positive_interval(
    server: FakeServer, tmp_path: Path, interval_s: float | None
) -> None:
    with MetricsScraper(server.base_url, tmp_path / "m.jsonl", interval_s=interval_s) as scraper:
        scraper.start_periodic()
        time.sleep(0.1)
    assert not (tmp_path / "m.jsonl").exists()


def test_server_gone_mid_run_gives_failed_lines_not_exceptions(server: FakeServer, tmp_path: Path) -> None:
    out = tmp_path / SERVER_METRICS_FILE
    scraper = MetricsScraper(server.base_url, out, interval_s=0.05, timeout_s=1.0)
    assert scraper.scrape("start") is True
    scraper.start_periodic()
    time.sleep(0.2)
    server.shutdown()
    deadline = time.monotonic() + 10
    while not any(not line["ok"] for line in read_lines(out)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert scraper._thread is not None and scraper._thread.is_alive()  # a failure does not kill the thread
    scraper.stop()
    assert scraper.scrape("end") is False
    lines = read_lines(out)
    failed = [line for line in lines if not line["ok"]]
    assert len(failed) >= 2 and lines[-1]["phase"] == "end" and not lines[-1]["ok"]
    for line in failed:
        assert line["http_status"] is None and line["text"] is None
        assert isinstance(line["error"], str) and line["error"]
        assert isinstance(line["t_ns"], int)
    assert scraper.failed_count == len(failed)
    # The summary uses the successful scrapes only.
    summary = engine_side_summary(lines)
    assert summary is not None
    assert summary["scrapes"]["failed"] == len(failed)
    assert summary["scrapes"]["final_phase"] == "periodic"


def test_http_error_is_a_failed_line_with_its_status(server: FakeServer, tmp_path: Path) -> None:
    out = tmp_path / "m.jsonl"
    server.state.status = 503
    assert MetricsScraper(server.base_url, out, interval_s=None).scrape("start") is False
    (line,) = read_lines(out)
    assert line["ok"] is False and line["http_status"] == 503 and line["text"] is None
    assert line["error"].startswith("HTTP 503")
    notfound = MetricsScraper(server.base_url + "/nope", out, interval_s=None)
    assert notfound.scrape("end") is False
    assert read_lines(out)[-1]["http_status"] == 404


def test_timeout_is_a_failed_line(server: FakeServer, tmp_path: Path) -> None:
    out = tmp_path / "m.jsonl"
    server.state.delay_s = 1.0
    started = time.monotonic()
    assert MetricsScraper(server.base_url, out, interval_s=None, timeout_s=0.2).scrape("end") is False
    assert time.monotonic() - started < 0.9
    (line,) = read_lines(out)
    assert line["ok"] is False and line["http_status"] is None and "timed out" in line["error"]


def test_unwritable_file_does_not_raise(server: FakeServer, tmp_path: Path) -> None:
    scraper = MetricsScraper(server.base_url, tmp_path / "missing-dir" / "m.jsonl", interval_s=None)
    assert scraper.scrape("start") is False
    assert scraper.failed_count == 1


def test_concurrent_scrapes_write_whole_lines(server: FakeServer, tmp_path: Path) -> None:
    out = tmp_path / "m.jsonl"
    scraper = MetricsScraper(server.base_url, out, interval_s=0.01)
    scraper.start_periodic()
    workers = [threading.Thread(target=lambda: [scraper.scrape("periodic") for _ in range(10)]) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    scraper.stop()
    raw = out.read_bytes().splitlines()
    assert len(raw) >= 40
    assert all(orjson.loads(line)["ok"] for line in raw)  # every line whole: no interleaving


def test_torn_last_line_is_tolerated(server: FakeServer, tmp_path: Path) -> None:
    out = tmp_path / SERVER_METRICS_FILE
    scraper = MetricsScraper(server.base_url, out, interval_s=None)
    assert scraper.scrape("start") and scraper.scrape("periodic")
    with out.open("ab") as f:
        f.write(b'{"t_ns": 1, "phase": "end", "ok": true, "text": "vllm:gen')  # the process died mid-write
    run = RunData(run_dir=tmp_path, manifest={})
    assert run.has_server_metrics
    with pytest.warns(RecordWarning, match="torn last line 3"):
        lines = list(run.iter_server_metrics())
    assert [line["phase"] for line in lines] == ["start", "periodic"]
    summary = engine_side_summary(lines)
    assert summary is not None and summary["counters"]["generation_tokens"] == 7
