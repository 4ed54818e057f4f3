"""Reliability, run through the CLI as a user would: no wrong number published, no failure that looks like a
success, a clear one-line error for every bad input (docs/reliability.md lists each class and its test).

Every case runs ``python -m capbench ...`` in a subprocess and asserts on the exit code and the message; no case
passes on a traceback (:func:`cli` fails any run whose stderr holds one). Faulty servers come from
:mod:`capbench.testing.faulty_server`, damaged run directories are copies of one real run of the demo MoE.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from capbench.testing.faulty_server import FaultyServer

pytestmark = pytest.mark.integration


def cli(*args: str, check_code: int | None = None, env: dict[str, str] | None = None, **kw: Any) -> Any:
    """``python -m capbench ARGS``; never a traceback; ``check_code`` asserts the exit status."""
    done = subprocess.run(
        [sys.executable, "-m", "capbench", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
        **kw,
    )
    assert "Traceback" not in done.stderr, done.stderr
    if check_code is not None:
        assert done.returncode == check_code, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    return done


def error_line(stderr: str, command: str) -> str:
    """The one line the CLI printed for the failure (exactly one)."""
    lines = [line for line in stderr.splitlines() if line.startswith(f"capbench {command}: error:")]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture
def faulty() -> Iterator[Any]:
    """A factory: ``faulty(fault, every=1, max_model_len=None)`` -> a running server (stopped after the test)."""
    servers: list[FaultyServer] = []

    def start(fault: str, every: int = 1, max_model_len: int | None = None) -> FaultyServer:
        server = FaultyServer(0, fault, every, max_model_len)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def run_against(url: str, out: Path, *extra: str, code: int) -> Any:
    args = ["run", "--runner", "openai", "--base-url", url, "--task", "none", "--num-requests", "4"]
    return cli(*args, "--warmup", "0", "--max-tokens", "8", "--out", str(out), "--quiet", *extra, check_code=code)


# --- servers that send what cannot be true ------------------------------------------------------------------

SERVER_FAULTS = {
    "done_only": "the stream held no completion chunk",
    "negative_usage": "completion_tokens = -3, which is not a possible token count",
    "absurd_usage": "= 1000000000000000, which is not a possible token count",
    "string_usage": "completion_tokens = '4', which is not a possible token count",
    "bool_usage": "completion_tokens = True, which is not a possible token count",
    "float_usage": "completion_tokens = 4.5, which is not a possible token count",
    "usage_over_max_tokens": "13 output tokens for a request limited to max_tokens = 8",
    "usage_over_streamed": "reported 500 output tokens but streamed only 2 bytes of text",
    "malformed_chunk": "malformed SSE data (not JSON)",
    "no_finish": "stream ended without finish_reason or [DONE]",
    "http_500": "HTTP 500: injected failure",
}


@pytest.mark.parametrize("fault", sorted(SERVER_FAULTS))
def test_a_server_fault_fails_the_run_and_publishes_no_number(faulty: Any, tmp_path: Path, fault: str) -> None:
    server = faulty(fault)
    extra = ("--max-tokens", "1000") if fault == "usage_over_streamed" else ()
    done = run_against(server.url, tmp_path / "run", *extra, code=1)
    line = error_line(done.stderr, "run")
    assert "is failed: every measured request failed (4 of 4)" in line and SERVER_FAULTS[fault] in line
    manifest = json.loads((tmp_path / "run" / "run.json").read_text())
    assert manifest["status"] == "failed"
    records = [json.loads(x) for x in (tmp_path / "run" / "requests.jsonl").read_text().splitlines()]
    assert len(records) == 4 and all(SERVER_FAULTS[fault] in r["error"] for r in records)
    assert all(r["output_tokens"] is None for r in records)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["requests"]["completed"] == 0
    assert summary["throughput"]["output_tokens"] is None and summary["throughput"]["output_tokens_per_s"] is None
    csv = cli("export", str(tmp_path / "run"), check_code=0).stdout.splitlines()
    row = dict(zip(csv[0].split(","), csv[1].split(","), strict=False))
    assert row["status"] == "failed" and row["output_tokens_per_s"] == ""


def test_impossible_usage_on_some_requests_is_left_out_of_the_figures(faulty: Any, tmp_path: Path) -> None:
    """Half the responses claim 10^15 tokens: those requests are errors, the throughput counts the other half."""
    server = faulty("absurd_usage", every=2)
    run_against(server.url, tmp_path / "run", code=0)  # 2 of 4 failed: not more than max_error_rate 0.5
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "complete"
    assert summary["requests"]["errors"] == 2 and summary["requests"]["completed"] == 2
    assert summary["throughput"]["output_tokens"] == 2 * 4  # the faulty server streams 4 tokens per good answer
    server = faulty("absurd_usage", every=2)
    done = run_against(server.url, tmp_path / "strict", "--max-error-rate", "0.25", code=1)
    assert "2 of 4 measured requests failed, more than max_error_rate 0.25" in error_line(done.stderr, "run")


def test_a_request_that_cannot_fit_the_context_is_refused_before_any_work(faulty: Any, tmp_path: Path) -> None:
    server = faulty("none", max_model_len=64)
    done = run_against(server.url, tmp_path / "run", "--max-tokens", "100", code=2)
    assert "max_tokens 100 leaves no room for a prompt in the model's context of 64 tokens" in error_line(
        done.stderr, "run"
    )
    assert server.count == 0  # nothing was sent


def test_a_fixed_output_length_beyond_the_context_is_refused(tmp_path: Path) -> None:
    """The demo MoE has a 4,096-token context: 100,000 output tokens would run for hours; refused at once."""
    args = ["run", "--task", "none", "--fixed-prompt-tokens", "16", "--fixed-output-tokens", "100000"]
    done = cli(*args, "--num-requests", "2", "--out", str(tmp_path / "run"), "--quiet", check_code=2)
    line = error_line(done.stderr, "run")
    assert "16 prompt tokens + max_tokens 100000 exceed the model's context of 4096 tokens" in line


def test_a_prompt_longer_than_the_context_is_a_request_error(tmp_path: Path) -> None:
    """Data-driven prompts: the one that does not fit is an error record (never served), the others run."""
    prompts = tmp_path / "prompts.jsonl"
    long_prompt = " ".join(["seven"] * 5000)
    prompts.write_text(json.dumps({"prompt": "2 + 2 ="}) + "\n" + json.dumps({"prompt": long_prompt}) + "\n")
    args = ["run", "--task", "none", "--prompts", str(prompts), "--num-requests", "4", "--warmup", "0"]
    cli(*args, "--max-tokens", "4", "--concurrency", "1", "--out", str(tmp_path / "run"), "--quiet", check_code=0)
    records = [json.loads(x) for x in (tmp_path / "run" / "requests.jsonl").read_text().splitlines()]
    refused = [r for r in records if r["error"]]
    assert len(refused) == 2 and all("exceed the model's context of 4096 tokens" in r["error"] for r in refused)
    assert all(r["output_tokens"] is None for r in refused)


# --- damaged run directories ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real run of the embedded demo MoE (hf runner: requests, passes), scored."""
    out = tmp_path_factory.mktemp("good") / "run"
    cli("run", "--task", "none", "--num-requests", "4", "--max-tokens", "6", "--out", str(out), "--quiet", check_code=0)
    return out


