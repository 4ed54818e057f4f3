"""Benchmark: the leaderboard at scale, as a user meets it: a real server, headless Chromium, 10k and 100k runs.

Usage::

    .venv/bin/python benchmarks/leaderboard_browser.py                  # 10,000 and 100,000 runs
    .venv/bin/python benchmarks/leaderboard_browser.py --runs 10000

For each size it writes the CSV of ``benchmarks/leaderboard_scale.py`` (the shipped runs repeated with new ids
and seeded random cost, accuracy and throughput) and measures, in this order:

* ``floor_pandas_s`` / ``floor_csv_s``: the time to merely parse the same CSV with ``pandas.read_csv`` / the
  stdlib ``csv`` reader in this process (median of 3): the floor every figure below is divided by, so a noisy,
  shared machine still gives comparable ratios (``ratio = figure_s / floor_pandas_s``);
* ``first_rows_from_start_s``: from starting ``python -m capbench leaderboard CSV`` (a subprocess on
  127.0.0.1) to the first run row in the page's table in headless Chromium (the browser is already running and
  navigates as soon as the server answers HTTP), i.e. interpreter start, imports, load and validation, the page
  and its first table update; ``first_rows_from_navigation_s``: the same end point, counted from navigation;
* ``filter_change_browser_s``: in the page, once what came before is drawn (a second for the events an update
  sets off to start, then no "processing" indicator left on the page), from picking one more filter value
  (engine = vllm, then the descending sort) to the status line or the table showing something new with no
  "processing" indicator left on either (Gradio's indicator alone changes their text while the event runs), and
  the page's next animation frame (the figures of the same update drawn), i.e. server work, transfer and
  rendering;
* ``filter_server_s``: the server's work for one filter change (engine = vllm), timed in a separate process
  through Gradio's own ``Blocks.process_api`` (preprocess, the event's function, postprocess: everything the
  server does for the event but the HTTP and queue), median of 3 repeats of the same change (which may reuse
  what an earlier one computed); ``filter_server_first_s``: the first time that change is made (nothing to
  reuse: what a user's new filter costs);
* ``table_payload_kb``: the size of the table's postprocessed JSON in that event (what the browser receives for
  the table); ``scatter_payload_kb``: the same for the cost-accuracy scatter; ``event_payload_kb``: every output
  of the event together;
* ``server_peak_rss_mb``: the server process's peak resident memory (``VmHWM`` of ``/proc/PID/status``) after
  the page, the filter changes and a second page load.

Chromium comes from ``scripts/chromium.sh`` (or ``$CAPBENCH_CHROMIUM``); the browser reaches only 127.0.0.1.
Figures that could not be measured (a timeout) are printed as ``null``, never 0.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from leaderboard_scale import make_csv  # noqa: E402  (a sibling script, not a package)

FIRST_ROWS_TIMEOUT_S = 600.0
FILTER_TIMEOUT_S = 300.0
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


def _median_s(fn: Callable[[], Any], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _csv_floor(path: Path) -> None:
    with path.open(encoding="utf-8", newline="") as f:
        for _ in csv.reader(f):
            pass


def _env() -> dict[str, str]:
    """The subprocesses import capbench from this checkout (the one this script sits in)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _chromium() -> str:
    found = os.environ.get("CAPBENCH_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    out = subprocess.run(["bash", str(REPO / "scripts" / "chromium.sh")], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def _peak_rss_mb(pid: int) -> float | None:
    """``VmHWM`` (peak resident set) of a live process, in MiB; None when it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


_TABLE_HAS = "([id, text]) => { const e = document.querySelector(id); return !!e && e.innerText.includes(text); }"


def _browser_figures(csv_path: Path, chromium: str, log: Path) -> dict[str, float | None]:
    from playwright.sync_api import sync_playwright

    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    out: dict[str, float | None] = dict.fromkeys(
        (
            "first_rows_from_start_s",
            "first_rows_from_navigation_s",
            "filter_change_browser_s",
            "sort_change_browser_s",
            "server_peak_rss_mb",
        )
    )
    with sync_playwright() as p, log.open("w") as log_file:
        browser = p.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1200})
        cmd = [sys.executable, "-m", "capbench", "leaderboard", str(csv_path), "--host", "127.0.0.1"]
        t_start = time.perf_counter()
        cmd += ["--port", str(port)]
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, cwd=REPO, env=_env())
        try:
            if not _wait_http(url, proc, FIRST_ROWS_TIMEOUT_S):
                print(f"    the server did not start: {log.read_text()[-2000:]}")
                return out
            t_nav = time.perf_counter()
            page.goto(url, timeout=FIRST_ROWS_TIMEOUT_S * 1000)
            page.wait_for_function(_TABLE_HAS, arg=["#runs-table", "bench-"], timeout=FIRST_ROWS_TIMEOUT_S * 1000)
            t_rows = time.perf_counter()
            out["first_rows_from_start_s"] = t_rows - t_start
            out["first_rows_from_navigation_s"] = t_rows - t_nav
            out["filter_change_browser_s"] = _change(
                page, lambda: _pick(page, "#filter-engine input", "vllm"), FILTER_TIMEOUT_S
            )
            out["sort_change_browser_s"] = _change(page, lambda: page.click("#sort-descending input"), FILTER_TIMEOUT_S)
            page.reload()  # a second session: what the server keeps per visitor counts in the peak
            page.wait_for_function(_TABLE_HAS, arg=["#runs-table", "bench-"], timeout=FIRST_ROWS_TIMEOUT_S * 1000)
            out["server_peak_rss_mb"] = _peak_rss_mb(proc.pid)
        except Exception as exc:  # a timeout leaves the remaining figures null
            print(f"    browser step failed: {type(exc).__name__}: {str(exc)[:300]}")
            out["server_peak_rss_mb"] = _peak_rss_mb(proc.pid)
        finally:
            browser.close()
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    return out


def _pick(page: Any, selector: str, option: str) -> None:
    page.click(selector)
    page.get_by_role("option", name=option, exact=True).click()
    page.keyboard.press("Escape")


_SHOWN = (
    "(ids) => ids.map((id) => { const e = document.querySelector(id); if (!e) return null;"
    " const copy = e.cloneNode(true);"
    " copy.querySelectorAll('[data-testid=\"status-tracker\"]').forEach((t) => t.remove());"
    " return copy.textContent; })"
)
"""The text of each element without Gradio's status tracker (whose "processing | 0.4s" changes the text while an
event still runs)."""
_UPDATED = (
    "([ids, before]) => { const shown = (" + _SHOWN + ")(ids);"
    " const busy = ids.some((id) => document.querySelector(id + ' .progress-text'));"
    " return !busy && shown.some((text, i) => text !== null && text !== before[i]); }"
)
"""Neither the table nor the status line shows Gradio's "processing" indicator, and one of them shows something
new (a filter change may keep the first page's rows and change the count; a sort keeps the count)."""
_NEXT_FRAME = "() => new Promise((done) => requestAnimationFrame(() => setTimeout(done, 0)))"
_UPDATED_IDS = ["#status", "#runs-table"]


def _settle(page: Any) -> None:
    """Wait a second (for the events an update sets off to start), then until no event is pending on the page (no
    "processing" indicator anywhere) and the next frame."""
    page.wait_for_timeout(1000)
    page.wait_for_function("() => !document.querySelector('.progress-text')", timeout=FIRST_ROWS_TIMEOUT_S * 1000)
    page.evaluate(_NEXT_FRAME)


def _change(page: Any, act: Callable[[], None], timeout_s: float) -> float | None:
    """Seconds from ``act`` to the status line or the table showing something new with the update done (no
    "processing" indicator on either) and the page's next frame (what the same update drew, the figures too)."""
    _settle(page)  # timed from a page that has drawn what came before (the load, the previous change)
    before = page.evaluate(_SHOWN, _UPDATED_IDS)
    t0 = time.perf_counter()
    act()
    page.wait_for_function(_UPDATED, arg=[_UPDATED_IDS, before], timeout=timeout_s * 1000)
    page.evaluate(_NEXT_FRAME)
    return time.perf_counter() - t0


def server_work(csv_path: Path) -> dict[str, float]:
    """In this process: build the app on ``csv_path`` and time Gradio's processing of one engine filter change."""
    from gradio.state_holder import SessionState

    from capbench.leaderboard.app import build_app

    t0 = time.perf_counter()
    app = build_app([csv_path])
    build_s = time.perf_counter() - t0
    engine = next(b for b in app.blocks.values() if getattr(b, "elem_id", None) == "filter-engine")
    fn = next(f for f in app.fns.values() if any(t[0] == engine._id and t[1] == "change" for t in f.targets))
    payload = [getattr(block, "value", None) for block in fn.inputs]
    payload[fn.inputs.index(engine)] = ["vllm"]
    state = SessionState(app)
    result: dict[str, Any] = {}

    def once() -> None:
        result.update(asyncio.run(app.process_api(fn, list(payload), state=state)))

    t0 = time.perf_counter()
    once()
    first_s = time.perf_counter() - t0
    seconds = _median_s(once)
    table = next(b for b in app.blocks.values() if getattr(b, "elem_id", None) == "runs-table")
    scatter = next(b for b in app.blocks.values() if getattr(b, "elem_id", None) == "cap-scatter")

    def kib(data: Any) -> float:
        return len(json.dumps(data, default=str).encode()) / 1024

    return {
        "app_build_s": build_s,
        "filter_server_first_s": first_s,
        "filter_server_s": seconds,
        "table_payload_kb": kib(result["data"][fn.outputs.index(table)]),
        "scatter_payload_kb": kib(result["data"][fn.outputs.index(scatter)]),
        "event_payload_kb": kib(result["data"]),
    }


def _server_work_subprocess(csv_path: Path) -> dict[str, float | None]:
    proc = subprocess.run(
        [sys.executable, __file__, "--server-work", str(csv_path)], capture_output=True, text=True, cwd=REPO, env=_env()
    )
    if proc.returncode != 0:
        print(f"    server-work step failed: {proc.stderr[-1500:]}")
        keys = ("app_build_s", "filter_server_first_s", "filter_server_s", "table_payload_kb", "scatter_payload_kb")
        return dict.fromkeys((*keys, "event_payload_kb"))
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _fmt(value: float | None, unit: str) -> str:
    return "null" if value is None else f"{value:.3f} {unit}" if unit == "s" else f"{value:.0f} {unit}"


def run_size(runs: int, chromium: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "board.csv"
        make_csv(path, runs)
        import pandas as pd

        floor_pandas_s = _median_s(lambda: pd.read_csv(path, low_memory=False))
        floor_csv_s = _median_s(lambda: _csv_floor(path))
        work = _server_work_subprocess(path)
        browser = _browser_figures(path, chromium, Path(tmp) / "server.log")
        size_mib = path.stat().st_size / 2**20
    figures: dict[str, float | None] = {"floor_pandas_s": floor_pandas_s, "floor_csv_s": floor_csv_s}
    figures |= work | browser
    print(f"{runs} runs (CSV {size_mib:.1f} MiB):")
    for name, value in figures.items():
        unit = "MiB" if name.endswith("_mb") else "KiB" if name.endswith("_kb") else "s"
        ratio = ""
        if unit == "s" and value is not None and not name.startswith("floor_"):
            ratio = f"   ({value / floor_pandas_s:6.1f} x pandas parse)"
        print(f"  {name:<30} {_fmt(value, unit):>12}{ratio}")
    print(f"  json: {json.dumps({'runs': runs, **figures})}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--server-work", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.server_work is not None:
        print(json.dumps(server_work(args.server_work)))
        return
    chromium = _chromium()
    for runs in args.runs:
        run_size(runs, chromium)


if __name__ == "__main__":
    main()
