"""Spans in bounded memory: a spilled column gives the in-memory load figures, the largest in-flight count included."""

from __future__ import annotations

import numpy as np
import pytest

from capbench.metrics import spans as spans_module
from capbench.metrics.concurrency import LoadTally, load_of_spans
from capbench.metrics.spans import SpanColumn, max_in_flight, max_in_flight_spilled
from capbench.records.columns import request_chunks


def _random_spans(rng: np.random.Generator, n: int, ties: bool) -> tuple[np.ndarray, np.ndarray]:
    scale = 50 if ties else 10**9  # few distinct instants: many submits and dones at the same time
    starts = rng.integers(0, scale, n)
    ends = starts + rng.integers(0, scale // 5 + 1, n)
    return starts.astype(np.int64), ends.astype(np.int64)


@pytest.mark.parametrize("n", [1, 2, 37, 2000])
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize(("buckets", "per_read"), [(1 << 16, 1 << 20), (4, 10), (64, 3), (1, 1)])
def test_spilled_maximum_is_the_sorted_maximum(
    n: int, ties: bool, buckets: int, per_read: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spans_module, "BUCKETS", buckets)
    monkeypatch.setattr(spans_module, "EVENTS_PER_READ", per_read)
    rng = np.random.default_rng(n * 7 + ties + buckets)
    starts, ends = _random_spans(rng, n, ties)
    column = SpanColumn(buffer_spans=0)
    for k in range(0, n, 13):
        column.extend(starts[k : k + 13], ends[k : k + 13])
    assert column.spilled and len(column) == n
    low, high = int(min(starts.min(), ends.min())), int(max(starts.max(), ends.max()))
    expected = max_in_flight(starts.copy(), ends.copy())
    assert max_in_flight_spilled(column, low, high, block=7) == expected
    column.close()


def test_blocks_read_back_in_record_order_from_memory_and_file() -> None:
    rng = np.random.default_rng(3)
    starts, ends = _random_spans(rng, 100, False)
    for buffer in (0, 10, 1000):
        column = SpanColumn(buffer_spans=buffer)
        column.extend(starts[:60], ends[:60])
        column.extend(starts[60:], ends[60:])
        got = list(column.blocks(16))
        assert [s.size for s, _ in got] == [16] * 6 + [4]
        assert np.array_equal(np.concatenate([s for s, _ in got]), starts)
        assert np.array_equal(np.concatenate([e for _, e in got]), ends)
        column.close()


def _requests(rng: np.random.Generator, n: int) -> list[dict]:
    out = []
    for i in range(n):
        submit = int(rng.integers(0, 10**11))
        out.append(
            {
                "id": f"r{i}",
                "warmup": i < 3,
                "t_submit_ns": submit,
                "t_first_token_ns": submit + 1000,
                "t_done_ns": submit + int(rng.integers(10**6, 10**10)),
                "output_tokens": 2,
                "error": None,
            }
        )
    return out


def test_a_spilled_load_tally_gives_the_in_memory_figures_bit_for_bit(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    requests = _requests(rng, 30000)
    in_memory = LoadTally()
    for chunk in request_chunks(requests):
        in_memory.add(chunk)
    assert not in_memory.spans.spilled
    expected = in_memory.result()
    monkeypatch.setattr(spans_module, "BUFFER_SPANS", 1000)
    spilled = LoadTally()
    for chunk in request_chunks(requests):
        spilled.add(chunk)
    assert spilled.spans.spilled
    assert spilled.result() == expected
    assert expected["max_in_flight"] > 1 and len(expected["timeline"]) == 100


def test_load_of_spans_without_spans_is_null() -> None:
    out = load_of_spans(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    assert set(out.values()) == {None}
    assert LoadTally().result() == out
