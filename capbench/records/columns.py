"""Request records as typed columns, a chunk at a time (the scorer's input; issue #18).

:func:`request_chunks` turns a stream of request records (dicts, either schema version) into
:class:`RequestChunk` objects of at most :data:`CHUNK_REQUESTS` rows: numpy columns of the facts the metrics use,
plus the few per-request strings some summaries need (``session_id``, ``sample_id``, ``answer``), only where the
records carry them. A chunk is dropped once consumed, so scoring holds no per-record dict for the whole run.

Missing values: integer columns hold :data:`MISSING` (−2⁶³) where the record has null or no value. Token times
of both forms (schema 1's ``token_times_ns`` list, schema 2's compact fields, :mod:`.token_times`) become the
same two things: ``token_events`` and ``gap_max_ns`` per row, and every row's gaps (int64 ns) concatenated in row
order with ``gap_counts`` per row.

Checks: with a ``path`` the records come from a file and every per-record check of :mod:`.validate` applies (the
fast, columnar test runs first; when it finds anything, :func:`~capbench.records.validate.check_request` runs on
the chunk's records so the error names the file, line and value exactly as before). Compact token fields that
do not decode or disagree are refused the same way. ``request_type`` must be one of :data:`REQUEST_TYPES`.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from capbench.errors import CapbenchError
from capbench.records.fields import same_key_columns
from capbench.records.token_times import check_compact
from capbench.records.validate import REQUEST_TYPES, check_request
from capbench.varints import decode_varints

IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

CHUNK_REQUESTS = 8192
"""Rows per :class:`RequestChunk`."""
MISSING = np.iinfo(np.int64).min
"""The integer columns' marker for a null or absent value."""
GENERATE = 0
"""The ``request_type`` column holds the index into :data:`~.validate.REQUEST_TYPES`; 0 is ``generate``."""

Numbered = tuple[int, Mapping[str, Any]]


@dataclass
class RequestChunk:
    """Up to :data:`CHUNK_REQUESTS` request records as columns (module docstring), in record order."""

    ids: list[Any]
    warmup: BoolArray
    failed: BoolArray  # ``error`` is not null
    request_type: NDArray[np.int8]
    t_submit_ns: IntArray
    t_first_token_ns: IntArray
    t_done_ns: IntArray
    prompt_tokens: IntArray
    output_tokens: IntArray
    token_events: IntArray
    gap_max_ns: IntArray  # MISSING with fewer than 2 token events
    gaps_ns: IntArray  # every row's gaps, concatenated
    gap_counts: IntArray
    turn: IntArray
    session_id: list[Any] | None  # per row, when some record carries ``turn``
    sample_id: list[Any] | None  # per row, when some record carries ``sample_id``
    score: list[Any] | None
    answer: list[Any] | None

    @property
    def size(self) -> int:
        return int(self.warmup.size)

    def select(self, rows: BoolArray) -> RequestChunk:
        """The rows where ``rows`` is true, as a chunk (their gaps with them)."""
        keep = np.flatnonzero(rows)

        def pick(values: list[Any] | None) -> list[Any] | None:
            return None if values is None else [values[i] for i in keep]

        return RequestChunk(
            ids=[self.ids[i] for i in keep],
            warmup=self.warmup[rows],
            failed=self.failed[rows],
            request_type=self.request_type[rows],
            t_submit_ns=self.t_submit_ns[rows],
            t_first_token_ns=self.t_first_token_ns[rows],
            t_done_ns=self.t_done_ns[rows],
            prompt_tokens=self.prompt_tokens[rows],
            output_tokens=self.output_tokens[rows],
            token_events=self.token_events[rows],
            gap_max_ns=self.gap_max_ns[rows],
            gaps_ns=self.gaps_ns[np.repeat(rows, self.gap_counts)],
            gap_counts=self.gap_counts[rows],
            turn=self.turn[rows],
            session_id=pick(self.session_id),
            sample_id=pick(self.sample_id),
            score=pick(self.score),
            answer=pick(self.answer),
        )

    def gaps_of(self, rows: BoolArray) -> IntArray:
        """The gaps (ns) of the rows where ``rows`` is true, concatenated in row order."""
        return self.gaps_ns[np.repeat(rows, self.gap_counts)]


