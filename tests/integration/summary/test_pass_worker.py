"""A large passes.jsonl is scanned in a second process; the summary, warnings and errors are the in-process ones.

A run of a few thousand requests and passes is generated with the scale benchmark's generator and scored with
the size threshold at 0 (the child process really starts: counted) and with it out of reach (in-process); the
summaries must be the same text, float for float, and so must the warnings of a torn line and the error of a
record that breaks the contract. A child that dies without an answer sends the scan back in-process.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import Any

import orjson
import pytest

from capbench.errors import CapbenchError
from capbench.metrics.score import pass_scan_options
from capbench.records import RecordWarning
from capbench.records.reader import open_run
from capbench.summary import pass_worker
from capbench.summary.score import run_structure, score_run_dir
from tests.support.paths import REPO
from tests.support.scripts import load_script


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("pass-worker") / "run"
    load_script(REPO / "benchmarks" / "score_run_scale.py", "score_run_scale").generate_run(run_dir, 3000, seed=5)
    return run_dir


def _score(run_dir: Path, monkeypatch: pytest.MonkeyPatch, child: bool) -> tuple[Any, list[str], int]:
    """(summary or the error text, RecordWarning texts, answers received from a child)."""
    received: list[int] = []
    with monkeypatch.context() as m:
        m.setattr(pass_worker, "PARALLEL_MIN_BYTES", 0 if child else 1 << 62)
        m.setattr(pass_worker, "_cores", lambda: 2)
        original = pass_worker._receive_scan
        m.setattr(pass_worker, "_receive_scan", lambda *a: received.append(1) or original(*a))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                outcome: Any = score_run_dir(run_dir, write=False)
                outcome.pop("capbench_version", None)
            except CapbenchError as exc:
                outcome = f"error: {exc}"
    shown = [str(w.message) for w in caught if issubclass(w.category, RecordWarning)]
    return outcome, shown, len(received)


def _both(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, list[str]]:
    in_child = _score(run_dir, monkeypatch, child=True)
    in_process = _score(run_dir, monkeypatch, child=False)
    assert in_process[2] == 0
    assert orjson.dumps(in_child[:2], option=orjson.OPT_SORT_KEYS) == orjson.dumps(
        in_process[:2], option=orjson.OPT_SORT_KEYS
    )
    return in_child[0], in_child[1]


def test_the_child_gives_the_in_process_summary(generated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    summary, shown = _both(generated, monkeypatch)
    assert _score(generated, monkeypatch, child=True)[2] == 1  # the child really answered
    assert summary["pass_records"]["total"] == 3000 and shown == []


def test_the_childs_warnings_are_raised_here(generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(generated, run_dir)
    path = run_dir / "passes.jsonl"
    lines = path.read_bytes().splitlines()
    path.write_bytes(b"\n".join([*lines[:10], lines[5], *lines[10:], lines[-1][:40]]))  # a duplicate, a torn end
    _, shown = _both(run_dir, monkeypatch)
    assert any("torn last line" in text for text in shown)
    assert any("duplicate" in text for text in shown)


def test_the_childs_error_is_raised_here(generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(generated, run_dir)
    path = run_dir / "passes.jsonl"
    lines = path.read_bytes().splitlines()
    record = orjson.loads(lines[2000])
    record["sampled"] = -1
    lines[2000] = orjson.dumps(record)
    path.write_bytes(b"\n".join(lines) + b"\n")
    outcome, _ = _both(run_dir, monkeypatch)
    assert isinstance(outcome, str) and "'sampled' must be between 0" in outcome


class _Gone:
    """A child process that has already ended."""

    def is_alive(self) -> bool:
        return False

    def join(self, timeout: float | None = None) -> None:
        return None


def test_a_child_that_dies_without_an_answer_is_replaced_in_process(generated: Path, tmp_path: Path) -> None:
    import multiprocessing

    run = open_run(generated)
    options = pass_scan_options(run_structure(run.manifest))
    receive, send = multiprocessing.Pipe(duplex=False)
    send.close()  # the child's end closes with nothing sent, as when it is killed

    directory = tmp_path / "features"
    directory.mkdir()
    pending = pass_worker.PassScanInChild(run, options, _Gone(), receive, str(directory))
    scan = pending.result()
    assert scan.records == 3000 and scan.num_passes == 3000 - scan.warmup
    pending.close()
    assert not directory.exists()  # the directory of the child's feature file is removed


def test_a_small_file_is_scanned_in_process(generated: Path) -> None:
    run = open_run(generated)
    assert (generated / "passes.jsonl").stat().st_size < pass_worker.PARALLEL_MIN_BYTES
    assert pass_worker.start_pass_scan(run, pass_scan_options(run_structure(run.manifest))) is None


def test_a_child_that_failed_has_its_warnings_raised_once_by_the_scan_run_again(
    generated: Path, tmp_path: Path
) -> None:
    """A child that hit a bug sends its warnings with the failure; the scan then runs here and raises its own, so
    the child's are not raised as well (each warning once)."""
    import multiprocessing

    run = open_run(generated)
    options = pass_scan_options(run_structure(run.manifest))
    receive, send = multiprocessing.Pipe(duplex=False)
    send.send(("failed", "MemoryError: ", [("a warning the child recorded", RecordWarning)]))
    send.close()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scan = pass_worker.PassScanInChild(run, options, _Gone(), receive, str(tmp_path)).result()
    assert scan.records == 3000
    assert [str(w.message) for w in caught] == []