def damaged(good_run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(good_run, copy)
    return copy


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def score(run: Path, *extra: str, code: int) -> Any:
    return cli("score", str(run), "--json", *extra, check_code=code)


def test_identical_duplicate_records_are_dropped_with_a_warning(good_run: Path, tmp_path: Path) -> None:
    run = damaged(good_run, tmp_path)
    reference = json.loads(score(run, "--no-write", code=0).stdout)
    for name in ("requests.jsonl", "passes.jsonl"):
        lines = lines_of(run / name)
        (run / name).write_text("".join(lines + lines[1:3]))  # two records appear twice
    done = score(run, code=0)
    assert "requests.jsonl: dropped 2 duplicate record(s)" in done.stderr
    assert "passes.jsonl: dropped 2 duplicate record(s)" in done.stderr
    summary = json.loads(done.stdout)
    assert summary["requests"] == reference["requests"]
    assert summary["throughput"]["output_tokens"] == reference["throughput"]["output_tokens"]
    assert summary["phases"]["all"]["passes"] == reference["phases"]["all"]["passes"]


@pytest.mark.parametrize("name", ["requests.jsonl", "passes.jsonl"])
def test_conflicting_duplicates_are_refused(good_run: Path, tmp_path: Path, name: str) -> None:
    run = damaged(good_run, tmp_path)
    lines = lines_of(run / name)
    twin = json.loads(lines[1])
    if name == "requests.jsonl":
        twin["output_tokens"] += 100
    else:
        twin["sampled"] = 0
    (run / name).write_text("".join([*lines, json.dumps(twin) + "\n"]))
    done = score(run, code=2)
    assert "a second, different record for" in error_line(done.stderr, "score")
    assert f"{name}, line {len(lines) + 1}" in done.stderr


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("output_tokens", "6", "'output_tokens' of r0000 must be a non-negative integer or null, got '6'"),
        ("output_tokens", -4, "must be a non-negative integer or null, got -4"),
        ("prompt_tokens", True, "'prompt_tokens' of r0000 must be a non-negative integer or null, got true"),
        ("t_done_ns", 0, "the timestamps of r0000 run backwards"),
        ("id", "", "'id' must be a non-empty string"),
    ],
)
def test_impossible_request_fields_are_refused_by_name(
    good_run: Path, tmp_path: Path, field: str, value: Any, message: str
) -> None:
    run = damaged(good_run, tmp_path)
    lines = lines_of(run / "requests.jsonl")
    index = next(i for i, text in enumerate(lines) if json.loads(text)["id"] == "r0000")
    record = json.loads(lines[index])
    record[field] = value
    lines[index] = json.dumps(record) + "\n"
    (run / "requests.jsonl").write_text("".join(lines))
    done = score(run, code=2)
    line = error_line(done.stderr, "score")
    assert f"requests.jsonl, line {index + 1}" in line and message in line


