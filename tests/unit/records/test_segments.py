"""A record file cut into segments at line boundaries reads back, segment after segment, as the whole file does:
the same records with the same line numbers, and the same warnings (issue #18: a large passes.jsonl is read by
several processes)."""

from __future__ import annotations

import warnings
from pathlib import Path

import orjson
import pytest

from capbench.records.key_hashes import HashLog
from capbench.records.reader import KeyedFile, count_lines, iter_jsonl_blocks, line_bounds
from capbench.records.validate import power_key


def _write(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"\n".join(lines))


def _read(path: Path, **kwargs: object) -> tuple[list[tuple[int, dict[str, object]]], list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pairs = [
            pair
            for numbers, objs in iter_jsonl_blocks(path, block_bytes=37, **kwargs)
            for pair in zip(numbers, objs, strict=True)
        ]  # type: ignore[arg-type]
    return pairs, [str(w.message) for w in caught]


def _lines(count: int) -> list[bytes]:
    return [orjson.dumps({"t_ns": i, "gpu": 0, "note": "x" * (i % 7)}) for i in range(count)]


@pytest.mark.parametrize("parts", [1, 2, 3, 7, 40, 100])
@pytest.mark.parametrize("ending", ["newline", "none", "torn"])
def test_segments_read_as_the_whole_file(tmp_path: Path, parts: int, ending: str) -> None:
    lines = _lines(37)
    lines[11] = b"not json"  # a bad line in the middle: warned about with its line number
    lines[20] = b""  # a blank line: ignored
    if ending == "torn":
        lines.append(b'{"t_ns": 99, "gp')
    path = tmp_path / "power.jsonl"
    _write(path, lines + ([b""] if ending == "newline" else []))
    whole = _read(path)
    bounds = line_bounds(path, parts)
    assert 1 <= len(bounds) <= parts and bounds[0][0] == 0 and bounds[-1][1] is None
    data = path.read_bytes()
    for (start, stop), (following, _) in zip(bounds, [*bounds[1:], (None, None)], strict=True):
        assert stop == following  # contiguous, covering the file
        assert start == 0 or data[start - 1 : start] == b"\n"  # each segment starts at a line
    pairs: list[tuple[int, dict[str, object]]] = []
    shown: list[str] = []
    for start, stop in bounds:
        read = _read(path, start=start, stop=stop, first_line=1 + count_lines(path, start))
        pairs += read[0]
        shown += read[1]
    assert (pairs, shown) == whole
    assert any(text.endswith("not valid JSON 12") for text in shown)
    assert any("torn last line" in text for text in shown) == (ending == "torn")


def test_line_bounds_of_tiny_and_empty_files(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    _write(path, [b"{}"])
    assert line_bounds(path, 4) == [(0, None)]
    _write(path, [])
    assert line_bounds(path, 4) == [(0, None)]
    _write(path, [b"{}", b"{}", b""])  # two lines: at most two segments
    assert line_bounds(path, 8) == [(0, 3), (3, None)]


def test_count_lines(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    _write(path, [b"{}", b"{}", b"{}"])
    assert [count_lines(path, stop) for stop in range(0, 9)] == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_a_keyed_segment_logs_every_key_and_numbers_lines_as_the_file(tmp_path: Path) -> None:
    path = tmp_path / "power.jsonl"
    _write(path, [*_lines(10), b""])
    start, stop = line_bounds(path, 2)[1]
    log = HashLog(tmp_path / "keys", power_key)
    keyed = KeyedFile(path, power_key, block_bytes=50)
    numbered = [
        pair for numbers, objs in keyed.segment_blocks(start, stop, log) for pair in zip(numbers, objs, strict=True)
    ]
    log.close()
    first = 1 + count_lines(path, start)
    assert [line for line, _ in numbered] == list(range(first, 11))
    assert [obj["t_ns"] for _, obj in numbered] == list(range(first - 1, 10))
    assert (tmp_path / "keys").stat().st_size == 8 * len(numbered)
