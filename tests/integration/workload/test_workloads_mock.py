"""Datasets and traces through the real CLI against the real mock server on 127.0.0.1: traces replayed on time
with exact prompt lengths, shared blocks sent as the same tokens, what was sent recorded in run.json and the
summary, and bad input refused before any request."""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from capbench.cli import main
from capbench.config import build_run_spec
from capbench.testing.mock_server import MockServerProcess, MockSettings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server() -> Iterator[MockServerProcess]:
    with MockServerProcess(MockSettings(ttft_s=0.005, itl_s=0.001, output_tokens=8)) as proc:
        yield proc


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def measured(run: Path) -> list[dict[str, Any]]:
    return sorted((r for r in lines(run / "requests.jsonl") if not r["warmup"]), key=lambda r: r["id"])


def write_mooncake(path: Path, count: int, rate_per_s: float, seed: int = 0) -> list[dict[str, Any]]:
    """A Mooncake-format trace whose requests reuse a few system-prompt blocks (ids 0-2), then blocks of their own."""
    rng, t_ms, entries = random.Random(seed), 0.0, []
    for i in range(count):
        t_ms += rng.expovariate(rate_per_s) * 1e3
        shared = [rng.randrange(3)] if rng.random() < 0.7 else []
        own = [1000 + 10 * i + k for k in range(rng.randint(1, 2))]
        blocks = shared + own
        length = 512 * (len(blocks) - 1) + rng.randint(1, 512)
        entries.append(
            {
                "timestamp": round(t_ms, 3),
                "input_length": length,
                "output_length": rng.randint(1, 12),
                "hash_ids": blocks,
            }
        )
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))
    return entries


def run(*args: str) -> int:
    return main(["run", "--runner", "openai", "--power", "none", "--quiet", *args])


