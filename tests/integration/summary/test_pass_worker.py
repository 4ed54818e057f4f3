"""A large passes.jsonl is scanned by child processes, one segment each; the summary, warnings and errors are the
in-process ones.

A run of a few thousand requests and passes is generated with the scale benchmark's generator and scored with
the least segment size at 1 byte (1, 2 or 3 children really start: their joined answers are counted) and with it
out of reach (in-process); the summaries must be the same text, float for float, and so must the warnings of a torn
line, of a bad line in a later segment (its line number is the file's), of duplicates within and across segments
(the scan runs again in-process) and the error of a record that breaks the contract. A child that dies without
an answer sends the scan back in-process.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable
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


def _score(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch, children: int
) -> tuple[Any, list[str], list[tuple[int, bool]]]:
    """(summary or the error text, RecordWarning texts, (segments, joined) of each attempt to join the children's
    answers); ``children`` 0: in-process."""
    joins: list[tuple[int, bool]] = []
    with monkeypatch.context() as m:
        m.setattr(pass_worker, "SEGMENT_MIN_BYTES", 1 if children else 1 << 62)
        m.setattr(pass_worker, "MAX_SEGMENTS", max(children, 1))
        m.setattr(pass_worker, "usable_cores", lambda: 4)
        original = pass_worker._join

        def counted(headers: list[dict[str, Any]]) -> Any:
            scan = original(headers)
            joins.append((len(headers), scan is not None))
            return scan

        m.setattr(pass_worker, "_join", counted)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                outcome: Any = score_run_dir(run_dir, write=False)
                outcome.pop("capbench_version", None)
            except CapbenchError as exc:
                outcome = f"error: {exc}"
    shown = [str(w.message) for w in caught if issubclass(w.category, RecordWarning)]
    return outcome, shown, joins


def _all(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, list[str], list[list[tuple[int, bool]]]]:
    """Score with 1, 2 and 3 children and in-process: the same summary (or error) and warnings every time."""
    in_process = _score(run_dir, monkeypatch, children=0)
    assert in_process[2] == []
    joins = []
    for children in (1, 2, 3):
        in_children = _score(run_dir, monkeypatch, children=children)
        assert orjson.dumps(in_children[:2], option=orjson.OPT_SORT_KEYS) == orjson.dumps(
            in_process[:2], option=orjson.OPT_SORT_KEYS
        )
        joins.append(in_children[2])
    return in_process[0], in_process[1], joins


def _rewrite(generated: Path, tmp_path: Path, edit: Callable[[list[bytes]], list[bytes]]) -> Path:
    run_dir = tmp_path / "run"
    shutil.copytree(generated, run_dir)
    path = run_dir / "passes.jsonl"
    path.write_bytes(b"\n".join(edit(path.read_bytes().splitlines())))
    return run_dir


def test_the_children_give_the_in_process_summary(generated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    summary, shown, joins = _all(generated, monkeypatch)
    assert joins == [[(1, True)], [(2, True)], [(3, True)]]  # the children really answered, and were joined
    assert summary["pass_records"]["total"] == 3000 and shown == []


def test_the_childrens_warnings_are_raised_here_with_the_files_line_numbers(
    generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = _rewrite(generated, tmp_path, lambda lines: [*lines[:2500], b"not json", *lines[2500:], lines[-1][:40]])
    _, shown, joins = _all(run_dir, monkeypatch)
    assert shown == [
        f"{run_dir / 'passes.jsonl'}: skipped line that is not valid JSON 2501",
        f"{run_dir / 'passes.jsonl'}: skipped torn last line 3002",
    ]
    assert joins == [[(1, True)], [(2, True)], [(3, True)]]  # joined: no second read was needed


@pytest.mark.parametrize("copied", [5, 2900], ids=["within-the-first-segment", "across-segments"])
def test_duplicates_send_the_scan_back_in_process(
    generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, copied: int
) -> None:
    """A duplicate (here of line 11, placed at line ``copied`` + 1) is found from the children's key hashes,
    wherever the two copies are; the scan in one process then drops it with its usual warning."""
    run_dir = _rewrite(generated, tmp_path, lambda lines: [*lines[:copied], lines[10], *lines[copied:]])
    summary, shown, joins = _all(run_dir, monkeypatch)
    assert len(shown) == 1 and "duplicate" in shown[0]
    assert summary["pass_records"]["total"] == 3000
    assert joins == [[(1, False)], [(2, False)], [(3, False)]]


def test_the_childrens_error_is_the_in_process_error(
    generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def break_one(lines: list[bytes]) -> list[bytes]:
        record = orjson.loads(lines[2000])
        record["sampled"] = -1
        lines[2000] = orjson.dumps(record)
        return [*lines, b""]

    outcome, _, _ = _all(_rewrite(generated, tmp_path, break_one), monkeypatch)
    assert isinstance(outcome, str) and "'sampled' must be between 0" in outcome and "pass record 2000 " in outcome


def test_segments_that_disagree_on_the_moe_layers_are_not_joined() -> None:
    """Without a model structure each segment takes its layer count from its first measured pass: two different
    counts are for the scan of the whole file to report (nothing is read here: the join refuses first)."""
    headers = [
        {"unhashable": False, "num_moe_layers": 48, "hashes": "unused"},
        {"unhashable": False, "num_moe_layers": 47, "hashes": "unused"},
    ]
    assert pass_worker._join(headers) is None
    assert pass_worker._join([{**headers[0], "unhashable": True}]) is None


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
    pending = pass_worker.PassScanInChildren(run, options, [pass_worker.Child(_Gone(), receive)], str(directory))
    scan = pending.result()
    assert scan.records == 3000 and scan.num_passes == 3000 - scan.warmup
    pending.close()
    assert not directory.exists()  # the directory of the child's feature file is removed


def test_a_small_file_is_scanned_in_process(generated: Path) -> None:
    run = open_run(generated)
    assert (generated / "passes.jsonl").stat().st_size < pass_worker.SEGMENT_MIN_BYTES
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
        children = [pass_worker.Child(_Gone(), receive)]
        scan = pass_worker.PassScanInChildren(run, options, children, str(tmp_path)).result()
    assert scan.records == 3000
    assert [str(w.message) for w in caught] == []


@pytest.mark.parametrize(
    ("cores", "pass_mib", "request_mib", "readers"),
    [
        (2, 305, 473, 1),  # compact passes, the smaller file: one core left to the request scan
        (2, 563, 473, 2),  # passes as JSON lists, the larger file: every core reads passes
        (2, 563, 0, 2),  # no requests to read
        (2, 63, 0, 0),  # below one segment: read in-process
        (1, 563, 473, 0),  # one core: in-process
        (16, 305, 473, 4),  # at least 64 MiB a reader
        (16, 4000, 4100, 8),  # at most MAX_SEGMENTS
    ],
)
def test_how_many_readers(
    monkeypatch: pytest.MonkeyPatch, cores: int, pass_mib: int, request_mib: int, readers: int
) -> None:
    monkeypatch.setattr(pass_worker, "usable_cores", lambda: cores)
    assert pass_worker._segments(pass_mib * 2**20, request_mib * 2**20) == readers
