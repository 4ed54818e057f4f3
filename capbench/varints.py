"""Lists of non-negative integers as short text: base64 of LEB128 varints (docs/records.md, "Integer lists").

A record field that holds many integers (a request's token gaps, a step's ``[n, c]`` pairs and expert counts) is
stored as one string: each integer as an unsigned LEB128 varint (7 bits a byte, low bits first, the high bit set
on every byte but the integer's last), the bytes of all of them in order, in base64 (standard alphabet, padded).
An integer below 128 takes one byte, below 16,384 two; base64 makes 3 bytes 4 characters. Decoding reads many
strings at once with numpy, so a reader never converts the integers one by one in Python (about 25 ns each).

Ground layer: numpy and the standard library only, so the step recorder inside vLLM's environment can write it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

IntArray = NDArray[np.int64]

MAX_BYTES = 9
"""The most varint bytes of one integer: 63 bits (a value that fits int64)."""
_NUMPY_FROM = 256
"""Below this many values the encoder loops in Python: faster there (measured: a request's 63 token gaps in 12 µs
against 39 µs with numpy, and numpy's temporaries grew a soak's client heap); numpy from about 256 on."""


def encode_varints(values: Sequence[int] | Sequence[Sequence[int]] | NDArray[Any]) -> str:
    """``values`` (integers in [0, 2⁶³)) as base64 of their varints; ``""`` for none.

    A numpy array of any shape, or a rectangular nested list (``[[n, c], ...]``, a table of counts), is taken in C
    order (row after row). ``ValueError`` for a negative value, one of 2⁶³ or more, a value that is not an integer
    (a float, a bool, a string) or a ragged nested list.
    """
    if isinstance(values, np.ndarray) or (len(values) and isinstance(values[0], list)):
        flat = _checked(values)
        if flat.size >= _NUMPY_FROM:
            return _encode_array(flat)
        values = flat.tolist()
    elif len(values) >= _NUMPY_FROM:
        return _encode_array(_checked(values))
    out = bytearray()
    for value in values:
        if type(value) is not int and not isinstance(value, np.integer):
            raise ValueError(f"a varint must be an integer, got {value!r}")
        value = int(value)
        if value < 0 or value >> 63:
            raise ValueError(f"a varint must be in [0, 2**63), got {value}")
        while value >= 0x80:
            out.append((value & 0x7F) | 0x80)
            value >>= 7
        out.append(value)
    return base64.b64encode(bytes(out)).decode("ascii")


def _encode_numpy(values: Sequence[int] | Sequence[Sequence[int]] | NDArray[Any]) -> str:
    """:func:`encode_varints` with numpy whatever the length (the encoder from :data:`_NUMPY_FROM` values on)."""
    return _encode_array(_checked(values))


def _checked(values: Sequence[int] | Sequence[Sequence[int]] | NDArray[Any]) -> NDArray[Any]:
    """``values`` as a flat integer array in C order; ``ValueError`` for what :func:`encode_varints` refuses."""
    try:
        array = np.asarray(values)
    except ValueError as exc:  # a ragged nested list
        raise ValueError(f"varints must be a flat list or a rectangular array of integers: {exc}") from None
    if array.size and array.dtype.kind not in "iu":  # bool is "b", floats "f", integers beyond 64 bits "O"
        raise ValueError(f"varints must be integers, got {array.dtype} values")
    flat = array.ravel()
    if (flat < 0).any() or (array.dtype.kind == "u" and (flat >> np.uint64(63)).any()):
        raise ValueError("a varint must be in [0, 2**63)")
    return flat


def _encode_array(flat: NDArray[Any]) -> str:
    if flat.size == 0:
        return ""
    value = flat.astype(np.uint64)
    width = np.ones(value.size, dtype=np.int64)
    rest = value >> np.uint64(7)
    while rest.any():
        width += rest > 0
        rest >>= np.uint64(7)
    if int(width.max()) == 1:
        raw = value.astype(np.uint8).tobytes()
    else:
        ends = np.cumsum(width)
        starts = ends - width
        out = np.empty(int(ends[-1]), dtype=np.uint8)
        for place in range(int(width.max())):
            rows = np.flatnonzero(width > place)
            byte = ((value[rows] >> np.uint64(7 * place)) & np.uint64(0x7F)).astype(np.uint8)
            byte[width[rows] > place + 1] |= 0x80
            out[starts[rows] + place] = byte
        raw = out.tobytes()
    return binascii.b2a_base64(raw, newline=False).decode("ascii")


def decode_varints(encoded: Sequence[str], field: str = "varints") -> tuple[IntArray, IntArray]:
    """Decode many strings at once: (every integer, concatenated in order; integers per string), both int64.

    ``ValueError`` naming ``field`` for a string that is not base64 (or not a string), that ends inside a varint,
    or that holds an integer of more than 63 bits.
    """
    counts = np.zeros(len(encoded), dtype=np.int64)
    if not encoded:
        return np.zeros(0, dtype=np.int64), counts
    decoded = _base64_many(encoded)
    if decoded is None:  # something is off: decode one by one, for the exact error
        try:
            decoded = _concatenated([base64.b64decode(s, validate=True) for s in encoded])
        except (binascii.Error, TypeError, ValueError) as exc:
            raise ValueError(f"{field} is not base64: {exc}") from exc
    data, lengths = decoded
    if data.size == 0:
        return np.zeros(0, dtype=np.int64), counts
    last = data < 0x80  # the last byte of each varint
    ends = last.nonzero()[0]
    bounds = lengths.cumsum()
    if not last[bounds[lengths > 0] - 1].all():
        raise ValueError(f"{field} ends inside a varint")
    width = _steps(ends, -1)  # bytes of each varint
    widest = int(width.max())
    if widest > MAX_BYTES:
        raise ValueError(f"an integer in {field} has more than 63 bits")
    # Horner's rule from each varint's last (most significant) byte down to its first, over the values that still
    # have a byte at that place: a few passes over the values, not per-byte int64 arrays (5x faster, measured);
    # only the bytes read are masked (a third faster again than masking every byte first, measured).
    values = (data[ends] & 0x7F).astype(np.int64)
    for place in range(1, widest):
        longer = width > place
        more = longer.nonzero()[0]
        if more.size * 3 >= values.size:  # most have this byte (token gaps): whole arrays, no gather and scatter
            # (ends − place < 0 only where there is no such byte: that value is kept as it is)
            step = (values << 7) | (data[ends - place] & 0x7F)
            values = step if more.size == values.size else np.where(longer, step, values)
        else:
            values[more] = (values[more] << 7) | (data[ends[more] - place] & 0x7F)
    counts[:] = _steps(ends.searchsorted(bounds, side="left"), 0)
    return values, counts


def _steps(values: IntArray, before: int) -> IntArray:
    """The differences of consecutive ``values``, the first taken from ``before`` (``np.diff`` with ``prepend``,
    without its copies: it is called for every block a reader decodes)."""
    out = np.empty_like(values)
    out[0] = values[0] - before
    np.subtract(values[1:], values[:-1], out=out[1:])
    return out


def _base64_many(encoded: Sequence[str]) -> tuple[NDArray[np.uint8], IntArray] | None:
    """Decode many padded base64 strings: (their bytes concatenated, bytes per string).

    Each string goes through ``binascii.a2b_base64`` in strict mode (C speed: about 0.25 µs a string, a quarter
    of the numpy decoder it replaced), which gives the bytes of ``base64.b64decode(s, validate=True)`` and refuses
    what it refuses; None for anything it refuses (or a non-string), so that the caller decodes one by one and
    reports exactly what is wrong.
    """
    decode = binascii.a2b_base64
    try:
        return _concatenated([decode(s, strict_mode=True) for s in encoded])
    except (binascii.Error, TypeError, ValueError):
        return None


def _concatenated(raw: list[bytes]) -> tuple[NDArray[np.uint8], IntArray]:
    """Decoded strings as (their bytes concatenated, bytes per string)."""
    lengths = np.fromiter(map(len, raw), dtype=np.int64, count=len(raw))
    return np.frombuffer(b"".join(raw), dtype=np.uint8), lengths


__all__ = ["MAX_BYTES", "decode_varints", "encode_varints"]
