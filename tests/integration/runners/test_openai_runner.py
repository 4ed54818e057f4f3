"""`capbench run --runner openai` against the mock OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from capbench.cli import main
from capbench.records import read_run
from capbench.testing.mock_server import MockServerProcess, MockSettings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server() -> Iterator[MockServerProcess]:
    """TTFT 20 ms, 5 ms between tokens, 16 tokens per request."""
    with MockServerProcess(MockSettings(ttft_s=0.02, itl_s=0.005, output_tokens=16)) as proc:
        yield proc


def run_openai(url: str, out: Path, *args: str) -> int:
    return main(
        ["run", "--runner", "openai", "--base-url", url, "--out", str(out), "--power", "none", "--quiet", *args]
    )


def summary_of(run_dir: Path) -> dict[str, Any]:
    return dict(json.loads((run_dir / "summary.json").read_text()))


def test_closed_loop_run_end_to_end(server: MockServerProcess, tmp_path: Path) -> None:
    out = tmp_path / "run"
    code = run_openai(
        server.url,
        out,
        "--num-requests",
        "24",
        "--concurrency",
        "4",
        "--max-tokens",
        "16",
        "--slo",
        "ttft_s=0.5,tpot_s=0.05",
    )
    assert code == 0
    run = read_run(out)
    manifest = run.manifest
    assert manifest["status"] == "complete"
    assert manifest["engine"]["name"] == "openai" and manifest["engine"]["served_model"] == "capbench-mock"
    assert manifest["token_counts"] == "server_usage"
    assert manifest["load"]["pattern"] == "closed_loop" and manifest["load"]["concurrency"] == 4
    assert manifest["client"]["completed"] >= 24
    assert len(run.requests) == 26  # 2 warm-up + 24 measured
    for record in run.requests:
        assert record["error"] is None and record["http_status"] == 200
        assert record["prompt_id"] and record["stream_done"] is True
        assert record["t_submit_ns"] <= record["t_sent_ns"] <= record["t_first_byte_ns"] <= record["t_first_token_ns"]
        assert record["output_tokens"] == 16 and len(record["token_times_ns"]) == 16
        assert record["t_first_token_ns"] - record["t_submit_ns"] >= 20_000_000  # the server's TTFT
        assert record["token_times_ns"] == sorted(record["token_times_ns"])
    summary = summary_of(out)
    ttft = summary["latency"]["ttft_s"]
    assert 0.02 <= ttft["p50"] < 0.2
    itl = summary["latency"]["itl_s"]
    assert 0.004 <= itl["p50"] < 0.05
    assert summary["goodput"]["fraction"] == 1.0
    assert 2.0 < summary["load"]["mean_in_flight"] <= 4.0 and summary["load"]["max_in_flight"] == 4
    assert summary["client"] is not None
    assert summary["phases"] == {}  # no engine steps are visible from a client
    assert summary["energy"]["energy_j"] is None


def test_errors_are_recorded_without_stopping_the_run(tmp_path: Path) -> None:
    settings = MockSettings(output_tokens=4, fail_rate=0.3, seed=3)
    with MockServerProcess(settings) as failing:
        out = tmp_path / "run"
        assert run_openai(failing.url, out, "--num-requests", "40", "--concurrency", "4", "--warmup", "0") == 0
    run = read_run(out)
    errored = [r for r in run.requests if r["error"] is not None]
    assert len(run.requests) == 40 and errored
    assert all(r["http_status"] == 500 and r["output_tokens"] is None for r in errored)
    summary = summary_of(out)
    assert summary["requests"]["errors"] == len(errored)
    assert summary["requests"]["error_rate"] == pytest.approx(len(errored) / 40)


def test_open_loop_rate_and_duration(server: MockServerProcess, tmp_path: Path) -> None:
    out = tmp_path / "rate"
    assert run_openai(server.url, out, "--request-rate", "40", "--num-requests", "60", "--arrival", "poisson") == 0
    manifest = read_run(out).manifest
    assert manifest["load"]["pattern"] == "open_loop" and manifest["load"]["request_rate_per_s"] == 40
    rate = summary_of(out)["load"]["submit_rate_per_s"]
    assert 20 < rate < 80  # Poisson arrivals at 40/s over 60 requests
    out = tmp_path / "duration"
    started = time.monotonic()
    assert run_openai(server.url, out, "--duration-s", "1.0", "--concurrency", "2") == 0
    assert time.monotonic() - started < 20
    summary = summary_of(out)
    assert summary["requests"]["measured"] >= 5
    assert 0.9 <= summary["throughput"]["wall_s"] < 3.0


def test_concurrency_sweep_runs_through_the_sweep_engine(server: MockServerProcess, tmp_path: Path) -> None:
    """``--concurrency 1,3`` is a sweep: one process per value, the sweep's manifest and results.csv."""
    out = tmp_path / "sweep"
    assert run_openai(server.url, out, "--concurrency", "1,3", "--num-requests", "9", "--warmup", "0") == 0
    manifest = json.loads((out / "sweep.json").read_text())
    runs = sorted(out.glob("points/*/attempt-1"))
    assert len(runs) == 2 and all(p["status"] == "complete" for p in manifest["points"])
    by_concurrency = {read_run(run).manifest["load"]["concurrency"]: run for run in runs}
    assert sorted(by_concurrency) == [1, 3]
    for concurrency, run in by_concurrency.items():
        assert summary_of(run)["load"]["max_in_flight"] == concurrency
    rows = (out / "results.csv").read_text().splitlines()
    assert len(rows) == 3  # header + one row per point


