"""Token times on disk, compactly (schema version 2; docs/records.md "Token times").

A runner hands its request record over with ``token_times_ns``: one monotonic timestamp per streamed token event.
Written as a JSON list that costs about 20 bytes per token and dominates a long run's ``requests.jsonl``. From
schema version 2 the writer stores the same facts, exactly, as:

- ``token_events``: the number of token events (``len(token_times_ns)``);
- ``token_t0_ns``: the first event's time (null without events);
- ``token_gaps_ns``: the gaps t_{j+1} − t_j in ns, each a non-negative integer, as one string of base64 varints
  (:mod:`capbench.varints`; empty with fewer than 2 events). A gap of 2.1–268 ms takes 4 varint bytes, about
  5.3 characters of base64 (a decimal timestamp in a JSON list takes about 20); no gap takes more than 12;
- ``token_gap_max_ns``: the largest gap (null with fewer than 2 events), so a check of the ITL bound (goodput, a
  capacity probe) needs no decoding.

:func:`compact_request` turns a record into that form (a record without ``token_times_ns`` is returned as is),
:func:`expand_request` turns it back (``token_times_ns`` restored exactly); a reader decodes many records' gaps
at once with :func:`capbench.varints.decode_varints`. Times that run backwards cannot be written as gaps:
:func:`compact_request` refuses them (a runner bug), as the reader refuses them in an old-version record.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from capbench.errors import CapbenchError
from capbench.varints import decode_varints, encode_varints

IntArray = NDArray[np.int64]

COMPACT_FIELDS: tuple[str, ...] = ("token_events", "token_t0_ns", "token_gaps_ns", "token_gap_max_ns")
"""The fields that replace ``token_times_ns`` on disk from schema version 2."""


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
    out["token_gaps_ns"] = encode_varints(gaps)
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
    gaps, _ = decode_varints([record.get("token_gaps_ns") or ""], "token_gaps_ns")
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
