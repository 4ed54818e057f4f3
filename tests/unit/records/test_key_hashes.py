"""KeyHashes: the same colliding ordinals from memory or from partition files, whatever the buffer size."""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capbench.records import key_hashes
from capbench.records.key_hashes import KeyHashes
from capbench.records.reader import KeyedFile, Rescan
from capbench.records.validate import pass_key, power_key


def _brute(values: list[int]) -> list[int]:
    counts = Counter(values)
    return [i for i, v in enumerate(values) if counts[v] > 1]


@pytest.mark.parametrize("buffer", [1, 5, 64, 10**6])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_colliding_ordinals_match_a_brute_force_count(buffer: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.integers(-(2**63), 2**63 - 1, size=300, dtype=np.int64).tolist()
    for _ in range(12):  # copies of earlier hashes at later ordinals, some repeated thrice
        i, j = sorted(rng.choice(len(values), size=2, replace=False).tolist())
        values[j] = values[i]
    values[-1] = values[0] = -1  # the top bit set and unset land in different partitions: both must work
    hashes = KeyHashes(buffer)
    hashes.extend(values[:100])
    for v in values[100:150]:
        hashes.append(v)
    hashes.extend(values[150:])
    assert len(hashes) == len(values)
    assert hashes.colliding().tolist() == _brute(values)
    hashes.close()


def test_no_collision_gives_nothing() -> None:
    hashes = KeyHashes(3)
    hashes.extend(list(range(-50, 50)))
    assert hashes.colliding().size == 0
    assert KeyHashes().colliding().size == 0


def test_a_buffer_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        KeyHashes(0)


def test_a_keyed_file_finds_duplicates_through_the_partition_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file longer than the buffer: the duplicate sample (same key, same content) is dropped on the reread."""
    monkeypatch.setattr(key_hashes, "BUFFER_HASHES", 4)
    samples = [{"t_ns": 1000 * i, "gpu": 0, "power_w": 100.0 + i} for i in range(40)]
    samples.insert(31, dict(samples[3]))
    path = tmp_path / "power.jsonl"
    path.write_bytes(b"".join(orjson.dumps(s) + b"\n" for s in samples))
    keyed = KeyedFile(path, power_key)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(Rescan):
            list(keyed.numbered())
        again = [record for _, record in keyed.numbered()]
    assert len(again) == 40 and again == samples[:31] + samples[32:]
    assert any("duplicate" in str(w.message) for w in caught)


@pytest.mark.parametrize("buffer", [2, 10**6])
def test_hash_logs_of_segments_find_a_duplicate_in_any_two_segments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, buffer: int
) -> None:
    """Each segment's HashLog holds its records' key hashes; any_colliding finds two equal keys in one segment or
    in two, and nothing when every key is distinct (in memory, or through the partition files)."""
    monkeypatch.setattr(key_hashes, "BUFFER_HASHES", buffer)
    samples = [{"t_ns": 1000 * i, "gpu": 0} for i in range(30)]

    def logs(segments: list[list[dict[str, int]]], name: str) -> list[str]:
        paths = []
        for index, segment in enumerate(segments):
            log = key_hashes.HashLog(tmp_path / f"{name}-{index}", power_key)
            log.add(segment[:4])
            log.add(segment[4:])
            log.close()
            assert not log.unhashable
            paths.append(log.path)
        return paths

    assert not key_hashes.any_colliding(logs([samples[:10], samples[10:25], samples[25:]], "distinct"))
    assert key_hashes.any_colliding(logs([samples[:10], [*samples[10:25], samples[2]]], "across"))
    assert key_hashes.any_colliding(logs([[*samples[:10], samples[9]], samples[10:]], "within"))
    assert not key_hashes.any_colliding([])


def test_a_hash_log_marks_a_key_that_cannot_be_hashed(tmp_path: Path) -> None:
    log = key_hashes.HashLog(tmp_path / "keys", power_key)
    log.add([{"t_ns": 1, "gpu": 0}, {"t_ns": [2], "gpu": 0}])
    log.close()
    assert log.unhashable


def test_portable_hashes_are_the_same_in_another_process() -> None:
    """Keys with strings and None (whose plain hash differs between processes) hash alike in a fresh
    interpreter; equal keys hash alike, and a list has no portable hash."""
    import subprocess
    import sys

    keys = [("time", 1, 2, None), ("step", 0, 7), "r00000001", 5, 2.5, None, ("time", None, None, 0.25)]
    here = [key_hashes.portable_hash(key) for key in keys]
    code = (
        "import json, sys; from capbench.records.key_hashes import portable_hash; "
        f"print(json.dumps([portable_hash(k) for k in {keys!r}]))"
    )
    there = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert orjson.loads(there) == here
    assert key_hashes.portable_hash(("time", 1, 2, None)) == key_hashes.portable_hash(("time", 1, 2, None))
    assert len(set(here)) == len(here)
    with pytest.raises(TypeError):
        key_hashes.portable_hash(("time", [1], 2, None))


_FIELD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.sampled_from([0.0, -0.0, 1.0, 2.5, 1e300]),
    st.text(max_size=4),
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {"t_start_ns": _FIELD_VALUES, "t_end_ns": _FIELD_VALUES},
            optional={"latency_s": _FIELD_VALUES, "step": _FIELD_VALUES, "dp_rank": _FIELD_VALUES},
        ),
        max_size=12,
    )
)
def test_column_hashes_are_each_records_portable_hash(records: list[dict[str, object]]) -> None:
    """A block hashed a column at a time gives every record's own portable_hash, whatever its fields hold
    (integers of any size, floats, NaN, None, strings, booleans) and whether or not the block mixes key forms."""
    assert list(key_hashes.portable_hashes(pass_key, records)) == [
        key_hashes.portable_hash(pass_key(r)) for r in records
    ]
    assert list(key_hashes.portable_hashes(power_key, records)) == [
        key_hashes.portable_hash(power_key(r)) for r in records
    ]


def test_equal_keys_hash_alike_whatever_the_number_type() -> None:
    """1, 1.0 and True are equal keys (a duplicate check compares them equal): they hash alike, one by one and
    by columns; 2.5 and 2 do not."""
    forms = [{"t_ns": 1, "gpu": 0}, {"t_ns": 1.0, "gpu": False}, {"t_ns": True, "gpu": 0.0}]
    assert len(set(key_hashes.portable_hashes(power_key, forms))) == 1
    assert len({key_hashes.portable_hash(power_key(r)) for r in forms}) == 1
    assert key_hashes.portable_hash((2.5, 0)) != key_hashes.portable_hash((2, 0))


def test_column_hashes_refuse_a_key_without_a_portable_hash() -> None:
    with pytest.raises(TypeError):
        key_hashes.portable_hashes(pass_key, [{"t_start_ns": 1, "t_end_ns": [2]}])