def test_a_mooncake_trace_is_replayed_on_time_with_exact_lengths(
    server: MockServerProcess, tiny_model_dir: Path, tmp_path: Path
) -> None:
    trace = tmp_path / "mooncake.jsonl"
    entries = write_mooncake(trace, 300, rate_per_s=100)
    out = tmp_path / "run"
    args = ["--base-url", server.url, "--model-path", str(tiny_model_dir), "--out", str(out)]
    # A fresh process, as a user runs it: the test process has accumulated other tests' threads (Ray's, pools),
    # which take the GIL from the client's loop and would measure them, not the client.
    command = [sys.executable, "-m", "capbench", "run", "--runner", "openai", "--power", "none", "--quiet", *args]
    done = subprocess.run(
        [*command, "--trace", str(trace), "--trace-format", "mooncake"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    records = measured(out)
    assert len(records) == 300 and all(r["error"] is None for r in records)
    # exact token counts: the server counted the ids it got; the output is the trace's
    assert [r["prompt_tokens"] for r in records] == [e["input_length"] for e in entries]
    assert [r["output_tokens"] for r in records] == [e["output_length"] for e in entries]
    # the schedule is the trace's, to the nanosecond; the client sent on time
    t0 = records[0]["t_scheduled_ns"]
    assert [r["t_scheduled_ns"] - t0 for r in records] == [
        round((e["timestamp"] - entries[0]["timestamp"]) * 1e6) for e in entries
    ]
    # on time: submitted at the scheduled instant (the timer is not rounded to the selector's millisecond: a median
    # of about 0.5 ms before that was fixed), and no request held back by a stall (a full GC pass took 70 ms)
    submit_ms = np.array([(r["t_submit_ns"] - r["t_scheduled_ns"]) / 1e6 for r in records])
    late_ms = np.array([(r["t_sent_ns"] - r["t_scheduled_ns"]) / 1e6 for r in records])
    sent = f"sent p50 {np.median(late_ms):.3f} ms, p99 {np.percentile(late_ms, 99):.3f} ms"
    figures = f"submitted p50 {np.median(submit_ms):.3f} ms after the schedule; {sent}"
    assert np.median(submit_ms) <= 0.25 and np.percentile(late_ms, 99) <= 10.0, figures
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["load"]["pattern"] == "trace_replay"
    dataset = manifest["load"]["dataset"]
    assert dataset["name"] == "trace" and dataset["format"] == "mooncake" and dataset["entries"] == 300
    assert dataset["planned"]["prompt_tokens"]["max"] == max(e["input_length"] for e in entries)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["workload"]["prompt_tokens"] == dataset["planned"]["prompt_tokens"]
    assert summary["client"]["schedule_lag_p99_s"] is not None


def test_requests_that_share_a_block_send_the_same_tokens(
    server: MockServerProcess, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """The bodies the runner sends (built as in the run above): a shared block id is the same 512 ids."""
    from capbench.run.datasets import dataset_workload
    from capbench.runners.openai.runner import OpenAIRunner

    trace = tmp_path / "mooncake.jsonl"
    entries = write_mooncake(trace, 40, rate_per_s=100, seed=3)
    spec = build_run_spec(
        None,
        {
            "runner": "openai",
            "base_url": server.url,
            "model_path": str(tiny_model_dir),
            "trace": str(trace),
            "trace_format": "mooncake",
        },
    )
    workload, _ = dataset_workload(spec, tiny_model_dir)
    runner = OpenAIRunner(spec, None)
    runner.model_name = "m"
    prompts = [json.loads(runner.request_body(r))["prompt"] for r in workload.measured]
    blocks: dict[int, list[int]] = {}
    shared = 0
    for entry, prompt in zip(entries, prompts, strict=True):
        assert len(prompt) == entry["input_length"] and all(isinstance(i, int) for i in prompt)
        for k, block in enumerate(entry["hash_ids"]):
            tokens = prompt[512 * k : 512 * (k + 1)]
            if block in blocks:
                seen = blocks[block]
                n = min(len(seen), len(tokens))
                assert tokens[:n] == seen[:n], f"block {block} differs"
                shared += 1
            if len(tokens) > len(blocks.get(block, [])):
                blocks[block] = tokens
    assert shared >= 20  # the trace really reuses blocks
    assert len(set(map(tuple, prompts))) == len(prompts)  # no two requests are the same prompt


def test_a_burstgpt_trace_skips_failed_entries(server: MockServerProcess, tiny_model_dir: Path, tmp_path: Path) -> None:
    trace = tmp_path / "burst.csv"
    rows = ["Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type"]
    for i in range(30):
        response = 0 if i % 10 == 3 else 4 + i % 5
        rows.append(f"{i * 2},ChatGPT,{20 + i},{response},{20 + i + response},Conversation log")
    trace.write_text("\n".join(rows) + "\n")
    out = tmp_path / "run"
    args = ["--base-url", server.url, "--model-path", str(tiny_model_dir), "--out", str(out), "--warmup", "1"]
    assert run(*args, "--trace", str(trace), "--trace-format", "burstgpt", "--replay-speed", "40") == 0
    records = measured(out)
    kept = [(20 + i, 4 + i % 5) for i in range(30) if i % 10 != 3]
    assert [(r["prompt_tokens"], r["output_tokens"]) for r in records] == kept
    dataset = json.loads((out / "run.json").read_text())["load"]["dataset"]
    assert dataset["skipped_failed_entries"] == 3 and dataset["replay_speed"] == 40.0
    assert dataset["duration_s"] == pytest.approx(58 / 40)


def test_random_lengths_are_sent_as_planned(server: MockServerProcess, tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["--base-url", server.url, "--model-path", str(tiny_model_dir), "--out", str(out), "--num-requests", "40"]
    random_args = ["--dataset", "random", "--mean-prompt-tokens", "64", "--mean-output-tokens", "6"]
    assert run(*args, *random_args, "--length-distribution", "lognormal", "--length-sigma", "0.5") == 0
    manifest = json.loads((out / "run.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    planned = manifest["load"]["dataset"]["planned"]
    assert summary["workload"]["prompt_tokens"] == planned["prompt_tokens"]
    assert summary["workload"]["output_tokens"] == planned["output_tokens"]
    assert planned["prompt_tokens"]["max"] > planned["prompt_tokens"]["p50"]  # a spread, not one length
    assert manifest["load"]["ignore_eos"] is True and manifest["load"]["max_tokens"] is None


def sharegpt_file(path: Path, count: int) -> Path:
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "then", "it", "ran", "far", "away", "from", "home"]
    rng = random.Random(0)
    conversations = [
        {
            "id": f"c{i}",
            "conversations": [
                {"from": "human", "value": " ".join(rng.choices(words, k=rng.randint(6, 40)))},
                {"from": "gpt", "value": " ".join(rng.choices(words, k=rng.randint(6, 30)))},
            ],
        }
        for i in range(count)
    ]
    path.write_text(json.dumps(conversations))
    return path


def test_sharegpt_from_a_local_file(server: MockServerProcess, tiny_model_dir: Path, tmp_path: Path) -> None:
    data = sharegpt_file(tmp_path / "sharegpt.json", 30)
    out = tmp_path / "run"
    common = ["--base-url", server.url, "--model-path", str(tiny_model_dir), "--num-requests", "12"]
    sharegpt = ["--dataset", "sharegpt", "--dataset-path", str(data), "--api", "chat"]
    assert run(*common, *sharegpt, "--out", str(out)) == 0
    again = tmp_path / "again"
    assert run(*common, *sharegpt, "--out", str(again)) == 0
    first, second = (json.loads((d / "run.json").read_text())["load"]["dataset"] for d in (out, again))
    assert first["name"] == "sharegpt" and first["conversations"] == 30 and first == second  # reproducible
    records = measured(out)
    assert len(records) == 12 and all(r["error"] is None for r in records)
    assert [r["output_tokens"] for r in records] == [r["output_tokens"] for r in measured(again)]


def test_sharegpt_on_the_hf_runner_sends_the_sample_it_drew(tiny_model_dir: Path, tmp_path: Path) -> None:
    """The hf runner counts the ids it computes on: what was sent is exactly the drawn sample's lengths."""
    data = sharegpt_file(tmp_path / "sharegpt.json", 30)
    out = tmp_path / "run"
    args = ["run", "--model", str(tiny_model_dir), "--dataset", "sharegpt", "--dataset-path", str(data)]
    assert main([*args, "--num-requests", "10", "--concurrency", "5", "--out", str(out), "--quiet"]) == 0
    planned = json.loads((out / "run.json").read_text())["load"]["dataset"]["planned"]
    sent = json.loads((out / "summary.json").read_text())["workload"]
    assert sent["prompt_tokens"] == planned["prompt_tokens"] and sent["output_tokens"] == planned["output_tokens"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            '{"timestamp": 1, "input_length": 3, "output_length": 2, "hash_ids": [1]}\n{"timestamp": 0}\n',
            "mooncake.jsonl:2: missing",
        ),
        (
            '{"timestamp": 5, "input_length": 3, "output_length": 2, "hash_ids": [1]}\n'
            '{"timestamp": 1, "input_length": 3, "output_length": 2, "hash_ids": [1]}\n',
            "mooncake.jsonl:2: timestamp",
        ),
    ],
)
def test_a_bad_trace_is_refused_before_any_request(
    server: MockServerProcess, tiny_model_dir: Path, tmp_path: Path, capsys: Any, content: str, message: str
) -> None:
    trace = tmp_path / "mooncake.jsonl"
    trace.write_text(content)
    out = tmp_path / "run"
    before = len(server.sent()["records"])
    args = ["--base-url", server.url, "--model-path", str(tiny_model_dir), "--out", str(out)]
    assert run(*args, "--trace", str(trace), "--trace-format", "mooncake") == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert len(server.sent()["records"]) == before  # nothing was sent


def test_the_hf_runner_refuses_a_trace(tmp_path: Path, capsys: Any) -> None:
    trace = tmp_path / "t.jsonl"
    trace.write_text('{"timestamp": 0, "input_length": 3, "output_length": 2, "hash_ids": [1]}\n')
    assert main(["run", "--trace", str(trace), "--trace-format", "mooncake", "--out", str(tmp_path / "r")]) == 2
    assert "cannot send requests at recorded times" in capsys.readouterr().err


def test_requests_longer_than_the_context_are_refused_before_any(
    tiny_model_dir: Path, tmp_path: Path, capsys: Any
) -> None:
    args = ["run", "--model", str(tiny_model_dir), "--dataset", "random", "--length-distribution", "exact"]
    code = main([*args, "--mean-prompt-tokens", "5000", "--mean-output-tokens", "8", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "requests of up to 5008 tokens" in err and "context of 4096 tokens" in err, err
    assert not (tmp_path / "r" / "requests.jsonl").exists() or not (tmp_path / "r" / "requests.jsonl").read_text()


def multi_turn_file(path: Path, count: int) -> Path:
    """ShareGPT conversations of 2 to 4 turns."""
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "then", "it", "ran", "far", "away", "from", "home"]
    rng = random.Random(1)
    conversations = []
    for i in range(count):
        messages = []
        for k in range(2 * rng.randint(2, 4)):
            messages.append(
                {"from": "human" if k % 2 == 0 else "gpt", "value": " ".join(rng.choices(words, k=rng.randint(6, 20)))}
            )
        conversations.append({"id": f"c{i}", "conversations": messages})
    path.write_text(json.dumps(conversations))
    return path


def test_multi_turn_sharegpt_sessions_grow_their_prompt_turn_by_turn(
    server: MockServerProcess, tiny_model_dir: Path, tmp_path: Path
) -> None:
    data = multi_turn_file(tmp_path / "sharegpt.json", 20)
    out = tmp_path / "run"
    args = ["--base-url", server.url, "--model-path", str(tiny_model_dir), "--num-requests", "6", "--concurrency", "3"]
    multi = ["--dataset", "sharegpt", "--dataset-path", str(data), "--api", "chat", "--multi-turn"]
    assert run(*args, *multi, "--think-time-s", "0.02", "--warmup", "1", "--out", str(out)) == 0
    manifest = json.loads((out / "run.json").read_text())
    dataset = manifest["load"]["dataset"]
    assert dataset["multi_turn"] is True and dataset["planned"]["sessions"] == 6
    records = measured(out)
    assert len(records) == dataset["planned"]["requests"] and all(r["error"] is None for r in records)
    sessions: dict[str, list[dict[str, Any]]] = {}
    for r in sorted(records, key=lambda r: r["t_submit_ns"]):
        sessions.setdefault(r["session_id"], []).append(r)
    assert len(sessions) == 6
    for turns in sessions.values():
        assert [r["turn"] for r in turns] == list(range(len(turns))) and len(turns) >= 2
        prompts = [r["prompt_tokens"] for r in turns]
        assert prompts == sorted(prompts) and len(set(prompts)) == len(prompts)  # the conversation so far, growing
        for before, after in itertools.pairwise(turns):
            assert after["t_submit_ns"] - before["t_done_ns"] >= 20_000_000  # the answer, then the think time
    # at most 3 sessions at a time
    spans = sorted(
        [(t[0]["t_submit_ns"], 1) for t in sessions.values()] + [(t[-1]["t_done_ns"], -1) for t in sessions.values()]
    )
    assert max(np.cumsum([d for _, d in spans])) == 3
    summary = json.loads((out / "summary.json").read_text())
    by_turn = summary["sessions"]["by_turn"]
    assert summary["sessions"]["sessions"] == 6 and by_turn[0]["requests"] == 6
    assert [row["turn"] for row in by_turn] == list(range(len(by_turn))) and len(by_turn) >= 2
    assert all(row["ttft_s"]["count"] == row["requests"] for row in by_turn)
    means = [row["prompt_tokens"]["mean"] for row in by_turn]
    assert means == sorted(means)
    from capbench.summary.export import export_runs

    row = export_runs([out]).iloc[0]
    assert row["dataset"] == "sharegpt (multi-turn)" and row["measured_sessions"] == 6 and row["think_time_s"] == 0.02
    again = tmp_path / "again"
    assert run(*args, *multi, "--think-time-s", "0.02", "--warmup", "1", "--out", str(again)) == 0
    assert json.loads((again / "run.json").read_text())["load"]["dataset"] == dataset  # reproducible


def test_multi_turn_synthetic_conversations(server: MockServerProcess, tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["--base-url", server.url, "--model-path", str(tiny_model_dir), "--num-requests", "4", "--out", str(out)]
    synthetic = ["--dataset", "random", "--mean-prompt-tokens", "12", "--mean-output-tokens", "3", "--api", "chat"]
    assert run(*args, *synthetic, "--multi-turn", "--turns", "3") == 0
    records = measured(out)
    assert len(records) == 12 and {r["turn"] for r in records} == {0, 1, 2}
    assert all(r["output_tokens"] == 3 for r in records)  # the dataset's output lengths, with ignore_eos


RANDOM = ["--dataset", "random", "--mean-prompt-tokens", "4", "--mean-output-tokens", "2"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--dataset", "prefix", "--multi-turn"], "multi_turn serves conversations"),
        ([*RANDOM, "--multi-turn", "--api", "chat"], "needs turns"),
        ([*RANDOM, "--multi-turn", "--turns", "2"], "use api chat"),
        ([*RANDOM, "--turns", "2"], "only used with multi_turn"),
    ],
)
def test_bad_multi_turn_settings_are_refused(
    tiny_model_dir: Path, tmp_path: Path, capsys: Any, extra: list[str], message: str
) -> None:
    args = ["run", "--runner", "openai", "--base-url", "http://127.0.0.1:9", "--model-path", str(tiny_model_dir)]
    assert main([*args, *extra, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_the_hf_runner_refuses_multi_turn(tmp_path: Path, capsys: Any) -> None:
    args = ["run", "--dataset", "random", "--mean-prompt-tokens", "4", "--mean-output-tokens", "2", "--api", "chat"]
    assert main([*args, "--multi-turn", "--turns", "2", "--out", str(tmp_path / "r")]) == 2
    assert "serves static batches, not sessions" in capsys.readouterr().err
