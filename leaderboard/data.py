"""Load ``capbench export`` CSV files into one typed frame, skipping what cannot be trusted with a warning.

Parsing uses the stdlib :mod:`csv` module so every warning names the exact file and data row (the header is
row 0, the first run row 1). The file is streamed and typed in chunks of :data:`CHUNK_ROWS` rows, column by
column (vectorised), so memory holds the typed columns and one chunk of text; every row is still validated.
Nothing raises: a file that cannot be used at all (missing, unreadable, not
UTF-8, 0 bytes, a header without a :data:`REQUIRED_COLUMNS` column, a repeated header name, a malformed CSV)
gives one warning with ``row=None`` and is skipped; a row that cannot be used gives one warning naming its
row and the first reason, and is skipped while the other rows load:

* its number of fields differs from the header's (a blank line is ignored silently);
* ``run_id`` is empty;
* ``summary_schema_version`` is not an integer in :data:`SUPPORTED_SUMMARY_SCHEMA_VERSIONS`;
* ``spec_version``'s major (the part before the first ".") is not :data:`SUPPORTED_SPEC_MAJOR`;
* a numeric column's cell is not a finite number (``inf``, ``nan``, ``abc``); every bad cell of the row is named;
* a bool column's cell is not ``True``, ``False`` (any case) or empty;
* its ``run_id`` was already loaded (the first is kept; the warning names where it was first seen).

Typing: an empty cell is "not measured" and becomes NaN (numbers, float64), ``None`` (text, object dtype) or
``<NA>`` (bool, pandas ``boolean``), never 0. Text columns: :data:`TEXT_COLUMNS`, plus any column the leaderboard
does not know (kept verbatim). Bool columns: :data:`BOOL_COLUMNS`. Every other known column
(:data:`KNOWN_COLUMNS`: the declared columns of :mod:`capbench.summary.columns`, which also give each one's kind
and unit) is numeric. The frame always holds every
known column (all missing when no file had it), then unknown columns in first-seen order (columns are unioned across
files), then ``source_file`` (the path as given) and ``source_row`` (1-based data row), then the derived text
columns of :func:`capbench.leaderboard.table.add_derived`.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from capbench.leaderboard.table import DERIVED_COLUMNS, SOURCE_COLUMNS, add_derived
from capbench.summary.columns import COLUMNS, NAMES

SUPPORTED_SUMMARY_SCHEMA_VERSIONS: frozenset[int] = frozenset({1})
SUPPORTED_SPEC_MAJOR: int = 1
REQUIRED_COLUMNS: tuple[str, ...] = ("run_id", "model", "summary_schema_version", "spec_version")

KNOWN_COLUMNS: tuple[str, ...] = NAMES
"""Every column the leaderboard knows, in the export's order (:mod:`capbench.summary.columns`)."""

BOOL_COLUMNS: frozenset[str] = frozenset(c.name for c in COLUMNS if c.kind == "bool")
TEXT_COLUMNS: frozenset[str] = frozenset(c.name for c in COLUMNS if c.kind in ("text", "json"))
"""Known text columns (identities, versions, dtypes, sources, JSON lists), from the column schema. Columns the
leaderboard does not know are text too."""

_RESERVED_COLUMNS = frozenset((*SOURCE_COLUMNS, *DERIVED_COLUMNS))
_MAX_CELL_IN_MESSAGE = 60

Kind = Literal["number", "text", "bool"]


def column_kind(column: str) -> Kind:
    """How a column is typed: bool, text (known text columns and every unknown column) or number."""
    if column in BOOL_COLUMNS:
        return "bool"
    if column in TEXT_COLUMNS or column not in KNOWN_COLUMNS:
        return "text"
    return "number"


@dataclass(frozen=True)
class LoadWarning:
    """Something skipped while loading: ``file`` as given, ``row`` the 1-based data row (``None`` = whole file)."""

    file: str
    row: int | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.row is None else f"{self.file}, row {self.row}"
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class Results:
    """The loaded runs (one row each, typed, with ``source_*`` and derived columns), the warnings, the files read."""

    frame: pd.DataFrame
    warnings: tuple[LoadWarning, ...]
    files: tuple[str, ...]


class _RowError(Exception):
    """A row is skipped; the message says why."""


def _quote(cell: str) -> str:
    short = cell if len(cell) <= _MAX_CELL_IN_MESSAGE else cell[: _MAX_CELL_IN_MESSAGE - 1] + "…"
    return repr(short)


def _parse_number(cell: str) -> float | None:
    """A numeric cell: ``None`` when empty, else a finite float; :class:`ValueError` otherwise."""
    if not cell.strip():
        return None
    number = float(cell)  # ValueError for text
    if not math.isfinite(number):
        raise ValueError(cell)
    return number