@pytest.mark.parametrize(("field", "value"), [("power_w", -250.0), ("energy_j", -1.0), ("power_w", "300")])
def test_impossible_power_samples_are_refused(good_run: Path, tmp_path: Path, field: str, value: Any) -> None:
    run = damaged(good_run, tmp_path)
    samples = [{"t_ns": t, "gpu": 0, "power_w": 300.0, "energy_j": 10.0 * t} for t in (1, 2, 3)]
    samples[1][field] = value
    (run / "power.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    done = score(run, code=2)
    assert f"power.jsonl, line 2: power sample '{field}' must be a finite number ≥ 0" in error_line(
        done.stderr, "score"
    )


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ({}, "schema_version None is not one this capbench reads"),
        ({"schema_version": 1, "status": "banana"}, "status 'banana' is not one of running, complete"),
        ([1, 2], "must hold a JSON object"),
    ],
)
def test_a_damaged_run_json_is_refused(good_run: Path, tmp_path: Path, manifest: Any, message: str) -> None:
    run = damaged(good_run, tmp_path)
    (run / "run.json").write_text(json.dumps(manifest))
    assert message in error_line(score(run, code=2).stderr, "score")
    assert message in error_line(cli("export", str(run), check_code=2).stderr, "export")


def test_a_record_file_that_is_a_directory_or_a_link_loop_is_an_error(good_run: Path, tmp_path: Path) -> None:
    run = damaged(good_run, tmp_path)
    summary_before = (run / "summary.json").read_bytes()
    (run / "requests.jsonl").unlink()
    (run / "requests.jsonl").mkdir()
    assert "requests.jsonl is a directory, not a record file" in error_line(score(run, code=2).stderr, "score")
    (run / "requests.jsonl").rmdir()
    (run / "loop-a").symlink_to(run / "loop-b")
    (run / "loop-b").symlink_to(run / "loop-a")
    (run / "requests.jsonl").symlink_to(run / "loop-a")
    line = error_line(score(run, code=2).stderr, "score")
    assert "cannot read" in line and "requests.jsonl" in line and "symbolic links" in line
    assert (run / "summary.json").read_bytes() == summary_before  # a good summary is never replaced by an empty one


def test_a_summary_that_cannot_be_written_points_to_no_write(good_run: Path, tmp_path: Path) -> None:
    run = damaged(good_run, tmp_path)
    (run / "summary.json").unlink()
    (run / "summary.json").mkdir()  # what a read-only run directory does to the write, for root too
    assert "score with --no-write" in error_line(score(run, code=2).stderr, "score")
    assert json.loads(score(run, "--no-write", code=0).stdout)["status"] == "complete"


