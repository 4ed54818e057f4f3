"""Records read back from a run directory are checked where they enter, once: types, ranges, duplicates.

A run directory may have been damaged, edited or concatenated since capbench wrote it. Every figure is computed
from these records, so a value that cannot be true is refused here with one message naming the file, the line
and the value, instead of flowing into a throughput or an energy:

- **Duplicates** (:func:`unique`): a record whose key (a request's ``id``; a step's ``(dp_rank, step)``, or its
  ``(t_start_ns, t_end_ns)`` when it has no step number; a power sample's ``(gpu, t_ns)``) was seen before is
  dropped with a :class:`~capbench.records.reader.RecordWarning` when it is identical to the first one, and
  refused when it differs (which of the two is true cannot be known).
- **Requests** (:func:`check_request`): ``id`` a non-empty string; ``warmup`` a boolean; ``prompt_tokens`` and
  ``output_tokens`` null or integers ≥ 0 (never a string, a boolean or a float); timestamps integers with
  ``t_submit_ns ≤ t_first_token_ns ≤ t_done_ns`` where present; ``token_times_ns`` a list of integers (schema 2's
  compact token fields: they decode, and agree with each other, :mod:`capbench.records.token_times`);
  ``request_type`` absent or one of :data:`REQUEST_TYPES`.
- **Power samples** (:func:`check_power`): ``gpu`` and ``t_ns`` integers; ``power_w`` null or a finite
  number ≥ 0; ``energy_j`` null or a finite number ≥ 0 (a counter that runs backwards is handled by the energy
  metric, which then falls back to sampled power or says why energy is null).
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from capbench.errors import CapbenchError

REQUEST_TYPES: tuple[str, ...] = ("generate", "loglikelihood", "loglikelihood_rolling")
"""Values of a request record's ``request_type`` (absent = ``generate``)."""

Record = dict[str, Any]
Numbered = tuple[int, Record]

MAX_SHOWN = 80


def _show(value: Any) -> str:
    text = orjson.dumps(value).decode() if not isinstance(value, str) else repr(value)
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "..."


def _where(path: Path, line: int) -> str:
    return f"{path}, line {line}"


def is_count(value: Any) -> bool:
    """A non-negative integer (booleans are not counts)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_nonneg_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def request_key(record: Mapping[str, Any]) -> Hashable:
    return record.get("id")


_NO_STEP = object()
"""What :meth:`PassKey.columns` reads where a record has no ``step``."""


class PassKey:
    """A step record's key: ``("step", dp_rank, step)`` (dp_rank 0 when absent) when it has a step number, else
    ``("time", t_start_ns, t_end_ns, latency_s)``."""

    def __call__(self, record: Mapping[str, Any]) -> Hashable:
        if "step" in record:
            return ("step", record.get("dp_rank", 0), record.get("step"))
        return ("time", record.get("t_start_ns"), record.get("t_end_ns"), record.get("latency_s"))

    def columns(self, records: Sequence[Mapping[str, Any]]) -> list[list[Any]] | None:
        """The keys as columns (:class:`~.key_hashes.ColumnarKey`); None when some records have a step and some
        not."""
        steps = [r.get("step", _NO_STEP) for r in records]
        absent = steps.count(_NO_STEP)
        if absent == 0:
            return [["step"] * len(records), [r.get("dp_rank", 0) for r in records], steps]
        if absent < len(records):
            return None
        return [
            ["time"] * len(records),
            [r.get("t_start_ns") for r in records],
            [r.get("t_end_ns") for r in records],
            [r.get("latency_s") for r in records],
        ]


pass_key = PassKey()


class PowerKey:
    """A power sample's key: ``(gpu, t_ns)``."""

    def __call__(self, record: Mapping[str, Any]) -> Hashable:
        return (record.get("gpu"), record.get("t_ns"))

    def columns(self, records: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
        """The keys as columns (:class:`~.key_hashes.ColumnarKey`)."""
        return [[r.get("gpu") for r in records], [r.get("t_ns") for r in records]]


power_key = PowerKey()


def unique(records: Iterable[Numbered], key: Callable[[Mapping[str, Any]], Hashable], path: Path) -> Iterator[Record]:
    """The records of ``path`` with identical duplicates dropped (one warning per file, with the count) and
    conflicting ones refused (module docstring). Memory: one hash per distinct key."""
    seen: dict[int, tuple[int, int]] = {}  # hash(key) -> (content hash, first line)
    dropped: list[int] = []
    for line, record in records:
        try:
            marker = hash(key(record))
        except TypeError:  # an unhashable key (a list where an id belongs): the per-record check reports it
            yield record
            continue
        content = hash(canonical(record))
        first = seen.get(marker)
        if first is None:
            seen[marker] = (content, line)
            yield record
        elif first[0] == content:
            dropped.append(line)
        else:
            raise conflict_error(path, line, key(record), first[1])
    if dropped:
        dropped_warning(path, dropped)


def canonical(record: Mapping[str, Any]) -> bytes:
    """A record's content as canonical JSON (sorted keys): what "identical" compares."""
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)