def _ints(values: list[Any]) -> IntArray:
    """Integers (None → MISSING) as int64; TypeError/OverflowError for anything else (a float, a string)."""
    try:
        typed = array("q", values)  # no None: no list to build
    except TypeError:
        nones = values.count(None)
        if nones == len(values):
            return np.full(len(values), MISSING, dtype=np.int64)
        if nones * 8 > len(values):
            typed = array("q", [MISSING if v is None else v for v in values])
        else:  # a few: find them in C
            values = list(values)
            at = -1
            for _ in range(nones):
                at = values.index(None, at + 1)
                values[at] = MISSING
            typed = array("q", values)
    return np.frombuffer(typed, dtype=np.int64).copy()


def _lenient_ints(values: list[Any], ids: list[Any], key: str) -> IntArray:
    """The in-memory path (records handed to the scorer, not read from a file): numbers are truncated to
    integers as the metrics always did; anything else is refused naming the request."""
    out = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        if v is None:
            out[i] = MISSING
        elif isinstance(v, bool) or not isinstance(v, int | float):
            raise CapbenchError(f"request {ids[i]!r}: {key} must be an integer (ns), got {v!r}")
        else:
            out[i] = int(v)
    return out


def _types(values: Iterable[Any]) -> set[type]:
    return set(map(type, values))


_ABSENT = object()
"""What :meth:`_Fields.present` reads where a record has no such field (``null`` reads as None)."""


class _Fields:
    """A chunk's records, each field read as one list the first time it is asked for (a chunk's checks and its
    columns ask for most fields twice): from the columns of :func:`~.fields.same_key_columns`, else one
    ``dict.get`` per record."""

    def __init__(self, records: Sequence[Mapping[str, Any]]) -> None:
        self.records = records
        self._lists: dict[tuple[str, Any], list[Any]] = {}
        self._columns = same_key_columns(records)

    def __call__(self, key: str, default: Any = None) -> list[Any]:
        """``record.get(key, default)`` of every record."""
        values = self._lists.get((key, default))
        if values is None:
            if self._columns is None:
                values = [r.get(key, default) for r in self.records]
            else:
                column = self._columns.get(key)
                values = [default] * len(self.records) if column is None else list(column)
            self._lists[(key, default)] = values
        return values

    def present(self, key: str) -> list[bool]:
        """Whether each record has ``key`` (``null`` included)."""
        return [v is not _ABSENT for v in self(key, _ABSENT)]


def _types_ok(fields: _Fields) -> bool:
    """Whether every field :func:`check_request` looks at has an allowed type (a columnar test)."""
    ids = fields("id")
    if _types(ids) != {str} or "" in ids:
        return False
    if not _types(fields("warmup", False)) <= {bool}:
        return False
    for key in ("prompt_tokens", "output_tokens", "t_submit_ns", "t_first_token_ns", "t_done_ns"):
        if not _types(fields(key)) <= {int, type(None)}:
            return False
    lists = fields("token_times_ns")
    if not _types(lists) <= {list, type(None)}:
        return False
    return _types(chain.from_iterable(t for t in lists if t)) <= {int}


def _values_ok(columns: Mapping[str, IntArray]) -> bool:
    """Counts ≥ 0 and submit ≤ first token ≤ done where present (the rest of :func:`check_request`)."""
    for key in ("prompt_tokens", "output_tokens"):
        v = columns[key]
        if ((v < 0) & (v != MISSING)).any():
            return False
    submit, first, done = columns["t_submit_ns"], columns["t_first_token_ns"], columns["t_done_ns"]
    has_s, has_f, has_d = submit != MISSING, first != MISSING, done != MISSING
    bad = (has_s & has_f & (first < submit)) | (has_f & has_d & (done < first))
    bad |= has_s & ~has_f & has_d & (done < submit)
    return not bad.any()


