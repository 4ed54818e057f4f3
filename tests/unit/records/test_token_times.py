"""Schema 2's compact token times: exact round trips, refusals, the writer's form and both versions read back."""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path

import numpy as np
import orjson
import pytest

from capbench.errors import CapbenchError
from capbench.records import RecordWarning, RunWriter, read_run
from capbench.records.columns import MISSING, numbered_chunks, request_chunks
from capbench.records.reader import KeyedFile, Rescan, iter_jsonl_numbered, open_run
from capbench.records.schema import REQUESTS_FILE, SCHEMA_VERSION, request_record
from capbench.records.token_times import compact_request, expand_request, longest_gap_ns
from capbench.records.validate import request_key
from capbench.summary.score import score_run_dir
from capbench.varints import decode_varints, encode_varints

MS = 1_000_000


def _record(rid: str, times: list[int], **extra: object) -> dict[str, object]:
    return dict(
        request_record(
            id=rid,
            warmup=False,
            prompt_tokens=4,
            output_tokens=len(times),
            t_submit_ns=0,
            t_first_token_ns=times[0] if times else None,
            t_done_ns=times[-1] if times else 5,
            token_times_ns=times,
            error=None,
            finish_reason="length",
            output_text="x",
        ),
        **extra,
    )


def test_gaps_round_trip_exactly_whatever_their_size() -> None:
    rng = np.random.default_rng(1)
    lists = [sorted(rng.integers(0, 2**62, size=int(rng.integers(0, 30))).tolist()) for _ in range(300)]
    lists += [[], [7], [5, 5], [0, 2**63 - 1]]
    records = [compact_request({"id": str(i), "token_times_ns": times}) for i, times in enumerate(lists)]
    for record, times in zip(records, lists, strict=True):
        assert "token_times_ns" not in record and record["token_events"] == len(times)
        assert expand_request(record)["token_times_ns"] == times
        assert longest_gap_ns(record) == max((b - a for a, b in itertools.pairwise(times)), default=0)
    gaps, counts = decode_varints([str(r["token_gaps_ns"]) for r in records])
    assert gaps.tolist() == [b - a for t in lists for a, b in itertools.pairwise(t)]
    assert counts.tolist() == [max(len(t) - 1, 0) for t in lists]


def test_a_typical_gap_costs_about_five_characters() -> None:
    times = [17_630_117_268_181 + k * 25 * MS for k in range(200)]  # a monotonic clock some hours after boot
    compact = orjson.dumps(compact_request({"token_times_ns": times}))
    assert len(compact) < len(orjson.dumps(times)) / 2.5
    assert len(encode_varints([25 * MS] * 3)) == 16  # 4 varint bytes a gap: 12 bytes → 16 base64 characters


def test_times_that_run_backwards_cannot_be_written() -> None:
    with pytest.raises(CapbenchError, match="run backwards"):
        compact_request({"id": "r", "token_times_ns": [5, 3]})


def _run(tmp_path: Path, records: list[dict[str, object]], name: str = "run") -> Path:
    with RunWriter(tmp_path / name, {"schema_version": SCHEMA_VERSION, "run_id": name, "spec": {}}) as writer:
        for record in records:
            writer.append_request(record)
    return tmp_path / name


def test_the_writer_writes_compact_token_times_and_the_reader_restores_the_list(tmp_path: Path) -> None:
    records = [_record("r0", [10 * MS, 35 * MS, 36 * MS]), _record("r1", []), _record("r2", [40 * MS])]
    run_dir = _run(tmp_path, records)
    on_disk = [orjson.loads(line) for line in (run_dir / REQUESTS_FILE).read_bytes().splitlines()]
    assert SCHEMA_VERSION >= 2 and all("token_times_ns" not in r for r in on_disk)
    assert on_disk[0]["token_events"] == 3 and on_disk[0]["token_gap_max_ns"] == 25 * MS
    assert on_disk[1]["token_t0_ns"] is None and on_disk[1]["token_gaps_ns"] == ""
    assert [r["token_times_ns"] for r in read_run(run_dir).requests] == [r["token_times_ns"] for r in records]


