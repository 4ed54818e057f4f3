"""FeatureStore: chunks come back in order, whole or in slices, from memory, a spill file or another process's file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from capbench.metrics.feature_store import FeatureStore
from capbench.metrics.features import ARRAY_FIELDS, NO_TIME_NS, PassFeatures


def _chunk(rng: np.random.Generator, size: int, windows: tuple[int, ...], first: int) -> PassFeatures:
    """A chunk whose passes are numbered from ``first`` (tokens = pass number) so order is checkable."""
    width = len(windows)
    timed = rng.random(size) < 0.9
    start = rng.integers(0, 10**12, size)
    return PassFeatures(
        windows=windows,
        tokens=np.arange(first, first + size, dtype=np.int64),
        sampled=rng.integers(0, 64, size),
        kv_tokens_full=rng.integers(0, 10**6, size),
        pairs_full=rng.integers(0, 10**9, size),
        kv_tokens_window=rng.integers(0, 10**6, (size, width)),
        pairs_window=rng.integers(0, 10**9, (size, width)),
        experts_active_sum=rng.integers(0, 6000, size),
        experts_measured=rng.random(size) < 0.8,
        latency_s=rng.random(size) + 1e-3,
        phase=rng.integers(0, 3, size).astype(np.int8),
        t_start_ns=np.where(timed, start, NO_TIME_NS),
        t_end_ns=np.where(timed, start + 5, NO_TIME_NS),
        timed=timed,
    )


def _same(a: PassFeatures, b: PassFeatures) -> bool:
    return a.windows == b.windows and all(np.array_equal(getattr(a, n), getattr(b, n)) for n in ARRAY_FIELDS)


def _concat(chunks: list[PassFeatures], windows: tuple[int, ...]) -> PassFeatures:
    return PassFeatures(windows=windows, **{n: np.concatenate([getattr(c, n) for c in chunks]) for n in ARRAY_FIELDS})


@pytest.mark.parametrize("windows", [(), (128,), (128, 4096)])
@pytest.mark.parametrize("spill_passes", [0, 40, 10**6])
@pytest.mark.parametrize("slice_passes", [1, 7, 64, 10**6])
def test_slices_are_the_chunks_in_order(windows: tuple[int, ...], spill_passes: int, slice_passes: int) -> None:
    rng = np.random.default_rng(len(windows) * 1000 + spill_passes + slice_passes)
    sizes = [5, 17, 1, 33, 0, 12]
    chunks, first = [], 0
    store = FeatureStore(windows, spill_passes=spill_passes)
    for size in sizes:
        chunk = _chunk(rng, size, windows, first)
        first += size
        chunks.append(chunk)
        store.append(chunk)
    expected = _concat(chunks, windows)
    assert store.num_passes == expected.num_passes == sum(sizes)
    assert store.spilled == (sum(sizes) > spill_passes)
    for _ in range(2):  # each call reads from the start
        slices = list(store.slices(slice_passes))
        assert all(0 < s.num_passes <= slice_passes for s in slices)
        assert [s.num_passes for s in slices[:-1]] == [slice_passes] * (len(slices) - 1)  # only the last is short
        assert _same(_concat(slices, windows), expected)
    assert _same(store.whole(), expected)
    store.close()


def test_a_run_in_one_slice_is_the_whole_run() -> None:
    """Up to the slice size, the one slice is exactly the concatenated arrays (the bit-for-bit guarantee)."""
    rng = np.random.default_rng(1)
    store = FeatureStore((), spill_passes=20)
    chunks = [_chunk(rng, 16, (), 16 * i) for i in range(4)]
    for chunk in chunks:
        store.append(chunk)
    (only,) = store.slices(64)
    assert _same(only, _concat(chunks, ()))


def test_an_empty_store_has_no_slices() -> None:
    store = FeatureStore((4096,))
    assert list(store.slices()) == [] and store.whole().num_passes == 0
    assert store.whole().kv_tokens_window.shape == (0, 1)


def test_a_chunk_for_other_windows_is_refused() -> None:
    store = FeatureStore((128,))
    with pytest.raises(ValueError, match="windows"):
        store.append(_chunk(np.random.default_rng(0), 3, (), 0))


def test_bad_slice_size_is_refused() -> None:
    with pytest.raises(ValueError, match="max_passes"):
        list(FeatureStore(()).slices(0))


def test_handoff_and_adopt_read_the_same_passes_and_close_removes_the_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    windows = (512,)
    writer = FeatureStore(windows, directory=str(tmp_path), spill_passes=10**6)  # in memory until handed off
    chunks = [_chunk(rng, size, windows, 0) for size in (9, 3, 11)]
    for chunk in chunks:
        writer.append(chunk)
    handle = writer.handoff()
    assert Path(handle.path).parent == tmp_path and handle.chunk_passes == (9, 3, 11)
    with pytest.raises(RuntimeError, match="adopt"):  # the handing side no longer reads it
        writer.whole()
    reader = FeatureStore.adopt(handle)
    assert reader.num_passes == 23
    assert _same(_concat(list(reader.slices(5)), windows), _concat(chunks, windows))
    reader.close()
    assert list(tmp_path.iterdir()) == []


def test_a_handoff_needs_a_directory() -> None:
    with pytest.raises(ValueError, match="directory"):
        FeatureStore(()).handoff()


def test_a_truncated_file_is_an_error_not_fewer_passes(tmp_path: Path) -> None:
    store = FeatureStore((), directory=str(tmp_path), spill_passes=0)
    store.append(_chunk(np.random.default_rng(3), 8, (), 0))
    handle = store.handoff()
    path = Path(handle.path)
    path.write_bytes(path.read_bytes()[:-3])
    adopted = FeatureStore.adopt(handle)
    with pytest.raises(OSError, match="ended early"):
        list(adopted.slices())
    adopted.close()


@pytest.mark.parametrize("windows", [(), (128,)])
def test_stores_adopted_together_read_as_one_in_the_order_given(tmp_path: Path, windows: tuple[int, ...]) -> None:
    """The segments of one file, each scanned by its own process, read back as one store: slices cross from one
    segment's file to the next exactly as they would within one file; close removes every file."""
    rng = np.random.default_rng(7)
    chunks, handles, first = [], [], 0
    for sizes in ([9, 3], [], [11, 1, 6], [4]):
        writer = FeatureStore(windows, directory=str(tmp_path), spill_passes=5)
        for size in sizes:
            chunk = _chunk(rng, size, windows, first)
            first += size
            chunks.append(chunk)
            writer.append(chunk)
        handles.append(writer.handoff())
    store = FeatureStore.adopt(*handles)
    whole = _concat(chunks, windows)
    assert store.num_passes == whole.num_passes == 34 and store.spilled
    for limit in (1, 5, 12, 100):
        assert _same(_concat(list(store.slices(limit)), windows), whole)
        assert [s.num_passes for s in store.slices(limit)] == [min(limit, 34 - k) for k in range(0, 34, limit)]
    assert _same(store.whole(), whole)
    store.close()
    assert list(tmp_path.iterdir()) == []


def test_adopting_needs_handles_of_the_same_windows(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one"):
        FeatureStore.adopt()
    handles = []
    for windows in ((), (128,)):
        writer = FeatureStore(windows, directory=str(tmp_path))
        writer.append(_chunk(np.random.default_rng(1), 3, windows, 0))
        handles.append(writer.handoff())
    with pytest.raises(ValueError, match="different windows"):
        FeatureStore.adopt(*handles)