def _check_each(records: Sequence[Mapping[str, Any]], lines: list[int] | None, path: Path | None) -> None:
    """The per-record checks, for the exact message of the first failure."""
    assert lines is not None and path is not None
    for record, line in zip(records, lines, strict=True):
        check_request(record, path, line)


def _request_type(fields: _Fields, lines: list[int] | None, path: Path | None) -> NDArray[np.int8]:
    values = fields("request_type")
    records = fields.records
    codes = np.zeros(len(values), dtype=np.int8)
    if _types(values) == {type(None)}:
        return codes
    for i, value in enumerate(values):
        if value is None or value == "generate":
            continue
        if value not in REQUEST_TYPES:
            where = f"{path}, line {lines[i]}: " if path is not None and lines is not None else ""
            raise CapbenchError(
                f"{where}'request_type' of {records[i].get('id')!r} must be one of {', '.join(REQUEST_TYPES)} "
                f"(or absent), got {value!r}"
            )
        codes[i] = REQUEST_TYPES.index(value)
    return codes


def _token_columns(
    fields: _Fields, lines: list[int] | None, path: Path | None
) -> tuple[IntArray, IntArray, IntArray, IntArray]:
    """(token_events, gap_max_ns, gaps_ns concatenated, gap_counts) of a chunk, from either form."""
    records = fields.records
    n = len(records)
    compact = fields.present("token_events")
    if any(compact):
        if not all(compact):  # both forms in one chunk (a hand-edited file): bring the old rows to the new form
            from capbench.records.token_times import compact_request

            records = [r if c else compact_request(r) for r, c in zip(records, compact, strict=True)]
            fields = _Fields(records)
        return _compact_columns(fields, lines, path)
    lists = [t or [] for t in fields("token_times_ns")]
    events = np.fromiter((len(t) for t in lists), dtype=np.int64, count=n)
    flat = np.frombuffer(array("q", chain.from_iterable(lists)), dtype=np.int64) if events.any() else None
    counts = np.maximum(events - 1, 0)
    gap_max = np.full(n, MISSING, dtype=np.int64)
    if flat is None or flat.size < 2:
        return events, gap_max, np.zeros(0, dtype=np.int64), counts
    owner = np.repeat(np.arange(n), events)
    same = owner[1:] == owner[:-1]
    gaps = np.diff(flat)[same]
    has = counts > 0
    if has.any():
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])[has]
        gap_max[has] = np.maximum.reduceat(gaps, starts)
    return events, gap_max, gaps, counts


def _compact_columns(
    fields: _Fields, lines: list[int] | None, path: Path | None
) -> tuple[IntArray, IntArray, IntArray, IntArray]:
    records = fields.records
    strings = [s or "" for s in fields("token_gaps_ns")]
    try:
        if not _types(strings) <= {str}:
            raise ValueError("token_gaps_ns must be a string")
        gaps, counts = decode_varints(strings, "token_gaps_ns")
        events = _ints(fields("token_events"))
        gap_max = _ints(fields("token_gap_max_ns"))
        expected = np.maximum(events, 1) - 1
        ok = (events >= 0) & (counts == expected)
        has = counts > 0
        if has.any():
            starts = np.concatenate([[0], np.cumsum(counts)[:-1]])[has]
            ok[has] &= np.maximum.reduceat(gaps, starts) == gap_max[has]
        ok[~has] &= gap_max[~has] == MISSING
        if not ok.all():
            raise ValueError("inconsistent")
    except (ValueError, TypeError, OverflowError):
        for i, r in enumerate(records):  # find the record and say what is wrong with it
            try:
                one, _ = decode_varints([r.get("token_gaps_ns") or ""], "token_gaps_ns")
                check_compact(r.get("token_events"), r.get("token_t0_ns"), one, r.get("token_gap_max_ns"))
            except (ValueError, TypeError) as exc:
                where = f"{path}, line {lines[i]}: " if path is not None and lines is not None else ""
                raise CapbenchError(f"{where}the token times of {r.get('id')!r} are not valid: {exc}") from None
        raise CapbenchError(f"{path}: the token times of a record are not valid") from None
    return events, gap_max, gaps, counts


