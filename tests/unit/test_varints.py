"""Integer lists as base64 varints: both encoders give the same text, every string decodes to its integers, and
anything that is not a list of integers in [0, 2⁶³) is refused on either side."""

from __future__ import annotations

import base64
import binascii

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capbench.varints import _base64_many, _encode_numpy, decode_varints, encode_varints

INTS = st.integers(0, 2**63 - 1)


@settings(max_examples=300, deadline=None)
@given(st.lists(INTS, max_size=9))
def test_the_python_and_numpy_encoders_write_the_same_text(values: list[int]) -> None:
    text = encode_varints(values)  # short: the Python loop
    assert _encode_numpy(values) == text
    assert encode_varints(np.array(values, dtype=np.int64)) == text
    decoded, counts = decode_varints([text])
    assert decoded.tolist() == values and counts.tolist() == [len(values)]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(INTS, max_size=70), min_size=1, max_size=8))
def test_many_strings_decode_at_once_as_one_by_one(lists: list[list[int]]) -> None:
    strings = [encode_varints(values) for values in lists]
    got = _base64_many(strings)
    assert got is not None
    raw = [base64.b64decode(s, validate=True) for s in strings]
    assert bytes(got[0]) == b"".join(raw) and got[1].tolist() == [len(r) for r in raw]
    values, counts = decode_varints(strings)
    assert values.tolist() == [v for lst in lists for v in lst] and counts.tolist() == [len(v) for v in lists]


def test_sizes_follow_the_integers() -> None:
    assert encode_varints([]) == "" and encode_varints(np.zeros(0, dtype=np.int64)) == ""
    assert len(base64.b64decode(encode_varints([127, 128, 16_383, 16_384]))) == 1 + 2 + 2 + 3
    assert len(encode_varints([25_000_000] * 3)) == 16  # 4 bytes each: 12 bytes, 16 characters
    table = np.arange(48 * 128).reshape(48, 128) % 200
    assert decode_varints([encode_varints(table)])[0].tolist() == table.ravel().tolist()  # C order
    assert encode_varints([[1, 300], [2, 0]]) == encode_varints([1, 300, 2, 0])  # pairs, row after row


@pytest.mark.parametrize(
    "bad",
    [
        [-1],
        [2**63],
        [1.5],
        [True],
        ["7"],
        [[1, 2], [3]],
        np.array([-1]),
        np.array([2**63], dtype=np.uint64),
        [*range(300), -1],
        [*range(300), 0.5],
        [*range(300), 2**64],
    ],
)
def test_what_is_not_an_integer_in_range_is_not_written(bad: object) -> None:
    with pytest.raises(ValueError):
        encode_varints(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["gA==", "!!!!", "gICAgICAgICAgIAB", "AA", 7])
def test_strings_that_do_not_decode_are_refused_naming_the_field(bad: object) -> None:
    with pytest.raises(ValueError, match="reqs_b64"):
        decode_varints(["AQ==", bad], "reqs_b64")  # type: ignore[list-item]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet="AQgw+/=é9\n", max_size=9), min_size=1, max_size=5))
def test_what_base64_refuses_the_many_strings_decoder_never_accepts(strings: list[str]) -> None:
    got = _base64_many(strings)
    try:
        raw = [base64.b64decode(s, validate=True) for s in strings]
    except (binascii.Error, ValueError):
        assert got is None
        return
    if got is not None:  # it may still hand a valid input back to the one-by-one path
        assert bytes(got[0]) == b"".join(raw) and got[1].tolist() == [len(r) for r in raw]
