"""A run directory with server_metrics.jsonl gets summary["server"]; the report and the CSV show it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console

from capbench.records import SERVER_METRICS_FILE
from capbench.summary.columns import NAMES as COLUMNS
from capbench.summary.export import summary_row
from capbench.summary.report import print_summary
from capbench.summary.score import score_run_dir
from tests.support.paths import DATA

FIXTURES = DATA / "prometheus"
MANIFEST = {
    "schema_version": 1,
    "run_id": "server-run",
    "status": "complete",
    "engine": {"name": "vllm", "version": "0.32.0"},
    "hardware": {"device": "cpu", "num_gpus": 0},
}


def make_run(run_dir: Path, scrapes: list[dict[str, Any]] | None) -> Path:
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps(MANIFEST))
    requests = [
        {"id": "r0", "t_submit_ns": 0, "t_first_token_ns": 20_000_000, "t_done_ns": 100_000_000, "output_tokens": 9}
    ]
    (run_dir / "requests.jsonl").write_text("".join(json.dumps(r) + "\n" for r in requests))
    if scrapes is not None:
        (run_dir / SERVER_METRICS_FILE).write_text("".join(json.dumps(s) + "\n" for s in scrapes))
    return run_dir


def real_scrapes() -> list[dict[str, Any]]:
    texts = [(FIXTURES / name).read_text() for name in ("vllm-0.32-cpu.prom", "vllm-0.32-cpu-after.prom")]
    return [
        {"t_ns": 0, "phase": "start", "ok": True, "http_status": 200, "error": None, "text": texts[0]},
        {"t_ns": 1_000_000_000, "phase": "periodic", "ok": False, "http_status": None, "error": "x", "text": None},
        {"t_ns": 2_000_000_000, "phase": "end", "ok": True, "http_status": 200, "error": None, "text": texts[1]},
    ]


def test_server_metrics_file_becomes_the_server_section(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run", real_scrapes())
    summary = score_run_dir(run_dir)
    server = summary["server"]
    assert server is not None
    assert server["scrapes"]["ok"] == 2 and server["scrapes"]["failed"] == 1
    assert server["latency"]["ttft_s"]["count"] == 7
    assert json.loads((run_dir / "summary.json").read_text())["server"] == server

    row = summary_row(MANIFEST, summary)
    assert list(row) == list(COLUMNS)
    assert row["server_ttft_mean_s"] == server["latency"]["ttft_s"]["mean_s"]
    assert row["server_step_mean_tokens"] == server["tokens_per_step"]["mean_tokens"]
    assert row["server_generation_tokens"] == 88
    assert row["server_kv_cache_usage_max_fraction"] == 0.0  # measured idle, not missing

    console = Console(record=True, width=120)
    print_summary(summary, console)
    text = console.export_text()
    assert "Engine-side (server /metrics) vs client-side" in text
    assert "TTFT mean" in text and "queue time mean" in text and "preemptions" in text


def test_without_the_file_server_is_null(tmp_path: Path) -> None:
    summary = score_run_dir(make_run(tmp_path / "run", None), write=False)
    assert summary["server"] is None
    row = summary_row(MANIFEST, summary)
    assert all(row[c] is None for c in COLUMNS if c.startswith("server_"))
    console = Console(record=True, width=120)
    print_summary(summary, console)
    assert "Engine-side" not in console.export_text()


def test_too_few_successful_scrapes_is_null_with_a_note(tmp_path: Path) -> None:
    summary = score_run_dir(make_run(tmp_path / "run", real_scrapes()[:2]), write=False)
    assert summary["server"] is None
    assert any("fewer than two successful scrapes" in note for note in summary["notes"])