def _optional(fields: _Fields, key: str) -> list[Any] | None:
    values = fields(key)
    return None if not values or _types(values) == {type(None)} else values


def _flags(values: list[Any]) -> BoolArray:
    """``bool(v)`` of each value (plain booleans converted whole)."""
    if _types(values) <= {bool}:
        return np.array(values, dtype=np.bool_)
    return np.fromiter((bool(v) for v in values), dtype=np.bool_, count=len(values))


def to_chunk(
    records: Sequence[Mapping[str, Any]], lines: list[int] | None = None, path: Path | None = None
) -> RequestChunk:
    """One chunk of records as columns; with ``path`` (records read from that file, at ``lines``) every
    per-record check applies (module docstring)."""
    checked = path is not None and lines is not None
    fields = _Fields(records)
    if checked and not _types_ok(fields):
        _check_each(records, lines, path)
    ids = fields("id")
    columns: dict[str, IntArray] = {}
    for key in ("t_submit_ns", "t_first_token_ns", "t_done_ns", "prompt_tokens", "output_tokens", "turn"):
        values = fields(key)
        try:
            columns[key] = _ints(values)
        except (TypeError, OverflowError):
            if checked and lines is not None:
                raise CapbenchError(
                    f"{path}: '{key}' of a record in lines {lines[0]}–{lines[-1]} is not a 64-bit integer"
                ) from None
            columns[key] = _lenient_ints(values, ids, key)
    if checked and not _values_ok(columns):
        _check_each(records, lines, path)
    events, gap_max, gaps, counts = _token_columns(fields, lines, path)
    has_turn = bool((columns["turn"] != MISSING).any())
    samples = _optional(fields, "sample_id")
    return RequestChunk(
        ids=ids,
        warmup=_flags(fields("warmup", False)),
        failed=np.array([v is not None for v in fields("error")], dtype=np.bool_),
        request_type=_request_type(fields, lines, path),
        t_submit_ns=columns["t_submit_ns"],
        t_first_token_ns=columns["t_first_token_ns"],
        t_done_ns=columns["t_done_ns"],
        prompt_tokens=columns["prompt_tokens"],
        output_tokens=columns["output_tokens"],
        token_events=events,
        gap_max_ns=gap_max,
        gaps_ns=gaps,
        gap_counts=counts,
        turn=columns["turn"],
        session_id=fields("session_id") if has_turn else None,
        sample_id=samples,
        score=fields("score") if samples is not None else None,
        answer=fields("answer") if samples is not None else None,
    )


def request_chunks(records: Iterable[Mapping[str, Any]], chunk: int = CHUNK_REQUESTS) -> Iterator[RequestChunk]:
    """In-memory request records (no file: no line numbers) as :class:`RequestChunk` objects."""
    buffer: list[Mapping[str, Any]] = []
    for record in records:
        buffer.append(record)
        if len(buffer) >= chunk:
            yield to_chunk(buffer)
            buffer = []
    if buffer:
        yield to_chunk(buffer)


def numbered_chunks(records: Iterable[Numbered], path: Path, chunk: int = CHUNK_REQUESTS) -> Iterator[RequestChunk]:
    """``(line, record)`` pairs read from ``path`` as checked :class:`RequestChunk` objects."""
    buffer: list[Mapping[str, Any]] = []
    lines: list[int] = []
    for line, record in records:
        buffer.append(record)
        lines.append(line)
        if len(buffer) >= chunk:
            yield to_chunk(buffer, lines, path)
            buffer, lines = [], []
    if buffer:
        yield to_chunk(buffer, lines, path)