def _parse_bool(cell: str) -> bool | None:
    text = cell.strip().lower()
    if not text:
        return None
    if text in ("true", "false"):
        return text == "true"
    raise ValueError(cell)


def _check_schema_version(cell: str) -> float:
    supported = ", ".join(str(version) for version in sorted(SUPPORTED_SUMMARY_SCHEMA_VERSIONS))
    if not cell.strip():
        raise _RowError(f"no summary schema version (this leaderboard reads version {supported})")
    try:
        number = float(cell)
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and number == int(number) and int(number) in SUPPORTED_SUMMARY_SCHEMA_VERSIONS):
        raise _RowError(
            f"summary schema version {_quote(cell)} is not supported (this leaderboard reads version {supported})"
        )
    return float(int(number))


def _check_spec_version(cell: str) -> None:
    if not cell.strip():
        raise _RowError(f"no spec version (this leaderboard reads spec {SUPPORTED_SPEC_MAJOR}.x)")
    major = cell.strip().split(".", 1)[0]
    if not (major.isdigit() and int(major) == SUPPORTED_SPEC_MAJOR):
        raise _RowError(
            f"spec version {_quote(cell)} is not supported (this leaderboard reads spec {SUPPORTED_SPEC_MAJOR}.x)"
        )


def _parse_row(header: list[str], kinds: list[Kind], cells: list[str]) -> dict[str, object]:
    """One data row as typed values, or :class:`_RowError` with the first reason to skip it."""
    if len(cells) != len(header):
        raise _RowError(f"{len(cells)} fields, the header has {len(header)}")
    raw = dict(zip(header, cells, strict=True))
    if not raw["run_id"].strip():
        raise _RowError("empty run_id")
    schema_version = _check_schema_version(raw["summary_schema_version"])
    _check_spec_version(raw["spec_version"])
    values: dict[str, object] = {}
    bad: list[str] = []
    for column, kind, cell in zip(header, kinds, cells, strict=True):
        if column in _RESERVED_COLUMNS:
            continue
        if kind == "text":
            values[column] = cell if cell != "" else None
            continue
        try:
            values[column] = _parse_number(cell) if kind == "number" else _parse_bool(cell)
        except ValueError:
            expected = "a finite number" if kind == "number" else "True, False or empty"
            bad.append(f"column {column}: {_quote(cell)} is not {expected}")
    if bad:
        raise _RowError("; ".join(bad))
    values["summary_schema_version"] = schema_version
    return values


CHUNK_ROWS = 4096
"""Rows typed at once: the file is read as a stream and typed column by column in chunks of this many rows, so
memory holds the typed columns plus one chunk of text, never the whole file's text."""


@dataclass
class _Block:
    """One file's loaded rows, column by column: typed arrays (float64, object, or object of bool/None)."""

    columns: list[str]
    data: dict[str, np.ndarray]
    source_row: list[np.ndarray]
    rows: int = 0


def _not_utf8_offset(path: Path) -> int | None:
    """The byte offset of the first byte that is not UTF-8 (``None`` when the whole file decodes)."""
    try:
        path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return int(exc.start)
    return None


def _is_blank(record: list[str]) -> bool:
    return all(not cell.strip() for cell in record)


def _read_file(name: str, seen: dict[str, tuple[str, int]], warnings: list[LoadWarning]) -> _Block | None:
    """The file's rows (``None`` when the whole file is skipped); problems appended to ``warnings``.

    The file is streamed; a decoding or CSV error found anywhere skips the whole file, as reading it at once did:
    its rows and row warnings are dropped and its run ids are not kept as seen.
    """
    path = Path(name)
    file_warnings: list[LoadWarning] = []
    file_seen: dict[str, tuple[str, int]] = {}
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            block = _read_stream(name, csv.reader(handle), seen, file_seen, file_warnings)
    except FileNotFoundError:
        warnings.append(LoadWarning(name, None, "file not found; skipped"))
        return None
    except UnicodeDecodeError:
        offset = _not_utf8_offset(path)
        warnings.append(LoadWarning(name, None, f"not UTF-8 text (byte offset {offset}); skipped"))
        return None
    except OSError as exc:
        warnings.append(LoadWarning(name, None, f"cannot read it ({exc.strerror or exc}); skipped"))
        return None
    except csv.Error as exc:
        warnings.append(LoadWarning(name, None, f"not a readable CSV ({exc}); skipped"))
        return None
    warnings.extend(file_warnings)
    seen.update(file_seen)
    return block


