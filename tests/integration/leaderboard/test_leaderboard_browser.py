"""The leaderboard in a real browser: `capbench leaderboard` on 127.0.0.1, driven by headless Chromium.

The server runs as its own process with a ``sitecustomize`` that logs every non-loopback connection or DNS
lookup it attempts, so "no outbound network at start" is checked, not assumed; the browser's requests are
checked the same way. Chromium is the system package (``scripts/chromium.sh`` finds or installs it); without
it the test skips, unless ``CAPBENCH_REQUIRE_BROWSER=1`` (``make test``), where it fails.
"""

from __future__ import annotations

import contextlib
import csv
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from capbench.leaderboard.paging import PAGE_ROWS
from capbench.runners.vllm.server import free_port
from tests.support.paths import REPO

pytestmark = pytest.mark.integration

EXAMPLES = REPO / "results" / "results.csv"
HOSTILE_MODEL = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">[win](http://evil.example)'
HOSTILE_RUN_ID = "hostile-run"
BIDI_MODEL = "model-\u202eevil-\u2066x"  # a right-to-left override and an isolate: shown as code points
LONG_MODEL = "m" * 5000
PARTIAL_RUN_ID = "partial-run"

NET_MONITOR = """
import os, socket
_LOG = os.environ["CAPBENCH_NET_LOG"]
_LOCAL = ("127.", "::1", "localhost", "0.0.0.0")

def _note(what):
    with open(_LOG, "a", encoding="utf-8") as f:
        f.write(what + "\\n")

def _local(host):
    return host is None or str(host).startswith(_LOCAL) or str(host) in ("", "::")

_connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
        _note(f"connect {address!r}")
    return _connect(self, address)

def connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
        _note(f"connect {address!r}")
    return _connect_ex(self, address)

def getaddrinfo(host, *args, **kwargs):
    if not _local(host if not isinstance(host, bytes) else host.decode()):
        _note(f"lookup {host!r}")
    return _getaddrinfo(host, *args, **kwargs)

socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
"""


def _chromium() -> str:
    path = os.environ.get("CAPBENCH_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    problem = None
    if not path:
        problem = "no Chromium (bash scripts/chromium.sh installs it)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "playwright is not installed (pip install -e '.[dev]')"
    if problem:
        if os.environ.get("CAPBENCH_REQUIRE_BROWSER") == "1":
            pytest.fail(f"CAPBENCH_REQUIRE_BROWSER=1 but {problem}")
        pytest.skip(problem)
    assert path is not None
    return path


CAPACITY_COLUMNS = (
    "capacity_search_id",
    "capacity_search",
    "capacity_point",
    "capacity_probe_verdict",
    "capacity_probe_attainment_fraction",
    "capacity_max_concurrency",
    "usd_per_1m_output_tokens_at_capacity",
    "output_tokens_per_s_per_gpu",
    "tokens_per_s_per_user",
    "ci95_low_output_tokens_per_s_per_gpu",
    "ci95_high_output_tokens_per_s_per_gpu",
)
CAPACITY_RUN_ID = "capacity-c6"


def _capacity_probes(base: dict[str, str]) -> list[dict[str, str]]:
    """Four probes of one capacity search (concurrency 1, 4, 6 and 8; the capacity is 6), as `capbench export`
    writes them, on one GPU."""
    out = []
    for c, attainment in ((1, 1.0), (4, 1.0), (6, 0.95), (8, 0.4)):
        run = dict(base, run_id=f"capacity-c{c}", concurrency=str(c), load_pattern="closed_loop")
        run.update(
            capacity_search_id="cap0001",
            capacity_search="concurrency",
            capacity_point=str(c == 6),
            capacity_probe_verdict="pass" if attainment >= 0.9 else "fail",
            capacity_probe_attainment_fraction=str(attainment),
            capacity_max_concurrency="6",
            usd_per_1m_output_tokens_at_capacity="0.5" if c == 6 else "",
            output_tokens_per_s_per_gpu=str(100.0 * c),
            tokens_per_s_per_user=str(200.0 / c),
            ci95_low_output_tokens_per_s_per_gpu="560" if c == 6 else "",
            ci95_high_output_tokens_per_s_per_gpu="640" if c == 6 else "",
            ttft_p99_s=str(0.01 * c),
        )
        out.append(run)
    return out


def _write_board_csv(path: Path) -> tuple[dict[str, str], int]:
    """The shipped example runs, one hostile copy, and one broken row; returns {run id: engine} and the broken
    row's number."""
    with EXAMPLES.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) >= 4, "results/results.csv should hold the shipped example runs"
    header = list(rows[0])
    hostile = dict(rows[0], run_id=HOSTILE_RUN_ID, model=HOSTILE_MODEL)
    bidi = dict(rows[0], run_id="bidi-run", model=BIDI_MODEL)
    long = dict(rows[0], run_id="long-run", model=LONG_MODEL)
    partial = dict(rows[0], run_id=PARTIAL_RUN_ID, status="partial")  # hidden until the status filter asks
    extra = [hostile, bidi, long, partial, *_capacity_probes(rows[0])]
    header += [c for c in CAPACITY_COLUMNS if c not in header]
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in [*rows, *extra]:
            writer.writerow([row.get(c, "") for c in header])
        writer.writerow(["broken-run", "complete"])  # too few fields: skipped with a warning naming the row
    return {r["run_id"]: r["engine"] for r in rows}, len(rows) + len(extra) + 1  # data rows: all of them, this