def test_chat_api(server: MockServerProcess, tmp_path: Path) -> None:
    out = tmp_path / "chat"
    assert (
        run_openai(server.url, out, "--api", "chat", "--num-requests", "4", "--warmup", "0", "--max-tokens", "16") == 0
    )
    run = read_run(out)
    assert run.manifest["engine"]["api"] == "chat"
    assert all(r["output_tokens"] == 16 and r["output_text"] for r in run.requests)


def test_unreachable_server_is_a_clear_error_before_any_work(tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "run"
    assert run_openai("http://127.0.0.1:9", out) == 2
    assert "cannot reach the server" in capsys.readouterr().err
    assert not (out / "run.json").exists()


def test_server_killed_mid_run_leaves_a_partial_run(tmp_path: Path) -> None:
    proc = MockServerProcess(MockSettings(ttft_s=0.01, itl_s=0.01, output_tokens=8))
    proc.start()
    out = tmp_path / "run"
    requests_file = out / "requests.jsonl"

    def kill_when_some_are_done() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if requests_file.exists() and len(requests_file.read_bytes().splitlines()) >= 10:
                break
            time.sleep(0.02)
        proc.kill()

    killer = threading.Thread(target=kill_when_some_are_done)
    killer.start()
    try:
        code = run_openai(proc.url, out, "--num-requests", "2000", "--concurrency", "4", "--warmup", "0")
    finally:
        killer.join()
        proc.stop()
    assert code == 2
    run = read_run(out)
    assert run.manifest["status"] == "partial"
    assert "unavailable" in run.manifest["error"]
    assert run.manifest["client"]["aborted"] is True  # the load report survives an abnormal end
    assert run.manifest["token_counts"] == "server_usage"
    completed = [r for r in run.requests if r["error"] is None]
    assert len(completed) >= 10
    summary = summary_of(out)
    assert summary["status"] == "partial" and summary["requests"]["completed"] == len(completed)


def _prompts_of(run_dir: Path) -> list[str]:
    from capbench.workload import load_prompts

    by_id = {p.id: p.text for p in load_prompts().prompts}
    return [by_id[r["prompt_id"]] for r in read_run(run_dir).requests]


def test_token_counts_fall_back_to_the_tokenizer_only_without_usage(tiny_model_dir: Path, tmp_path: Path) -> None:
    with MockServerProcess(MockSettings(output_tokens=6, send_usage=False)) as no_usage:
        counted = tmp_path / "counted"
        args = ("--num-requests", "3", "--warmup", "0", "--max-tokens", "6")
        assert run_openai(no_usage.url, counted, "--model-path", str(tiny_model_dir), *args) == 0
        unknown = tmp_path / "unknown"
        assert run_openai(no_usage.url, unknown, *args) == 0
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    run = read_run(counted)
    assert run.manifest["token_counts"] == "tokenizer_fallback"
    assert run.manifest["model"]["config"]["model_type"] == "qwen3_moe"  # model_path also gives the structure
    for record in run.requests:
        assert record["output_tokens"] == len(tokenizer(record["output_text"], add_special_tokens=False)["input_ids"])
        assert record["prompt_tokens"] > 0
    with MockServerProcess(MockSettings(output_tokens=6, send_usage=False)) as no_usage:
        chat = tmp_path / "chat"
        assert run_openai(no_usage.url, chat, "--api", "chat", "--model-path", str(tiny_model_dir), *args) == 0
    for record, prompt in zip(read_run(chat).requests, _prompts_of(chat), strict=True):
        templated = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True, return_dict=True
        )["input_ids"]
        assert record["prompt_tokens"] == len(templated) > 5
    run = read_run(unknown)
    assert run.manifest["token_counts"] == "unavailable"
    assert all(r["output_tokens"] is None and r["error"] is None for r in run.requests)
    summary = summary_of(unknown)
    assert summary["throughput"]["output_tokens_per_s"] is None  # not measured, never 0
    assert summary["latency"]["ttft_s"]["count"] == 3