def _read_stream(
    name: str,
    reader: Iterable[list[str]],
    seen: dict[str, tuple[str, int]],
    file_seen: dict[str, tuple[str, int]],
    warnings: list[LoadWarning],
) -> _Block | None:
    records = iter(reader)
    header = next(records, None)
    if header is None or _is_blank(header):
        if header is None or all(_is_blank(record) for record in records):
            warnings.append(LoadWarning(name, None, "empty file (no header row); skipped"))
            return None
        header = header or []
    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    if missing:
        warnings.append(
            LoadWarning(name, None, f"the header lacks {', '.join(missing)}: not a capbench export CSV; skipped")
        )
        return None
    repeated = sorted({column for column in header if header.count(column) > 1})
    if repeated:
        warnings.append(LoadWarning(name, None, f"the header repeats {', '.join(repeated)}; skipped"))
        return None
    reserved = [column for column in header if column in _RESERVED_COLUMNS]
    if reserved:
        warnings.append(
            LoadWarning(name, None, f"column(s) {', '.join(reserved)} ignored: the leaderboard derives them")
        )
    kept = [column for column in header if column not in _RESERVED_COLUMNS]
    block = _Block(columns=kept, data={}, source_row=[])
    chunks: dict[str, list[np.ndarray]] = {column: [] for column in kept}
    interned: dict[str, dict[str, str]] = {column: {} for column in kept}
    chunk: list[tuple[int, list[str]]] = []
    for number, cells in enumerate(records, start=1):
        chunk.append((number, cells))
        if len(chunk) == CHUNK_ROWS:
            _type_chunk(name, header, chunk, chunks, interned, block, seen, file_seen, warnings)
            chunk = []
    _type_chunk(name, header, chunk, chunks, interned, block, seen, file_seen, warnings)
    for column in kept:
        parts = chunks.pop(column)  # each column's chunks are freed as soon as it is joined
        block.data[column] = _join(parts) if parts else np.empty(0, dtype=_empty_dtype(column))
    return block


def _join(parts: list[np.ndarray]) -> np.ndarray:
    """One array from ``parts`` (the part itself when there is one: no copy)."""
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _empty_dtype(column: str) -> type:
    return np.float64 if column_kind(column) == "number" else object


