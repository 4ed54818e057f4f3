"""Load ``capbench export`` CSV files into one typed frame, skipping what cannot be trusted with a warning.

Parsing uses the stdlib :mod:`csv` module so every warning names the exact file and data row (the header is
row 0, the first run row 1). Nothing raises: a file that cannot be used at all (missing, unreadable, not
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
import io
import math
from collections.abc import Iterable
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


def _read_text(path: Path, name: str) -> tuple[str | None, LoadWarning | None]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, LoadWarning(name, None, "file not found; skipped")
    except OSError as exc:
        return None, LoadWarning(name, None, f"cannot read it ({exc.strerror or exc}); skipped")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return None, LoadWarning(name, None, f"not UTF-8 text (byte offset {exc.start}); skipped")
    if not text.strip():
        return None, LoadWarning(name, None, "empty file (no header row); skipped")
    return text, None


def _read_file(
    name: str, seen: dict[str, tuple[str, int]], warnings: list[LoadWarning]
) -> tuple[list[str], list[dict[str, object]]]:
    """The file's header and parsed rows (``source_*`` included); problems appended to ``warnings``."""
    text, problem = _read_text(Path(name), name)
    if problem is not None:
        warnings.append(problem)
    if text is None:
        return [], []
    try:
        records = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        warnings.append(LoadWarning(name, None, f"not a readable CSV ({exc}); skipped"))
        return [], []
    header, body = records[0], records[1:]
    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    if missing:
        warnings.append(
            LoadWarning(name, None, f"the header lacks {', '.join(missing)}: not a capbench export CSV; skipped")
        )
        return [], []
    repeated = sorted({column for column in header if header.count(column) > 1})
    if repeated:
        warnings.append(LoadWarning(name, None, f"the header repeats {', '.join(repeated)}; skipped"))
        return [], []
    reserved = [column for column in header if column in _RESERVED_COLUMNS]
    if reserved:
        warnings.append(
            LoadWarning(name, None, f"column(s) {', '.join(reserved)} ignored: the leaderboard derives them")
        )
    kinds = [column_kind(column) for column in header]
    rows: list[dict[str, object]] = []
    for number, cells in enumerate(body, start=1):
        if not cells:
            continue  # a blank line
        try:
            values = _parse_row(header, kinds, cells)
            run_id = str(values["run_id"])
            if run_id in seen:
                first_file, first_row = seen[run_id]
                raise _RowError(
                    f"run_id {_quote(run_id)} already loaded from {first_file}, row {first_row} (the first is kept)"
                )
        except _RowError as exc:
            warnings.append(LoadWarning(name, number, f"{exc}; skipped"))
            continue
        seen[run_id] = (name, number)
        values["source_file"] = name
        values["source_row"] = number
        rows.append(values)
    return [column for column in header if column not in _RESERVED_COLUMNS], rows


def _build_frame(columns: list[str], rows: list[dict[str, object]]) -> pd.DataFrame:
    data: dict[str, object] = {}
    for column in columns:
        values = [row.get(column) for row in rows]
        kind = column_kind(column)
        if kind == "number":
            data[column] = np.array([np.nan if value is None else value for value in values], dtype="float64")
        elif kind == "bool":
            data[column] = pd.array(values, dtype="boolean")
        else:
            data[column] = pd.Series(values, dtype=object)
    data["source_file"] = pd.Series([row["source_file"] for row in rows], dtype=object)
    data["source_row"] = np.array([row["source_row"] for row in rows], dtype="int64")
    frame = pd.DataFrame(data, index=pd.RangeIndex(len(rows)))
    return add_derived(frame)


def empty_frame() -> pd.DataFrame:
    """No runs: every known column with its dtype, ``source_file``/``source_row`` and the derived columns."""
    return _build_frame(list(KNOWN_COLUMNS), [])


def load_results(paths: Iterable[str | Path]) -> Results:
    """Every run of the CSV files at ``paths``, in file then row order; never raises for bad input (see module)."""
    warnings: list[LoadWarning] = []
    seen: dict[str, tuple[str, int]] = {}
    columns: dict[str, None] = dict.fromkeys(KNOWN_COLUMNS)
    rows: list[dict[str, object]] = []
    files: list[str] = []
    for path in paths:
        name = str(path)
        files.append(name)
        header, file_rows = _read_file(name, seen, warnings)
        columns.update(dict.fromkeys(header))
        rows.extend(file_rows)
    return Results(frame=_build_frame(list(columns), rows), warnings=tuple(warnings), files=tuple(files))
