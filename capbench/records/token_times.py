"""Token times on disk, compactly (schema version 2; docs/records.md "Token times").

A runner hands its request record over with ``token_times_ns``: one monotonic timestamp per streamed token event.
Written as a JSON list that costs about 20 bytes per token and dominates a long run's ``requests.jsonl``. From
schema version 2 the writer stores the same facts, exactly, as:

- ``token_events``: the number of token events (``len(token_times_ns)``);
- ``token_t0_ns``: the first event's time (null without events);
- ``token_gaps_ns``: the gaps t_{j+1} − t_j in ns, each a non-negative integer, as unsigned LEB128 varints
  (7 bits a byte, low bits first, the high bit set on every byte but a value's last) in one base64 string
  (standard alphabet, padded; empty with fewer than 2 events). A gap of 2.1–268 ms takes 4 varint bytes, about
  5.3 characters of base64 (a decimal timestamp in a JSON list takes about 20); no gap takes more than 12;
- ``token_gap_max_ns``: the largest gap (null with fewer than 2 events), so a check of the ITL bound (goodput, a
  capacity probe) needs no decoding.

:func:`compact_request` turns a record into that form (a record without ``token_times_ns`` is returned as is),
:func:`expand_request` turns it back (``token_times_ns`` restored exactly), :func:`decode_gaps` decodes many
strings at once with numpy. Times that run backwards cannot be written as gaps: :func:`compact_request` refuses
them (a runner bug), as the reader refuses them in an old-version record.
"""

from __future__ import annotations

import base64
import binascii
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from capbench.errors import CapbenchError

IntArray = NDArray[np.int64]

COMPACT_FIELDS: tuple[str, ...] = ("token_events", "token_t0_ns", "token_gaps_ns", "token_gap_max_ns")
"""The fields that replace ``token_times_ns`` on disk from schema version 2."""


def encode_gaps(gaps: Sequence[int]) -> str:
    """``gaps`` (non-negative integers, ns) as base64 of their LEB128 varints; ``""`` for none."""
    out = bytearray()
    for gap in gaps:
        value = int(gap)
        if value < 0:
            raise ValueError(f"a token gap must be ≥ 0 ns, got {value}")
        while value >= 0x80:
            out.append((value & 0x7F) | 0x80)
            value >>= 7
        out.append(value)
    return base64.b64encode(bytes(out)).decode("ascii")


def decode_gaps(encoded: Sequence[str]) -> tuple[IntArray, IntArray]:
    """Decode many ``token_gaps_ns`` strings at once: (all gaps concatenated in order, gaps per string), int64.

    Raises ``ValueError`` for a string that is not base64 or ends inside a varint, or a gap of more than 63 bits.
    """
    counts = np.zeros(len(encoded), dtype=np.int64)
    if not encoded:
        return np.zeros(0, dtype=np.int64), counts
    decoded = _base64_many(encoded)
    if decoded is None:  # something is off: decode one by one, for the exact error
        try:
            decoded = _concatenated([base64.b64decode(s, validate=True) for s in encoded])
        except (binascii.Error, TypeError) as exc:
            raise ValueError(f"token_gaps_ns is not base64: {exc}") from exc
    data, lengths = decoded
    if data.size == 0:
        return np.zeros(0, dtype=np.int64), counts
    last = (data & 0x80) == 0  # the last byte of each varint
    ends = np.flatnonzero(last)
    bounds = np.cumsum(lengths)
    if not last[bounds[lengths > 0] - 1].all():
        raise ValueError("token_gaps_ns ends inside a varint")
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    width = ends - starts + 1
    widest = int(width.max())
    if widest > 9:
        raise ValueError("a token gap in token_gaps_ns has more than 63 bits")
    # Horner's rule from each varint's last (most significant) byte down to its first, over the values that still
    # have a byte at that place: a few passes over the values, not per-byte int64 arrays (5x faster, measured).
    low = data & 0x7F
    gaps = low[ends].astype(np.int64)
    for place in range(1, widest):
        more = np.flatnonzero(width > place)
        gaps[more] = (gaps[more] << 7) | low[ends[more] - place]
    counts[:] = np.diff(np.searchsorted(ends, bounds, side="left"), prepend=0)
    return gaps, counts


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


def compact_request(record: Mapping[str, Any]) -> dict[str, Any]:
    """The schema-2 form of a request record: ``token_times_ns`` replaced by :data:`COMPACT_FIELDS`."""
    if "token_times_ns" not in record:
        return dict(record)
    out = {k: v for k, v in record.items() if k != "token_times_ns"}
    times = record["token_times_ns"] or []
    gaps = [b - a for a, b in itertools.pairwise(times)]
    if any(g < 0 for g in gaps):
        raise CapbenchError(f"request {record.get('id')!r}: token_times_ns run backwards: {list(times)[:8]}...")
    out["token_events"] = len(times)
    out["token_t0_ns"] = int(times[0]) if times else None
    out["token_gaps_ns"] = encode_gaps(gaps)
    out["token_gap_max_ns"] = max(gaps) if gaps else None
    return out


def expand_request(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record with ``token_times_ns`` as a list (schema 1's form), whichever form it was read in.

    Raises ``ValueError`` when the compact fields disagree with each other (count, maximum) or do not decode.
    """
    if "token_events" not in record:
        return dict(record)
    out = {k: v for k, v in record.items() if k not in COMPACT_FIELDS}
    events, t0 = record.get("token_events"), record.get("token_t0_ns")
    gaps, _ = decode_gaps([record.get("token_gaps_ns") or ""])
    check_compact(events, t0, gaps, record.get("token_gap_max_ns"))
    start = int(t0) if isinstance(t0, int) else 0
    out["token_times_ns"] = [] if not events else [start, *(start + np.cumsum(gaps)).tolist()]
    return out


def check_compact(events: Any, t0: Any, gaps: IntArray, gap_max: Any) -> None:
    """``ValueError`` unless the compact fields describe ``events`` token times consistently."""
    if not isinstance(events, int) or isinstance(events, bool) or events < 0:
        raise ValueError(f"token_events must be an integer ≥ 0, got {events!r}")
    if events and (not isinstance(t0, int) or isinstance(t0, bool)):
        raise ValueError(f"token_t0_ns must be an integer when token_events > 0, got {t0!r}")
    if gaps.size != max(events - 1, 0):
        raise ValueError(f"token_gaps_ns holds {gaps.size} gaps for {events} token events")
    expected = int(gaps.max()) if gaps.size else None
    if gap_max != expected:
        raise ValueError(f"token_gap_max_ns is {gap_max!r} but the largest gap is {expected}")


def longest_gap_ns(record: Mapping[str, Any]) -> int:
    """The largest gap between consecutive token times of a record in either form; 0 with fewer than 2."""
    if "token_events" in record:
        return int(record.get("token_gap_max_ns") or 0)
    times = record.get("token_times_ns") or []
    return max((b - a for a, b in itertools.pairwise(times)), default=0)