def _numbers(cells: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """A numeric column's cells as float64 (NaN where empty) and the mask of cells that are not a finite number.

    Vectorised: empty cells become NaN and the rest go through one ``astype(float64)`` (Python's ``float``, as
    :func:`_parse_number`); only a chunk where that fails (text, whitespace-only cells) is parsed cell by cell.
    """
    if not any(cells):  # a column this chunk never measured: no parsing at all
        return np.full(len(cells), np.nan), np.zeros(len(cells), dtype=bool)
    array = np.array(cells, dtype=object)
    empty = array == ""
    try:
        values = np.where(empty, "nan", array).astype(np.float64)
    except ValueError:
        values = np.full(len(array), np.nan)
        bad = np.zeros(len(array), dtype=bool)
        for i, cell in enumerate(cells):
            try:
                number = _parse_number(cell)
            except ValueError:
                bad[i] = True
                continue
            values[i] = np.nan if number is None else number
        return values, bad
    bad = ~empty & ~np.isfinite(values)
    values[bad] = np.nan
    return values, bad


def _checked(cells: tuple[str, ...], check: Callable[[str], object]) -> np.ndarray:
    """Mask of cells ``check`` rejects (raises :class:`_RowError`), each distinct cell checked once."""
    verdicts: dict[str, bool] = {}
    for cell in set(cells):
        try:
            check(cell)
            verdicts[cell] = False
        except _RowError:
            verdicts[cell] = True
    return np.fromiter((verdicts[cell] for cell in cells), dtype=bool, count=len(cells))


def _type_chunk(
    name: str,
    header: list[str],
    chunk: list[tuple[int, list[str]]],
    chunks: dict[str, list[np.ndarray]],
    interned: dict[str, dict[str, str]],
    block: _Block,
    seen: dict[str, tuple[str, int]],
    file_seen: dict[str, tuple[str, int]],
    warnings: list[LoadWarning],
) -> None:
    """Type one chunk of rows column by column; skipped rows get their warning (in row order), others are kept.

    Every row is validated: the field count per row, then the required columns and every typed cell vectorised
    per column; a row any check flags is re-checked by :func:`_parse_row`, whose first reason its warning gives.
    """
    width = len(header)
    problems: list[tuple[int, str]] = []
    rows: list[list[str]] = []
    numbers: list[int] = []
    for number, cells in chunk:
        if not cells:
            continue  # a blank line
        if len(cells) != width:
            problems.append((number, f"{len(cells)} fields, the header has {width}"))
            continue
        rows.append(cells)
        numbers.append(number)
    columns: list[tuple[str, ...]] = list(zip(*rows, strict=True)) if rows else [() for _ in header]
    kinds = [column_kind(column) for column in header]
    bad = np.zeros(len(rows), dtype=bool)
    bad |= _checked(columns[header.index("run_id")], lambda cell: _require(bool(cell.strip()), "empty run_id"))
    bad |= _checked(columns[header.index("summary_schema_version")], _check_schema_version)
    bad |= _checked(columns[header.index("spec_version")], _check_spec_version)
    typed: dict[str, np.ndarray] = {}
    for column, kind, column_cells in zip(header, kinds, columns, strict=True):
        if column in _RESERVED_COLUMNS:
            continue
        if kind == "number":
            typed[column], bad_cells = _numbers(column_cells)
            bad |= bad_cells
        elif kind == "bool":
            typed[column], bad_cells = _bools(column_cells)
            bad |= bad_cells
        else:
            pool = interned[column]
            typed[column] = np.array([None if c == "" else pool.setdefault(c, c) for c in column_cells], dtype=object)
    keep = ~bad
    for i in np.flatnonzero(bad):
        try:
            _parse_row(header, kinds, rows[i])
        except _RowError as exc:
            problems.append((numbers[i], str(exc)))
            continue
        keep[i] = True  # not reachable when the vectorised checks agree with _parse_row; kept rather than lost
    run_ids = columns[header.index("run_id")]
    for i in np.flatnonzero(keep):
        run_id = run_ids[i]
        first = seen.get(run_id) or file_seen.get(run_id)
        if first is not None:
            problems.append(
                (
                    numbers[i],
                    f"run_id {_quote(run_id)} already loaded from {first[0]}, row {first[1]} (the first is kept)",
                )
            )
            keep[i] = False
            continue
        file_seen[run_id] = (name, numbers[i])
    warnings.extend(LoadWarning(name, number, f"{message}; skipped") for number, message in sorted(problems))
    for column, values in typed.items():
        chunks[column].append(values[keep])
    block.source_row.append(np.asarray(numbers, dtype=np.int64)[keep])
    block.rows += int(keep.sum())


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise _RowError(message)


def _bools(cells: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """A bool column's cells as an object array of True / False / None, and the mask of cells that are neither."""
    verdicts: dict[str, tuple[bool | None, bool]] = {}
    for cell in set(cells):
        try:
            verdicts[cell] = (_parse_bool(cell), False)
        except ValueError:
            verdicts[cell] = (None, True)
    values = np.array([verdicts[cell][0] for cell in cells], dtype=object)
    bad = np.fromiter((verdicts[cell][1] for cell in cells), dtype=bool, count=len(cells))
    return values, bad


def _missing_values(column: str, rows: int) -> np.ndarray:
    return np.full(rows, np.nan) if column_kind(column) == "number" else np.full(rows, None, dtype=object)


def _build_frame(columns: list[str], blocks: list[tuple[str, _Block]]) -> pd.DataFrame:
    """One frame from the files' blocks; each column is freed from its block once it is in the frame's data."""
    data: dict[str, object] = {}
    for column in columns:
        parts = [
            block.data.pop(column) if column in block.data else _missing_values(column, block.rows)
            for _, block in blocks
        ]
        kind = column_kind(column)
        if kind == "number":
            data[column] = _join(parts).astype("float64", copy=False) if parts else np.empty(0, dtype="float64")
        elif kind == "bool":
            data[column] = pd.array(_join(parts) if parts else [], dtype="boolean")
        else:
            data[column] = pd.Series(_join(parts) if parts else [], dtype=object)
    data["source_file"] = pd.Series(
        _join([np.full(block.rows, name, dtype=object) for name, block in blocks]) if blocks else [], dtype=object
    )
    rows_of = [_join(block.source_row) if block.source_row else np.empty(0, np.int64) for _, block in blocks]
    data["source_row"] = (_join(rows_of) if rows_of else np.empty(0)).astype("int64")
    rows = sum(block.rows for _, block in blocks)
    frame = pd.DataFrame(data, index=pd.RangeIndex(rows), copy=False)  # the typed arrays are used as they are
    del data
    return add_derived(frame)


def empty_frame() -> pd.DataFrame:
    """No runs: every known column with its dtype, ``source_file``/``source_row`` and the derived columns."""
    return _build_frame(list(KNOWN_COLUMNS), [])


def load_results(paths: Iterable[str | Path]) -> Results:
    """Every run of the CSV files at ``paths``, in file then row order; never raises for bad input (see module)."""
    warnings: list[LoadWarning] = []
    seen: dict[str, tuple[str, int]] = {}
    columns: dict[str, None] = dict.fromkeys(KNOWN_COLUMNS)
    blocks: list[tuple[str, _Block]] = []
    files: list[str] = []
    for path in paths:
        name = str(path)
        files.append(name)
        block = _read_file(name, seen, warnings)
        if block is not None:
            columns.update(dict.fromkeys(block.columns))
            blocks.append((name, block))
    return Results(frame=_build_frame(list(columns), blocks), warnings=tuple(warnings), files=tuple(files))
