"""`capbench sweep` end to end: tiny points against the mock OpenAI server, each a real `capbench run` process.

Covers the grid with include/exclude, a point that fails (nothing listens on its URL) while the others
complete, --resume (complete points untouched, others re-run in a new attempt directory), a sweep killed with
SIGKILL and resumed (no duplicate, no lost point), and Ctrl-C (results and manifest written, state interrupted).
"""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from capbench.cli import main
from capbench.testing.mock_server import MockServerProcess, MockSettings

pytestmark = pytest.mark.integration

DEAD_URL = "http://127.0.0.1:9"  # nothing listens on the discard port: the run fails before it starts


@pytest.fixture(scope="module")
def server() -> Iterator[MockServerProcess]:
    with MockServerProcess(MockSettings(ttft_s=0.002, itl_s=0.001, output_tokens=8)) as proc:
        yield proc


@pytest.fixture(scope="module")
def slow_server() -> Iterator[MockServerProcess]:
    """~0.5 s per request: a point of 6 sequential requests runs ~3 s, long enough to interrupt."""
    with MockServerProcess(MockSettings(ttft_s=0.05, itl_s=0.05, output_tokens=10)) as proc:
        yield proc


def _sweep_file(tmp_path: Path, url: str, **extra: Any) -> Path:
    sweep = {
        "name": "tiny",
        "base": {"runner": "openai", "base_url": url, "task": "none", "num_requests": 4, "warmup": 0},
        "axes": {"concurrency": [1, 2], "max_tokens": [4, 8]},
        "exclude": [{"concurrency": 2, "max_tokens": 8}],
        "include": [{"base_url": DEAD_URL}],
        **extra,
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


def _manifest(out: Path) -> dict[str, Any]:
    data = orjson.loads((out / "sweep.json").read_bytes())
    assert isinstance(data, dict)
    return data


def _results(out: Path) -> list[dict[str, str]]:
    with (out / "results.csv").open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _sweep_cmd(sweep: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "capbench", "sweep", str(sweep), "--out", str(out), *extra]


def test_sweep_runs_the_grid_records_a_failure_and_resumes(
    tmp_path: Path, server: MockServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = _sweep_file(tmp_path, server.url)
    assert main(["sweep", str(sweep), "--dry-run"]) == 0
    dry = capsys.readouterr().out
    out = tmp_path / "out"
    assert main(["sweep", str(sweep), "--out", str(out)]) == 1  # one point failed
    printed = capsys.readouterr().out

    manifest = _manifest(out)
    points = manifest["points"]
    assert len(points) == 4 and manifest["state"] == "finished"
    assert [p["assignment"] for p in points] == [
        {"concurrency": 1, "max_tokens": 4},
        {"concurrency": 1, "max_tokens": 8},
        {"concurrency": 2, "max_tokens": 4},
        {"base_url": DEAD_URL},
    ]
    assert all(p["id"] in dry for p in points)  # --dry-run printed the same ids
    done, failed = points[:3], points[3]
    assert [p["status"] for p in done] == ["complete"] * 3
    assert failed["status"] == "failed" and "cannot reach the server" in failed["attempts"][0]["error"]
    assert failed["run_dir"] is None and "failed" in printed
    for point in done:
        run_dir = out / point["run_dir"]
        assert run_dir == out / "points" / point["id"] / "attempt-1"
        assert (run_dir / "summary.json").is_file()
        config = yaml.safe_load((out / "points" / point["id"] / "config.yaml").read_text())
        assert config["max_tokens"] == point["assignment"]["max_tokens"]
        assert point["attempts"][0]["duration_s"] > 0

    rows = _results(out)
    assert sorted(r["sweep_point_id"] for r in rows) == sorted(p["id"] for p in done)
    by_id = {r["sweep_point_id"]: r for r in rows}
    for point in done:
        row = by_id[point["id"]]
        assert int(row["max_tokens"]) == point["assignment"]["max_tokens"]
        assert int(row["concurrency"]) == point["assignment"]["concurrency"]
        assert int(row["output_tokens"]) == 4 * point["assignment"]["max_tokens"]  # the mock honors max_tokens

    # The same directory again without --resume is refused; with it, only the failed point runs (attempt 2).
    assert main(["sweep", str(sweep), "--out", str(out)]) == 2
    assert "--resume" in capsys.readouterr().err
    stamps = {p["id"]: (out / p["run_dir"] / "run.json").stat().st_mtime_ns for p in done}
    assert main(["sweep", str(sweep), "--out", str(out), "--resume"]) == 1
    resumed = _manifest(out)["points"]
    assert [len(p["attempts"]) for p in resumed] == [1, 1, 1, 2]
    assert resumed[3]["attempts"][1]["run_dir"].endswith("attempt-2")
    assert {p["id"]: (out / p["run_dir"] / "run.json").stat().st_mtime_ns for p in resumed[:3]} == stamps
    assert len(_results(out)) == 3 and len(_manifest(out)["runs"]) == 2  # the refused call recorded nothing


def test_invalid_point_fails_before_anything_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep = tmp_path / "bad.yaml"
    sweep.write_text(yaml.safe_dump({"base": {"task": "none"}, "axes": {"concurrency": [1, -3]}}))
    out = tmp_path / "out"
    assert main(["sweep", str(sweep), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "concurrency=-3" in err and "not a valid run" in err
    assert not out.exists()


def _wait(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _statuses(out: Path) -> list[str]:
    try:
        return [p["status"] for p in _manifest(out)["points"]]
    except (OSError, orjson.JSONDecodeError):
        return []


def _processes_naming(text: str) -> Iterator[tuple[int, str]]:
    """(pid, command line) of every other process whose command line contains ``text``."""
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit() or int(pid_dir.name) == os.getpid():
            continue
        try:
            cmdline = (pid_dir / "cmdline").read_bytes().decode(errors="replace").replace("\0", " ")
        except OSError:
            continue
        if text in cmdline:
            yield int(pid_dir.name), cmdline


def _kill_points_of(out: Path) -> None:
    """SIGKILL every process whose command line names ``out`` (the points' `capbench run` children)."""
    for pid, _ in _processes_naming(str(out)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _slow_sweep(tmp_path: Path, url: str) -> Path:
    sweep = {
        "name": "slow",
        "base": {"runner": "openai", "base_url": url, "task": "none", "num_requests": 6, "warmup": 0},
        "axes": {"concurrency": [1], "max_tokens": [8, 9, 10]},
    }
    path = tmp_path / "slow.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


def test_killed_sweep_resumes_without_duplicates_or_losses(tmp_path: Path, slow_server: MockServerProcess) -> None:
    sweep, out = _slow_sweep(tmp_path, slow_server.url), tmp_path / "out"
    proc = subprocess.Popen(_sweep_cmd(sweep, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(lambda: _statuses(out)[:2] == ["complete", "running"], 120, "one complete point and one running")
        second = _manifest(out)["points"][1]["id"]
        _wait(lambda: (out / "points" / second / "attempt-1" / "run.json").is_file(), 60, "its run started")
    finally:
        proc.kill()  # the sweep dies without any clean-up, as when its own process is killed
        proc.wait()
    try:  # the point's process is told (SIGTERM, parent-death signal) and ends on its own, cleanly
        _wait(lambda: not any(_processes_naming(str(out))), 90, "the point's process to end without its sweep")
    finally:
        _kill_points_of(out)
    killed_run = orjson.loads((out / "points" / second / "attempt-1" / "run.json").read_bytes())
    assert killed_run["status"] == "partial"  # it kept its completed requests
    before = _manifest(out)
    assert before["state"] == "running"  # nothing wrapped up
    first_dir = before["points"][0]["run_dir"]
    first_stamp = (out / first_dir / "run.json").stat().st_mtime_ns

    assert subprocess.run(_sweep_cmd(sweep, out, "--resume"), capture_output=True, timeout=300).returncode == 0
    after = _manifest(out)
    assert after["state"] == "finished" and [p["status"] for p in after["points"]] == ["complete"] * 3
    assert [len(p["attempts"]) for p in after["points"]] == [1, 2, 1]  # the killed point re-ran in attempt-2
    assert after["points"][0]["run_dir"] == first_dir
    assert (out / first_dir / "run.json").stat().st_mtime_ns == first_stamp  # the complete point never re-ran
    killed = after["points"][1]
    assert killed["attempts"][0]["status"] == "partial" and killed["run_dir"].endswith("attempt-2")
    assert "sweep stopped while this attempt ran" in killed["attempts"][0]["error"]
    rows = _results(out)
    assert sorted(r["sweep_point_id"] for r in rows) == sorted(p["id"] for p in after["points"])  # each once


def test_ctrl_c_writes_results_and_marks_the_sweep_interrupted(tmp_path: Path, slow_server: MockServerProcess) -> None:
    sweep, out = _slow_sweep(tmp_path, slow_server.url), tmp_path / "out"
    proc = subprocess.Popen(_sweep_cmd(sweep, out), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait(lambda: _statuses(out)[:2] == ["complete", "running"], 120, "one complete point and one running")
        second = _manifest(out)["points"][1]["id"]
        # The second point's run has begun (a busy machine may take seconds to get there: a fixed sleep was flaky).
        _wait(lambda: (out / "points" / second / "attempt-1" / "run.json").is_file(), 60, "its run started")
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, output.decode()[-2000:]
    manifest = _manifest(out)
    assert manifest["state"] == "interrupted"
    statuses = [p["status"] for p in manifest["points"]]
    assert statuses[0] == "complete" and statuses[1] == "partial" and statuses[2] == "pending"
    interrupted = out / manifest["points"][1]["attempts"][0]["run_dir"]
    assert orjson.loads((interrupted / "run.json").read_bytes())["status"] == "partial"  # the child ended cleanly
    assert [r["sweep_point_id"] for r in _results(out)] == [manifest["points"][0]["id"]]
    assert b"results:" in output


def _kill_point(out: Path, point_id: str) -> bool:
    """SIGKILL the `capbench run` process of ``point_id`` (a hard crash: no chance to write anything)."""
    for pid, cmdline in _processes_naming(str(out / "points" / point_id / "attempt-1")):
        if " sweep " not in cmdline:
            os.kill(pid, signal.SIGKILL)
            return True
    return False


def test_a_crashing_point_is_recorded_the_others_complete_and_the_directory_is_locked(
    tmp_path: Path, slow_server: MockServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep, out = _slow_sweep(tmp_path, slow_server.url), tmp_path / "out"
    proc = subprocess.Popen(_sweep_cmd(sweep, out), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait(lambda: _statuses(out)[:2] == ["complete", "running"], 120, "the second point running")
        second = _manifest(out)["points"][1]["id"]
        _wait(lambda: (out / "points" / second / "attempt-1" / "run.json").is_file(), 60, "its run started")
        # A second sweep on the same directory is refused while the first runs.
        assert main(["sweep", str(sweep), "--out", str(out), "--resume"]) == 2
        assert "another capbench sweep (or a point it started) is using" in capsys.readouterr().err
        assert _kill_point(out, second)
        output, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, output.decode()[-2000:]
    points = _manifest(out)["points"]
    assert [p["status"] for p in points] == ["complete", "partial", "complete"]
    crashed = points[1]["attempts"][0]
    assert "killed by SIGKILL" in crashed["error"]
    assert sorted(r["sweep_point_id"] for r in _results(out)) == sorted([points[0]["id"], points[2]["id"]])


def test_an_edited_sweep_resumes_with_only_its_own_points_in_the_results(
    tmp_path: Path, server: MockServerProcess
) -> None:
    sweep = tmp_path / "s.yaml"
    base = {"runner": "openai", "base_url": server.url, "task": "none", "num_requests": 2, "warmup": 0}
    sweep.write_text(yaml.safe_dump({"base": base, "axes": {"max_tokens": [2, 3]}}))
    out = tmp_path / "out"
    assert main(["sweep", str(sweep), "--out", str(out)]) == 0
    sweep.write_text(yaml.safe_dump({"base": base, "axes": {"max_tokens": [3, 4]}}))
    assert main(["sweep", str(sweep), "--out", str(out), "--resume"]) == 0
    manifest = _manifest(out)
    in_grid = {p["assignment"]["max_tokens"]: p["in_grid"] for p in manifest["points"]}
    assert in_grid == {3: True, 4: True, 2: False}
    assert [len(p["attempts"]) for p in manifest["points"]] == [1, 1, 1]  # max_tokens 3 was not run again
    assert sorted(int(r["max_tokens"]) for r in _results(out)) == [3, 4]
    assert manifest["runs"][0]["sweep_sha256"] != manifest["runs"][1]["sweep_sha256"]
    # Resuming from the sweep's own copy of its file works too (the copy is not copied onto itself).
    assert main(["sweep", str(out / "sweep.yaml"), "--out", str(out), "--resume"]) == 0


def test_sweep_repeats_every_point_and_exports_the_averaged_row(tmp_path: Path, server: MockServerProcess) -> None:
    sweep = {
        "name": "repeated",
        "base": {"runner": "openai", "base_url": server.url, "task": "none", "num_requests": 4, "warmup": 0},
        "axes": {"concurrency": [1, 2]},
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--repeats", "2"]) == 0
    points = _manifest(out)["points"]
    assert len(points) == 2 and all(p["status"] == "complete" for p in points)
    rows = _results(out)
    assert len(rows) == 2 and all(row["num_repeats"] == "2" for row in rows)
    assert all(float(row["ci95_low_output_tokens_per_s"]) <= float(row["output_tokens_per_s"]) for row in rows)
    for point in points:
        attempt = out / point["run_dir"]
        assert (attempt / "repeat-1" / "run.json").exists() and (attempt / "repeat-2" / "run.json").exists()
