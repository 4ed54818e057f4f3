"""A run scored as it is written (a real child process following ``requests.jsonl``) gets, bit for bit, the
summary ``capbench score`` gives the finished directory; anything out of the ordinary leaves the scoring to the
caller (issue #18)."""

from __future__ import annotations

import contextlib
import shutil
import time
import warnings
from pathlib import Path

import orjson
import pytest

from capbench.records import RecordWarning, reader
from capbench.records.reader import read_manifest
from capbench.records.schema import MANIFEST_FILE, REQUESTS_FILE
from capbench.summary import live
from capbench.summary.score import score_run_dir
from tests.support.paths import REPO
from tests.support.scripts import load_script

GOLDEN = REPO / "tests" / "data" / "golden" / "runs" / "full-v1"  # passes, power and a duplicate request line
PAUSE_S = live.POLL_S * 1.5


def _started(tmp_path: Path) -> tuple[Path, live.LiveScore, list[bytes]]:
    """A run directory with its manifest and an empty ``requests.jsonl``, followed by a live score; the golden
    run's request lines still to write."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shutil.copy(GOLDEN / MANIFEST_FILE, run_dir / MANIFEST_FILE)
    (run_dir / REQUESTS_FILE).touch()
    follower = live.start_live_score(run_dir)
    assert follower is not None
    return run_dir, follower, (GOLDEN / REQUESTS_FILE).read_bytes().splitlines(keepends=True)


def _following(follower: live.LiveScore, path: Path, timeout_s: float = 60.0) -> None:
    """Wait until the child has ``path`` open (it read ``run.json`` before): Linux's /proc lists its files."""
    fds = Path(f"/proc/{follower.process.pid}/fd")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if any(fd.readlink() == path.resolve() for fd in fds.iterdir()):
                return
        time.sleep(0.02)
    raise AssertionError(f"the live scorer never opened {path}")


def _append(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


def _finish(run_dir: Path) -> None:
    for name in ("passes.jsonl", "power.jsonl"):
        shutil.copy(GOLDEN / name, run_dir / name)


def _canonical(summary: dict[str, object]) -> bytes:
    return orjson.dumps(summary, option=orjson.OPT_SORT_KEYS)


def test_the_summary_is_the_one_of_the_finished_directory(tmp_path: Path) -> None:
    run_dir, follower, lines = _started(tmp_path)
    requests = run_dir / REQUESTS_FILE
    third = len(lines) // 3
    _append(requests, b"".join(lines[:third]))
    time.sleep(PAUSE_S)  # the child reads these while the run "goes"
    half = lines[third]
    _append(requests, half[: len(half) // 2])  # a line half written when the child looks
    time.sleep(PAUSE_S)
    _append(requests, half[len(half) // 2 :] + b"".join(lines[third + 1 :]))
    _finish(run_dir)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        summary = follower.result()
    assert summary is not None and not follower.process.is_alive()
    with warnings.catch_warnings(record=True) as expected:
        warnings.simplefilter("always")
        scored = score_run_dir(run_dir, write=False)
    assert _canonical(summary) == _canonical(scored)
    assert summary["requests"]["total"] == 400  # 401 lines, one of them a duplicate
    assert [(w.category, str(w.message)) for w in shown] == [(w.category, str(w.message)) for w in expected]
    assert any("duplicate" in str(w.message) for w in shown)


def test_a_torn_last_line_is_warned_about_as_after_the_run(tmp_path: Path) -> None:
    run_dir, follower, lines = _started(tmp_path)
    _append(run_dir / REQUESTS_FILE, b"".join(lines) + lines[0][:20])
    _finish(run_dir)
    with pytest.warns(RecordWarning, match="torn last line 402"):
        summary = follower.result()
    assert summary is not None and summary["requests"]["total"] == 400


def test_a_changed_slo_leaves_the_scoring_to_the_caller(tmp_path: Path) -> None:
    run_dir, follower, lines = _started(tmp_path)
    _append(run_dir / REQUESTS_FILE, b"".join(lines))
    _following(follower, run_dir / REQUESTS_FILE)
    manifest = read_manifest(run_dir)
    manifest["spec"]["slo"] = {"ttft_s": 123.0}
    (run_dir / MANIFEST_FILE).write_bytes(orjson.dumps(manifest))
    _finish(run_dir)
    assert follower.result() is None


def test_a_replaced_requests_file_leaves_the_scoring_to_the_caller(tmp_path: Path) -> None:
    run_dir, follower, lines = _started(tmp_path)
    _following(follower, run_dir / REQUESTS_FILE)
    replacement = run_dir / "requests.new"
    replacement.write_bytes(b"".join(lines))
    replacement.replace(run_dir / REQUESTS_FILE)
    _finish(run_dir)
    assert follower.result() is None


def test_a_record_the_scorer_refuses_leaves_its_error_to_the_caller(tmp_path: Path) -> None:
    run_dir, follower, lines = _started(tmp_path)
    bad = orjson.loads(lines[5])
    bad["t_done_ns"] = bad["t_submit_ns"] - 1
    _append(run_dir / REQUESTS_FILE, b"".join(lines[:5]) + orjson.dumps(bad) + b"\n")
    _finish(run_dir)
    assert follower.result() is None
    with pytest.raises(Exception, match="line 6"):
        score_run_dir(run_dir, write=False)


def test_one_core_or_no_requests_file_starts_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert live.start_live_score(tmp_path) is None
    (tmp_path / REQUESTS_FILE).touch()
    monkeypatch.setattr(live, "usable_cores", lambda: 1)
    assert live.start_live_score(tmp_path) is None


BUILD = load_script(REPO / "tests" / "data" / "golden" / "build_golden.py", "build_golden")


@pytest.mark.parametrize("block_bytes", [200, 777, 4096])
def test_where_reads_cut_the_file_changes_no_figure(block_bytes: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """What makes a live score the summary of the finished directory: the request tallies (and the rest of the
    scorer) give the same figures, bit for bit, whatever blocks the reads cut the files into."""
    runs = BUILD.golden_runs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RecordWarning)
        whole = {name: BUILD.comparable(score_run_dir(path, write=False)) for name, path in runs.items()}
        monkeypatch.setattr(reader.KeyedFile.__init__, "__defaults__", (block_bytes, None))
        for name, path in runs.items():
            assert BUILD.comparable(score_run_dir(path, write=False)) == whole[name], name


def test_a_request_scan_made_elsewhere_scores_a_run_read_either_way() -> None:
    """score_loaded_run takes its requests from the RequestScan it is given (used once: its columns are
    described), for a streamed run and for one read into memory alike: here another run's requests."""
    from capbench.metrics.request_scan import scan_requests
    from capbench.records import read_run
    from capbench.records.reader import open_run
    from capbench.summary.score import score_loaded_run

    other = GOLDEN.parent / "partial-v1"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RecordWarning)
        summaries = []
        for run in (open_run(GOLDEN), read_run(GOLDEN)):
            files = open_run(other)
            summaries.append(score_loaded_run(run, request_scan=scan_requests(files.request_chunks, files.manifest)))
        own = score_run_dir(GOLDEN, write=False)
    assert _canonical(summaries[0]) == _canonical(summaries[1])
    assert summaries[0]["requests"] == score_run_dir(other, write=False)["requests"] != own["requests"]