def test_inconsistent_compact_fields_are_refused_naming_the_line(tmp_path: Path) -> None:
    run_dir = _run(tmp_path, [_record("r0", [1, 2, 4]), _record("r1", [1, 2, 9])])
    lines = (run_dir / REQUESTS_FILE).read_bytes().splitlines()
    broken = orjson.loads(lines[1])
    broken["token_gap_max_ns"] = 3
    (run_dir / REQUESTS_FILE).write_bytes(lines[0] + b"\n" + orjson.dumps(broken) + b"\n")
    with pytest.raises(CapbenchError, match=r"line 2: the token times of 'r1' are not valid: token_gap_max_ns"):
        list(numbered_chunks(iter_jsonl_numbered(run_dir / REQUESTS_FILE), run_dir / REQUESTS_FILE))
    with pytest.raises(CapbenchError, match="line 2"):
        read_run(run_dir)


def test_both_versions_give_the_same_columns(tmp_path: Path) -> None:
    records = [_record(f"r{i}", [i * MS + k * (k + 1) * MS for k in range(i % 5)]) for i in range(50)]
    run_dir = _run(tmp_path, records)
    path = run_dir / REQUESTS_FILE
    (new,) = numbered_chunks(iter_jsonl_numbered(path), path)
    (old,) = request_chunks(records)
    for name in ("token_events", "gap_max_ns", "gaps_ns", "gap_counts", "t_submit_ns", "t_first_token_ns"):
        assert np.array_equal(getattr(new, name), getattr(old, name)), name
    assert (old.gap_max_ns[old.token_events < 2] == MISSING).all()


def test_an_old_version_run_scores_exactly_like_the_same_run_written_now(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    records = []
    for i in range(40):
        times = (10**12 + i * 7 * MS + np.cumsum(rng.integers(1 * MS, 50 * MS, size=int(rng.integers(1, 9))))).tolist()
        records.append({**_record(f"r{i}", times), "t_submit_ns": 10**12 + i * 7 * MS - 3 * MS})
    manifest = {"schema_version": 1, "run_id": "old", "status": "complete", "spec": {"slo": {"itl_s": 0.03}}}
    old = tmp_path / "old"
    old.mkdir()
    (old / "run.json").write_bytes(orjson.dumps(manifest))
    (old / REQUESTS_FILE).write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    new = _run(tmp_path, records, "new")
    manifest_new = orjson.loads((new / "run.json").read_bytes())
    (new / "run.json").write_bytes(orjson.dumps({**manifest_new, **manifest, "schema_version": 2}))
    a, b = score_run_dir(old, write=False), score_run_dir(new, write=False)
    assert a["latency"]["itl_s"]["count"] > 100
    assert {k: v for k, v in a.items() if k != "notes"} == {k: v for k, v in b.items() if k != "notes"}


def test_duplicates_are_found_at_the_end_and_the_file_read_again_without_them(tmp_path: Path) -> None:
    run_dir = _run(tmp_path, [_record("r0", [1, 2]), _record("r1", [3, 4])])
    path = run_dir / REQUESTS_FILE
    lines = path.read_bytes().splitlines()
    path.write_bytes(b"\n".join([lines[0], lines[1], lines[0]]) + b"\n")
    keyed = KeyedFile(path, request_key)
    with pytest.warns(RecordWarning, match=r"dropped 1 duplicate record\(s\).*lines 3"), pytest.raises(Rescan):
        list(keyed.numbered())
    assert [line for line, _ in keyed.numbered()] == [1, 2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RecordWarning)
        summary = score_run_dir(run_dir, write=False)
    assert summary["requests"]["total"] == 2
    conflicting = orjson.loads(lines[0])
    conflicting["output_tokens"] = 9
    path.write_bytes(b"\n".join([lines[0], lines[1], orjson.dumps(conflicting)]) + b"\n")
    with pytest.raises(CapbenchError, match=r"line 3: a second, different record for 'r0' \(the first is on line 1\)"):
        list(open_run(run_dir).request_chunks())
