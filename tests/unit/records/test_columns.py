"""Request records as columns: the fast paths (all fields of a block read record by record, integer lists built
without a copy) give exactly what reading one field at a time gives."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capbench.records import columns, fields
from capbench.records.columns import MISSING, RequestChunk, to_chunk
from capbench.records.schema import request_record
from capbench.records.token_times import compact_request


def _record(i: int, **changes: object) -> dict[str, object]:
    record = compact_request(
        dict(
            request_record(
                id=f"r{i}",
                warmup=i % 7 == 0,
                prompt_tokens=3 + i,
                output_tokens=i % 4,
                t_submit_ns=1000 * i,
                t_first_token_ns=None if i % 4 == 0 else 1000 * i + 50,
                t_done_ns=1000 * i + 400,
                token_times_ns=[1000 * i + 50 + 7 * k for k in range(i % 4)],
                error=None if i % 5 else "boom",
                finish_reason="length",
                output_text="x",
            )
        )
    )
    record.update(changes)
    return {k: v for k, v in record.items() if v is not _DROP}


_DROP = object()


def _equal(a: RequestChunk, b: RequestChunk) -> None:
    for field in dataclasses.fields(RequestChunk):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and np.array_equal(x, y), field.name
        else:
            assert x == y, field.name


def _field_by_field(records: list[dict[str, object]], monkeypatch: pytest.MonkeyPatch) -> RequestChunk:
    with monkeypatch.context() as patch:
        patch.setattr(columns, "same_key_columns", lambda records: None)
        return to_chunk(records)


@pytest.mark.parametrize(
    "changes",
    [
        {},  # every record alike: read record by record
        {3: {"turn": 2, "session_id": "s"}},  # one record with more fields
        {5: {"error": _DROP}},  # one with fewer
        {2: {"error": _DROP, "turn": 1}},  # as many fields, not the same ones
        {0: {"sample_id": "q1", "score": 1.0, "answer": "a"}},
    ],
)
def test_a_block_gives_the_columns_of_reading_each_field_alone(
    changes: dict[int, dict[str, object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    records = [_record(i, **changes.get(i, {})) for i in range(40)]
    _equal(to_chunk(records), _field_by_field(records, monkeypatch))


def test_same_keys_declines_blocks_whose_records_differ() -> None:
    alike = [_record(i) for i in range(3)]
    assert fields.same_key_columns(alike) is not None
    assert fields.same_key_columns([*alike, _record(9, error=_DROP)]) is None
    assert fields.same_key_columns([*alike, _record(9, extra=1)]) is None
    assert fields.same_key_columns([*alike, _record(9, error=_DROP, extra=1)]) is None
    assert fields.same_key_columns([]) is None


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1)), max_size=40))
def test_integer_lists_with_any_number_of_nulls(values: list[int | None]) -> None:
    expected = np.array([MISSING if v is None else v for v in values], dtype=np.int64)
    got = columns._ints(list(values))
    assert got.dtype == np.int64 and np.array_equal(got, expected)


def test_integer_lists_refuse_what_is_not_an_integer() -> None:
    for bad in ([1, 2.5], [None, "3"], [1, None, 2**64]):
        with pytest.raises((TypeError, OverflowError)):
            columns._ints(bad)