@contextlib.contextmanager
def _serve(board_csv: Path, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """`capbench leaderboard board_csv` on a free loopback port, its outbound attempts logged (NET_MONITOR)."""
    monitor = tmp_path / "netmon"
    monitor.mkdir()
    (monitor / "sitecustomize.py").write_text(NET_MONITOR, encoding="utf-8")
    net_log = tmp_path / "outbound.log"
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(monitor), str(REPO)]),
        "CAPBENCH_NET_LOG": str(net_log),
        "GRADIO_ANALYTICS_ENABLED": "",  # unset-like: the app itself must switch analytics off
    }
    env.pop("GRADIO_ANALYTICS_ENABLED")
    log = (tmp_path / "server.log").open("w")
    cmd = [sys.executable, "-m", "capbench", "leaderboard", str(board_csv), "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the leaderboard did not start: {(tmp_path / 'server.log').read_text()[-3000:]}")
        time.sleep(0.25)
    try:
        yield {"url": url, "net_log": net_log}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture
def leaderboard(tmp_path: Path) -> Iterator[dict[str, Any]]:
    board_csv = tmp_path / "board.csv"
    run_ids, broken_row = _write_board_csv(board_csv)
    with _serve(board_csv, tmp_path) as server:
        yield {**server, "run_ids": run_ids, "csv": board_csv, "broken_row": broken_row, "tmp": tmp_path}


def _launch(p: Any) -> Any:
    return p.chromium.launch(
        executable_path=_chromium(),
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--disable-sync",
        ],
    )


def _table_text(page: Any) -> str:
    return str(page.inner_text("#runs-table"))


def _svg_text(page: Any, selector: str) -> str:
    """The text of the first SVG element matching ``selector`` (plotly legends are SVG: no innerText)."""
    found = page.locator(selector)
    return str(found.first.text_content() or "") if found.count() else ""