def test_scoring_a_partial_run_says_so_and_carries_the_status(good_run: Path, tmp_path: Path) -> None:
    run = damaged(good_run, tmp_path)
    manifest = json.loads((run / "run.json").read_text())
    manifest.update(status="partial", error="stopped by SIGTERM (signal 15)")
    (run / "run.json").write_text(json.dumps(manifest))
    done = score(run, code=0)
    assert "is a partial run (stopped by SIGTERM (signal 15))" in done.stderr
    summary = json.loads(done.stdout)
    assert summary["status"] == "partial" and summary["run_error"] == "stopped by SIGTERM (signal 15)"
    assert any("this run is partial, not complete" in note for note in summary["notes"])
    csv = cli("export", str(run), check_code=0).stdout.splitlines()
    assert dict(zip(csv[0].split(","), csv[1].split(","), strict=False))["status"] == "partial"


# --- bad input ------------------------------------------------------------------------------------------------


def test_a_model_directory_with_a_broken_config_is_one_error(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{not json")
    done = cli("run", "--model", str(model), "--task", "none", "--out", str(tmp_path / "r"), check_code=2)
    assert "config.json is not readable JSON" in error_line(done.stderr, "run")
    (model / "config.json").write_text(json.dumps({"model_type": "qwen3_moe"}))
    done = cli("run", "--model", str(model), "--task", "none", "--out", str(tmp_path / "r2"), check_code=2)
    assert "has no tokenizer" in error_line(done.stderr, "run")
    (model / "tokenizer.json").write_text("{}")
    done = cli("run", "--model", str(model), "--task", "none", "--out", str(tmp_path / "r3"), check_code=2)
    assert "has no weights" in error_line(done.stderr, "run")


def test_a_prompt_file_that_is_not_utf8_is_one_error(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_bytes(b'{"prompt": "ok"}\n{"prompt": "caf\xe9"}\n')
    done = cli("run", "--task", "none", "--prompts", str(prompts), "--out", str(tmp_path / "r"), check_code=2)
    assert "is not UTF-8 text (line 2" in error_line(done.stderr, "run")


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("num_requests: 4\nconcurrency: 2\nnum_requests: 8\n", "line 3: the key 'num_requests' is given twice"),
        ("num_requests: true\n", "'num_requests': Value error, expected an integer, got the boolean true"),
        ("slo: {ttft_s: yes}\n", "SLO ttft_s must be a number of seconds, got the boolean true"),
    ],
)
def test_lenient_config_values_are_errors(tmp_path: Path, yaml_text: str, message: str) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(yaml_text)
    done = cli("run", str(config), "--out", str(tmp_path / "r"), check_code=2)
    assert message in done.stderr


def test_a_sweep_name_cannot_leave_the_output_folder(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("name: ../../escaped\nbase: {task: none}\naxes: {concurrency: [1]}\n")
    done = cli("sweep", str(sweep), "--dry-run", check_code=2, cwd=tmp_path)
    assert "must be letters, digits" in done.stderr and "no '..'" in done.stderr
    assert not (tmp_path.parent / "escaped").exists()


def test_a_missing_leaderboard_csv_is_an_error_before_serving(tmp_path: Path) -> None:
    done = cli("leaderboard", str(tmp_path / "nope.csv"), "--port", "1", check_code=2)
    assert "nope.csv does not exist" in error_line(done.stderr, "leaderboard")
    assert "http://" not in done.stdout  # nothing was served


# --- signals and a full disk ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)])
def test_a_signal_is_recorded_by_name_with_its_exit_code(tmp_path: Path, sig: int, code: int) -> None:
    from capbench.testing.mock_server import MockServerProcess, MockSettings

    with MockServerProcess(MockSettings(itl_s=0.02, output_tokens=50)) as server:
        run = tmp_path / "run"
        args = ["run", "--runner", "openai", "--base-url", server.url, "--task", "none", "--num-requests", "500"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "capbench", *args, "--concurrency", "2", "--out", str(run), "--quiet"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while not ((run / "requests.jsonl").exists() and (run / "requests.jsonl").stat().st_size > 0):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err
    assert proc.returncode == code
    manifest = json.loads((run / "run.json").read_text())
    name = signal.Signals(sig).name
    assert manifest["status"] == "partial"
    expected = "interrupted by the user (Ctrl-C, SIGINT)" if sig == signal.SIGINT else f"stopped by {name}"
    assert manifest["error"].startswith(expected)


def test_a_full_disk_ends_the_run_with_one_error_and_keeps_what_was_written(tmp_path: Path) -> None:
    """A file-size limit stands in for a full disk (the write fails the same way: an OSError on append)."""
    from capbench.testing.mock_server import MockServerProcess, MockSettings

    limit = 64 * 1024

    def small_disk() -> None:  # pragma: no cover - runs in the child
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    with MockServerProcess(MockSettings(output_tokens=64)) as server:
        run = tmp_path / "run"
        args = ["run", "--runner", "openai", "--base-url", server.url, "--task", "none", "--num-requests", "2000"]
        done = subprocess.run(
            [sys.executable, "-m", "capbench", *args, "--out", str(run), "--quiet"],
            capture_output=True,
            text=True,
            timeout=300,
            preexec_fn=small_disk,
        )
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 2
    line = error_line(done.stderr, "run")
    assert "cannot write the run's records in" in line and "File too large" in line
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["status"] in ("partial", "failed") and "File too large" in manifest["error"]
    kept = [json.loads(x) for x in (run / "requests.jsonl").read_text().splitlines()[:-1]]  # the last may be torn
    assert len(kept) > 10


def test_an_interruption_right_after_run_json_is_written_ends_the_run_partial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """run.json says "running" from its first write; a SIGTERM (Ctrl-C) landing right after, while the run's
    opening line is printed (a killed sweep's point, just started), must still end it partial, never leave it
    running."""
    from rich.console import Console

    from capbench.config import build_run_spec
    from capbench.run.execute import execute_run
    from capbench.testing.mock_server import MockServerProcess, MockSettings

    print_line = Console.print

    def interrupted(self: Console, *objects: Any, **kw: Any) -> None:
        if objects and str(objects[0]).startswith("run [bold]"):
            raise KeyboardInterrupt
        print_line(self, *objects, **kw)

    monkeypatch.setattr(Console, "print", interrupted)
    run = tmp_path / "run"
    settings = {"runner": "openai", "task": "none", "num_requests": 4, "out": str(run)}
    with MockServerProcess(MockSettings(output_tokens=4)) as server, pytest.raises(KeyboardInterrupt):
        execute_run(build_run_spec(None, {**settings, "base_url": server.url}), quiet=True)
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["status"] == "partial"


@pytest.mark.parametrize("where", ["as run.json is first renamed into place", "as the writer is made"])
def test_a_signal_landing_before_the_writer_context_still_ends_the_run_partial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """A real SIGINT delivered right after the rename that creates run.json ("running"), or right after the
    writer is made, before its context is entered (a busy machine preempts the point of a killed sweep there, and
    the parent-death SIGTERM is pending when it resumes): the run still ends partial, never left running."""
    import signal

    from capbench.config import build_run_spec
    from capbench.records import writer as writer_module
    from capbench.run import execute
    from capbench.testing.mock_server import MockServerProcess, MockSettings

    sent: list[str] = []
    if where.startswith("as run.json"):
        replace = writer_module.replace_file

        def replace_then_signal(path: Path, write: Any) -> None:
            replace(path, write)
            if path.name == "run.json" and not sent:
                sent.append(where)
                signal.raise_signal(signal.SIGINT)  # Python handles it at the next bytecode, still in here

        monkeypatch.setattr(writer_module, "replace_file", replace_then_signal)
    else:
        make = execute.RunWriter

        def make_then_signal(*args: Any, **kwargs: Any) -> Any:
            made = make(*args, **kwargs)
            sent.append(where)
            signal.raise_signal(signal.SIGINT)
            return made

        monkeypatch.setattr(execute, "RunWriter", make_then_signal)
    run = tmp_path / "run"
    settings = {"runner": "openai", "task": "none", "num_requests": 4, "out": str(run)}
    with MockServerProcess(MockSettings(output_tokens=4)) as server, pytest.raises(KeyboardInterrupt):
        execute.execute_run(build_run_spec(None, {**settings, "base_url": server.url}), quiet=True)
    assert sent == [where]
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["status"] == "partial"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handlers are back
