"""Run-directory writing and reading: flushed appends, atomic manifest, torn lines, statuses."""

import json
import os
from pathlib import Path

import pytest

from capbench.errors import CapbenchError
from capbench.records import (
    MANIFEST_FILE,
    PASSES_FILE,
    REQUESTS_FILE,
    SCHEMA_VERSION,
    RecordWarning,
    RunStatus,
    RunWriter,
    iter_jsonl,
    read_run,
)


def manifest() -> dict[str, object]:
    return {"schema_version": SCHEMA_VERSION, "run_id": "t1"}


def test_lines_are_on_disk_before_close(tmp_path: Path) -> None:
    writer = RunWriter(tmp_path / "run", manifest())
    writer.append_request({"id": "r0", "output_tokens": 3})
    # Read through a separate file handle while the writer is still open: flushed, not buffered.
    lines = (tmp_path / "run" / REQUESTS_FILE).read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["r0"]
    assert json.loads((tmp_path / "run" / MANIFEST_FILE).read_text())["status"] == "running"
    writer.finish(RunStatus.COMPLETE)
    assert json.loads((tmp_path / "run" / MANIFEST_FILE).read_text())["status"] == "complete"


def test_full_float_precision(tmp_path: Path) -> None:
    with RunWriter(tmp_path / "run", manifest()) as writer:
        writer.append_pass({"latency_s": 0.123456789012345678})
    (record,) = iter_jsonl(tmp_path / "run" / PASSES_FILE)
    assert record["latency_s"] == 0.123456789012345678


def test_torn_last_line_is_skipped_with_warning(tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    path.write_bytes(b'{"id": "a"}\n{"id": "b"}\n{"id": "c", "out')
    with pytest.warns(RecordWarning, match="torn last line 3"):
        records = list(iter_jsonl(path))
    assert [r["id"] for r in records] == ["a", "b"]


def test_bad_middle_line_and_non_object_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"id": "a"}\nnot json\n[1, 2]\n\n{"id": "d"}\n')
    with pytest.warns(RecordWarning) as caught:
        records = list(iter_jsonl(path))
    assert [r["id"] for r in records] == ["a", "d"]
    assert len(caught) == 2


def test_keyboard_interrupt_leaves_partial_with_completed_requests(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), RunWriter(tmp_path / "run", manifest()) as writer:
        writer.append_request({"id": "r0"})
        writer.append_request({"id": "r1"})
        raise KeyboardInterrupt
    run = read_run(tmp_path / "run")
    assert run.manifest["status"] == "partial"
    assert "interrupted" in run.manifest["error"]
    assert [r["id"] for r in run.requests] == ["r0", "r1"]


def test_crash_before_any_request_is_failed_with_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), RunWriter(tmp_path / "run", manifest()):
        raise RuntimeError("engine died")
    run = read_run(tmp_path / "run")
    assert run.manifest["status"] == "failed"
    assert run.manifest["error"] == "RuntimeError: engine died"


def test_existing_run_is_never_overwritten(tmp_path: Path) -> None:
    with RunWriter(tmp_path / "run", manifest()):
        pass
    with pytest.raises(CapbenchError, match="already holds a run"):
        RunWriter(tmp_path / "run", manifest())


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_directory_is_a_clear_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(CapbenchError, match=r"not writable|cannot create"):
        RunWriter(locked / "run", manifest())


def test_unwritable_path_under_a_file_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(CapbenchError, match="cannot create the output directory"):
        RunWriter(blocker / "run", manifest())


def test_read_run_rejects_unknown_schema_and_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(CapbenchError, match=r"run\.json is missing"):
        read_run(tmp_path)
    (tmp_path / MANIFEST_FILE).write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(CapbenchError, match="schema_version 99"):
        read_run(tmp_path)