def _wait_for(predicate: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the page")
        time.sleep(0.2)


def test_leaderboard_in_headless_chromium(leaderboard: dict[str, Any]) -> None:
    from playwright.sync_api import sync_playwright

    tmp: Path = leaderboard["tmp"]
    requests: list[str] = []
    with sync_playwright() as p:
        browser = _launch(p)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1200}, accept_downloads=True)
            page.on("request", lambda r: requests.append(r.url))
            page.goto(leaderboard["url"])
            page.wait_for_selector("#runs-table table", timeout=60_000)
            _wait_for(lambda: all(r in _table_text(page) for r in leaderboard["run_ids"]))

            # Every example run and the hostile one are in the table; the hostile name is literal text (cut at
            # 60 characters, like every long name, so one name cannot push the other columns out of view).
            text = _table_text(page)
            assert HOSTILE_RUN_ID in text
            assert "<script>window.__pwned = 1</script>" in text
            assert "—" in text  # unmeasured cells (energy on CPU) show as a dash, not 0
            assert "model-⟨U+202E⟩evil-⟨U+2066⟩x" in text and "\u202e" not in text  # visible, never applied
            assert "m" * 60 in text and "m" * 61 not in text
            # Only complete runs by default: the partial run appears once the status filter is cleared.
            assert PARTIAL_RUN_ID not in text
            page.click("#filter-status input")
            page.get_by_role("option", name="partial", exact=True).click()
            page.keyboard.press("Escape")
            _wait_for(lambda: PARTIAL_RUN_ID in _table_text(page))
            assert "partial" in _table_text(page)
            page.reload()
            page.wait_for_selector("#runs-table table", timeout=60_000)
            _wait_for(lambda: HOSTILE_RUN_ID in _table_text(page) and PARTIAL_RUN_ID not in _table_text(page))

            # The broken row is skipped with a visible warning naming the file and the row.
            warning = page.inner_text("#load-warnings")
            assert "board.csv" in warning and f"row {leaderboard['broken_row']}" in warning

            # A filter changes the table: engine = vllm keeps only the vLLM runs.
            page.click("#filter-engine input")
            page.get_by_role("option", name="vllm", exact=True).click()
            page.keyboard.press("Escape")
            engines: dict[str, str] = leaderboard["run_ids"]
            vllm_ids = sorted(r for r, engine in engines.items() if engine == "vllm")
            hf_ids = [r for r, engine in engines.items() if engine == "hf"]
            assert vllm_ids and hf_ids
            _wait_for(lambda: not any(r in _table_text(page) for r in [*hf_ids, HOSTILE_RUN_ID, "bidi-run"]))
            filtered = _table_text(page)
            assert all(r in filtered for r in vllm_ids)
            assert "hf" not in filtered.split()  # no row of the hf engine is left

            # The download holds exactly the filtered rows.
            with page.expect_download() as info:
                page.click("#download")
            downloaded = tmp / "download.csv"
            info.value.save_as(downloaded)
            with downloaded.open(encoding="utf-8", newline="") as f:
                assert sorted(r["run_id"] for r in csv.DictReader(f)) == vllm_ids

            # Back to every run; the hostile run's details render its name as text, never as HTML or a link.
            page.reload()  # a fresh page starts with no filter
            page.wait_for_selector("#runs-table table", timeout=60_000)
            _wait_for(lambda: HOSTILE_RUN_ID in _table_text(page))
            page.get_by_role("tab", name="Run details").click()
            page.click("#run-pick input")
            page.get_by_role("option", name=f"[{HOSTILE_RUN_ID}]", exact=False).click()
            _wait_for(lambda: "window.__pwned = 1" in page.inner_text("#run-details"))
            assert "[win](http://evil.example)" in page.inner_text("#run-details")  # the whole name, as text
            # A capacity probe's details show its search's curve, the capacity marked.
            page.click("#run-pick input")
            page.get_by_role("option", name=f"[{CAPACITY_RUN_ID}]", exact=False).click()
            page.wait_for_selector("#capacity-curve .js-plotly-plot", timeout=30_000)
            _wait_for(lambda: "Capacity" in _svg_text(page, "#capacity-curve .legend"))
            assert "SLO attainment" in _svg_text(page, "#capacity-curve .legend")
            # Throughput per GPU against per user: the front and the run at capacity; cost at capacity in the table.
            page.get_by_role("tab", name="Throughput vs interactivity").click()
            page.wait_for_selector("#interactivity .js-plotly-plot", timeout=30_000)
            _wait_for(lambda: "At capacity" in _svg_text(page, "#interactivity .legend"))
            assert "Pareto front" in _svg_text(page, "#interactivity .legend")
            assert page.locator("#interactivity .errorbar").count() >= 1  # the repeats' interval
            assert "Cost at capacity" in _table_text(page)
            page.get_by_role("tab", name="Cost vs accuracy").click()
            page.wait_for_selector("#cap-scatter .js-plotly-plot", timeout=30_000)
            assert "Pareto front" in page.inner_text("#pareto")
            page.screenshot(path=str(tmp / "leaderboard.png"), full_page=True)

            # "Reload files" picks up a run appended to the CSV while the app runs.
            board: Path = leaderboard["csv"]
            with board.open(encoding="utf-8", newline="") as f:
                first = next(csv.DictReader(f))
            with board.open("a", encoding="utf-8", newline="") as f:
                csv.writer(f).writerow(list(dict(first, run_id="appended-run").values()))
            assert "appended-run" not in _table_text(page)
            page.click("#reload")
            _wait_for(lambda: "appended-run" in _table_text(page))

            assert page.evaluate("window.__pwned") is None  # no injected script or handler ran
            assert page.locator("a[href*='evil.example']").count() == 0
            assert page.locator("#run-details img, #pareto img, #load-warnings img").count() == 0
        finally:
            browser.close()

    assert (tmp / "leaderboard.png").stat().st_size > 10_000
    outside = [u for u in requests if not u.startswith((leaderboard["url"], "data:", "blob:"))]
    assert outside == [], f"the page fetched from outside 127.0.0.1: {outside[:5]}"
    net_log: Path = leaderboard["net_log"]
    attempts = net_log.read_text() if net_log.exists() else ""
    assert attempts == "", f"the server tried to reach the network: {attempts[:500]}"


PAGED_RUNS = 2 * PAGE_ROWS + 7


def test_the_table_pages_in_headless_chromium(tmp_path: Path) -> None:
    """More runs than two pages: the page shows one page of rows, sorted over every run; "Next page" turns it."""
    from playwright.sync_api import sync_playwright

    _chromium()
    with EXAMPLES.open(encoding="utf-8", newline="") as f:
        first = next(csv.DictReader(f))
    board = tmp_path / "paged.csv"
    with board.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(first))
        writer.writeheader()
        for i in range(PAGED_RUNS):  # file order is the reverse of cost order
            writer.writerow(dict(first, run_id=f"paged-{i:03d}", usd_per_1m_output_tokens=str(PAGED_RUNS - i)))
    by_cost = [f"paged-{i:03d}" for i in reversed(range(PAGED_RUNS))]
    with _serve(board, tmp_path) as server, sync_playwright() as p:
        browser = _launch(p)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1200})
            page.goto(server["url"])
            page.wait_for_selector("#runs-table table", timeout=60_000)
            _wait_for(lambda: by_cost[0] in _table_text(page))
            text = _table_text(page)
            assert all(r in text for r in by_cost[:PAGE_ROWS])
            assert not any(r in text for r in by_cost[PAGE_ROWS:])  # the browser got one page only
            assert f"{PAGED_RUNS} of {PAGED_RUNS} runs shown" in page.inner_text("#status")
            page.click("#page-next")
            _wait_for(lambda: by_cost[PAGE_ROWS] in _table_text(page))
            text = _table_text(page)
            assert all(r in text for r in by_cost[PAGE_ROWS : 2 * PAGE_ROWS]) and by_cost[0] not in text
            assert "page 2 of 3" in page.inner_text("#status")
        finally:
            browser.close()