def conflict_error(path: Path, line: int, key: Hashable, first_line: int) -> CapbenchError:
    """The error for a second, different record with the key of an earlier one."""
    return CapbenchError(
        f"{_where(path, line)}: a second, different record for {_show(key)} (the first is on line "
        f"{first_line}); the file has conflicting duplicates, so neither can be trusted: fix or remove it"
    )


def dropped_warning(path: Path, dropped: list[int]) -> None:
    """Warn once for the identical duplicates of ``path`` dropped at ``dropped`` lines."""
    shown = ", ".join(str(n) for n in dropped[:5]) + (" ..." if len(dropped) > 5 else "")
    from capbench.records.reader import RecordWarning

    warnings.warn(
        f"{path}: dropped {len(dropped)} duplicate record(s), identical to an earlier one (lines {shown})",
        RecordWarning,
        stacklevel=3,
    )


def check_request(record: Mapping[str, Any], path: Path, line: int) -> None:
    """Raise :class:`CapbenchError` naming the file, line, field and value when a request record cannot be true."""
    rid = record.get("id")
    if not isinstance(rid, str) or not rid:
        raise CapbenchError(f"{_where(path, line)}: 'id' must be a non-empty string, got {_show(rid)}")
    if not isinstance(record.get("warmup", False), bool):
        raise CapbenchError(
            f"{_where(path, line)}: 'warmup' of {rid} must be true or false, got {_show(record['warmup'])}"
        )
    for field in ("prompt_tokens", "output_tokens"):
        value = record.get(field)
        if value is not None and not is_count(value):
            raise CapbenchError(
                f"{_where(path, line)}: '{field}' of {rid} must be a non-negative integer or null, got {_show(value)}"
            )
    times: dict[str, int | None] = {}
    for field in ("t_submit_ns", "t_first_token_ns", "t_done_ns"):
        value = record.get(field)
        if value is not None and not _is_int(value):
            raise CapbenchError(f"{_where(path, line)}: '{field}' of {rid} must be an integer, got {_show(value)}")
        times[field] = value
    order: list[int] = [t for f in ("t_submit_ns", "t_first_token_ns", "t_done_ns") if (t := times[f]) is not None]
    if any(b < a for a, b in itertools.pairwise(order)):
        raise CapbenchError(
            f"{_where(path, line)}: the timestamps of {rid} run backwards (submit {times['t_submit_ns']}, first "
            f"token {times['t_first_token_ns']}, done {times['t_done_ns']})"
        )
    token_times = record.get("token_times_ns")
    if token_times is not None and (not isinstance(token_times, list) or not all(_is_int(t) for t in token_times)):
        raise CapbenchError(f"{_where(path, line)}: 'token_times_ns' of {rid} must be a list of integers")
    kind = record.get("request_type")
    if kind is not None and kind not in REQUEST_TYPES:
        raise CapbenchError(
            f"{_where(path, line)}: 'request_type' of {rid} must be one of {', '.join(REQUEST_TYPES)} (or absent), "
            f"got {_show(kind)}"
        )


def check_power(record: Mapping[str, Any], path: Path, line: int) -> None:
    """Raise :class:`CapbenchError` when a power sample cannot be true (module docstring)."""
    for field in ("gpu", "t_ns"):
        if not _is_int(record.get(field)):
            raise CapbenchError(
                f"{_where(path, line)}: power sample '{field}' must be an integer, got {_show(record.get(field))}"
            )
    for field in ("power_w", "energy_j"):
        value = record.get(field)
        if value is not None and not _is_nonneg_number(value):
            raise CapbenchError(
                f"{_where(path, line)}: power sample '{field}' must be a finite number ≥ 0 or null, got {_show(value)}"
            )


def checked(
    records: Iterable[Numbered], check: Callable[[Mapping[str, Any], Path, int], None], path: Path
) -> Iterator[Numbered]:
    for line, record in records:
        check(record, path, line)
        yield line, record
