"""The leaderboard table: derived label columns, filters, sorting, display columns and CSV download.

Derived text columns (:func:`add_derived`; missing parts shown as "—"):

* ``hardware``: ``hardware_profile``, with `` ×N`` appended when ``num_gpus`` > 1; ``CPU (<profile>)`` when
  ``num_gpus`` is 0 and ``gpu_name`` is empty (a missing GPU count is not taken for a CPU).
* ``precision``: ``dtype_weights``; ``<weights> + experts <experts>`` when ``dtype_experts`` differs.
* ``task``: ``accuracy_task``, or ``none`` for a performance-only run.
* ``load``: ``concurrency N`` (closed loop or static batches: N requests in flight, or the batch size) or
  ``rate R/s`` (open loop: R mean arrivals per second); "—" when neither is recorded.
* ``label``: ``<model> · <engine> · <precision> · top-k <k> · <load>`` (the top-k part only with a
  ``top_k_override``), for legends.

Units: the table shows each figure in the unit its header names. Fractions (accuracy, its standard error,
S-MBU and S-MFU) are shown as percent: ``percent = 100 × fraction``. :func:`display_frame` keeps numbers as
numbers (so the table sorts numerically) and NaN for "not measured"; :func:`format_value` turns one value into
display text ("—" when missing, never 0; 4 significant digits; integers as integers).
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from capbench.leaderboard.escape import visible_text
from capbench.summary.columns import BY_NAME, COLUMNS

MISSING = "—"
"""How a value that was not measured is displayed (U+2014), never 0."""

DERIVED_COLUMNS: tuple[str, ...] = ("hardware", "precision", "task", "load", "label")
"""Text columns :func:`add_derived` adds (not part of the export's CSV)."""

SOURCE_COLUMNS: tuple[str, ...] = ("source_file", "source_row")
"""Where a loaded run came from (the file as given, its 1-based data row); not part of the export's CSV."""

FILTER_DIMENSIONS: dict[str, str] = {
    "status": "Status",
    "model": "Model",
    "engine": "Engine",
    "hardware": "Hardware",
    "precision": "Precision",
    "task": "Task",
    "dataset": "Dataset",
    "load": "Batch / concurrency",
}
"""Filter dimension (= the frame column it filters on) -> its UI label."""

_DERIVED_HEADERS: dict[str, str] = {
    "hardware": "Hardware",
    "precision": "Precision",
    "task": "Task",
    "load": "Batch / concurrency",
}


def _header(column: str) -> str:
    """A table header: the derived columns' own, else the column schema's label with its unit."""
    return _DERIVED_HEADERS.get(column) or BY_NAME[column].header


DISPLAY_COLUMNS: tuple[tuple[str, str], ...] = tuple(
    (name, _header(name))
    for name in (
        "model",
        "engine",
        "hardware",
        "precision",
        "task",
        "load",
        "top_k_override",
        "accuracy",
        "usd_per_1m_output_tokens",
        "usd_per_1m_output_tokens_at_capacity",
        "output_tokens_per_s",
        "output_tokens_per_s_per_gpu",
        "tokens_per_s_per_user",
        "ttft_p50_s",
        "tpot_mean_s",
        "e2e_latency_p99_s",
        "energy_per_output_token_j",
        "decode_s_mbu",
        "decode_s_mfu",
        "status",
        "run_id",
    )
)
"""(frame column, table header with its unit), in table order; headers from :mod:`capbench.summary.columns`."""

PERCENT_COLUMNS: frozenset[str] = frozenset(c.name for c in COLUMNS if c.percent)
"""Fractions displayed as percent (100 × fraction), as the column schema declares them."""

_TEXT_DISPLAY_COLUMNS = frozenset({"model", "engine", "status", "run_id", *DERIVED_COLUMNS})
_INTEGER_DISPLAY_COLUMNS = frozenset({"top_k_override"})
_SIGNIFICANT_DIGITS = 4
_OPEN_LOOP_PATTERNS = frozenset({"open_loop", "poisson"})
_CLOSED_LOOP_PATTERNS = frozenset({"closed_loop", "static_batches"})
_LOAD_RE = re.compile(r"^(concurrency|rate) (\S+?)(?:/s)?$")


def _is_missing(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float | np.floating):
        return bool(np.isnan(value))
    return isinstance(value, str) and value == ""


def cell_text(value: object) -> str | None:
    """A cell as text, ``None`` when missing."""
    return None if _is_missing(value) else str(value)


def cell_number(value: object) -> float | None:
    """A cell as a finite float, ``None`` when missing or not a number."""
    if _is_missing(value) or isinstance(value, bool | np.bool_):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def format_number(value: float) -> str:
    """``value`` with 4 significant digits, integers as integers, no exponent between 1e-6 and 1e15."""
    if value == 0:
        return "0"
    if abs(value) < 1e15 and value == round(value):
        return str(int(value))
    text = f"{value:.{_SIGNIFICANT_DIGITS}g}"
    if "e" in text and 1e-6 <= abs(value) < 1e15:
        text = format(Decimal(text), "f")
    return text


def _hardware(row: Mapping[str, Any]) -> str:
    profile = cell_text(row.get("hardware_profile"))
    num_gpus = cell_number(row.get("num_gpus"))
    if num_gpus == 0 and cell_text(row.get("gpu_name")) is None:
        return f"CPU ({profile})" if profile is not None else "CPU"
    base = profile if profile is not None else MISSING
    return f"{base} ×{format_number(num_gpus)}" if num_gpus is not None and num_gpus > 1 else base


def _precision(row: Mapping[str, Any]) -> str:
    weights, experts = cell_text(row.get("dtype_weights")), cell_text(row.get("dtype_experts"))
    base = weights if weights is not None else MISSING
    return f"{base} + experts {experts}" if experts is not None and experts != weights else base


def _task(row: Mapping[str, Any]) -> str:
    task = cell_text(row.get("accuracy_task"))
    return task if task is not None else "none"


def load_text(row: Mapping[str, Any]) -> str:
    """The ``load`` text of one run: "concurrency N", "rate R/s" or "—" (module docstring)."""
    pattern = cell_text(row.get("load_pattern"))
    concurrency, rate = cell_number(row.get("concurrency")), cell_number(row.get("request_rate_per_s"))
    if rate is not None and (pattern in _OPEN_LOOP_PATTERNS or pattern not in _CLOSED_LOOP_PATTERNS):
        return f"rate {format_number(rate)}/s"
    if concurrency is not None and pattern not in _OPEN_LOOP_PATTERNS:
        return f"concurrency {format_number(concurrency)}"
    if rate is not None:
        return f"rate {format_number(rate)}/s"
    return MISSING


def _label(row: Mapping[str, Any], precision: str, load: str) -> str:
    parts = [cell_text(row.get("model")) or MISSING, cell_text(row.get("engine")) or MISSING, precision]
    top_k = cell_number(row.get("top_k_override"))
    if top_k is not None:
        parts.append(f"top-k {format_number(top_k)}")
    parts.append(load)
    return " · ".join(parts)


_DERIVED_FROM: tuple[str, ...] = (
    "hardware_profile",
    "num_gpus",
    "gpu_name",
    "dtype_weights",
    "dtype_experts",
    "accuracy_task",
    "load_pattern",
    "concurrency",
    "request_rate_per_s",
    "model",
    "engine",
    "top_k_override",
)
"""The columns the derived text columns are computed from."""


def _derived_row(row: Mapping[str, Any]) -> tuple[str, str, str, str, str]:
    precision, load = _precision(row), load_text(row)
    return _hardware(row), precision, _task(row), load, _label(row, precision, load)


def add_derived(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with the text columns ``hardware``, ``precision``, ``task``, ``load``, ``label``.

    Each distinct combination of the :data:`_DERIVED_FROM` cells is derived once (runs of one configuration
    share it), so 100,000 runs cost as many derivations as they have configurations.
    """
    sources = [column for column in _DERIVED_FROM if column in frame.columns]
    keys = zip(*(frame[column].astype(object).where(frame[column].notna(), None) for column in sources), strict=True)
    cache: dict[tuple[Any, ...], tuple[str, str, str, str, str]] = {}
    rows: list[tuple[str, str, str, str, str]] = []
    for key in keys if sources else ((),) * len(frame):
        derived = cache.get(key)
        if derived is None:
            derived = cache[key] = _derived_row(dict(zip(sources, key, strict=True)))
        rows.append(derived)
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in DERIVED_COLUMNS]
    derived_frame = pd.DataFrame(
        {
            column: pd.Series(list(values), index=frame.index, dtype=object)
            for column, values in zip(DERIVED_COLUMNS, columns, strict=True)
        }
    )
    kept = frame.drop(columns=[c for c in DERIVED_COLUMNS if c in frame.columns])  # derived anew, in their order
    return pd.concat([kept, derived_frame], axis=1)  # the runs' columns are not copied (copy-on-write)


def dimension_codes(frame: pd.DataFrame, dimension: str) -> tuple[np.ndarray, np.ndarray]:
    """A filter dimension as ``(codes, texts)``: run ``i`` matches on the text ``texts[codes[i]]``, missing as "—".

    ``codes`` holds one ``intp`` per row of ``frame``; ``texts`` (object array) one entry per distinct value, each
    made visible once (:func:`~capbench.leaderboard.escape.visible_text`), "—" last for the missing values (two
    values may share a text). A dimension absent from ``frame`` is "—" for every run.
    """
    if dimension in DERIVED_COLUMNS and dimension not in frame.columns:
        frame = add_derived(frame)
    if dimension not in frame.columns:
        return np.zeros(len(frame), dtype=np.intp), np.array([MISSING], dtype=object)
    codes, uniques = pd.factorize(frame[dimension].astype(object), use_na_sentinel=True)
    texts = [visible_text(text) if (text := cell_text(value)) else MISSING for value in uniques]
    codes = np.where(codes < 0, len(texts), codes).astype(np.intp)  # missing: the last text
    return codes, np.array([*texts, MISSING], dtype=object)


def _dimension_values(frame: pd.DataFrame, dimension: str) -> pd.Series:
    """The text a filter dimension matches on, missing as "—" (each distinct value made visible once)."""
    codes, texts = dimension_codes(frame, dimension)
    return pd.Series(texts[codes], index=frame.index, dtype=object)


def check_dimensions(names: Iterable[str]) -> None:
    """Raise :class:`ValueError` naming every one of ``names`` that is not a filter dimension."""
    unknown = [name for name in names if name not in FILTER_DIMENSIONS]
    if unknown:
        raise ValueError(
            f"unknown filter dimension(s) {', '.join(map(repr, unknown))}; known: {', '.join(FILTER_DIMENSIONS)}"
        )


def _option_key(dimension: str, value: str) -> tuple[int, str, float, str]:
    if value == MISSING:
        return (1, "", 0.0, value)
    if dimension == "load":
        match = _LOAD_RE.match(value)
        number = cell_number(match.group(2)) if match else None
        if match and number is not None:
            return (0, match.group(1), number, value)
    return (0, value.casefold(), 0.0, value)


def filter_options(frame: pd.DataFrame) -> dict[str, list[str]]:
    """Sorted distinct values per filter dimension ("—" last; ``load`` by its number: concurrency 4 before 16)."""
    options: dict[str, list[str]] = {}
    for dimension in FILTER_DIMENSIONS:
        values = set(_dimension_values(frame, dimension))
        options[dimension] = sorted(values, key=partial(_option_key, dimension))
    return options


def apply_filters(frame: pd.DataFrame, selections: Mapping[str, Sequence[str] | None]) -> pd.DataFrame:
    """The rows matching every dimension's selection (any of its values); an empty or ``None`` selection is no
    constraint. An unknown dimension raises :class:`ValueError` naming it."""
    check_dimensions(selections)
    mask = pd.Series(True, index=frame.index, dtype=bool)
    for dimension, selected in selections.items():
        if not selected:
            continue
        mask &= _dimension_values(frame, dimension).isin(list(selected))
    return frame.loc[mask]


def _sort_key(values: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return values
    return pd.Series(
        [None if _is_missing(value) or value == MISSING else str(value) for value in values],
        index=values.index,
        dtype=object,
    )


def sort_runs(frame: pd.DataFrame, column: str, *, ascending: bool) -> pd.DataFrame:
    """``frame`` sorted by ``column`` (stable); missing values (NaN, empty, "—") last in both directions.

    ``load`` sorts by its kind and number ("concurrency 4" before "concurrency 16"), as its filter options do.
    """
    if column not in frame.columns:
        raise ValueError(f"cannot sort by {column!r}: no such column")
    if column == "load":
        keys = [None if _is_missing(v) or v == MISSING else _option_key("load", str(v)) for v in frame[column]]
        present = sorted((k, i) for i, k in enumerate(keys) if k is not None)
        order = [i for _, i in (present if ascending else sorted(present, key=lambda p: p[0], reverse=True))]
        order += [i for i, k in enumerate(keys) if k is None]
        return frame.iloc[order]
    return frame.sort_values(by=column, ascending=ascending, na_position="last", kind="stable", key=_sort_key)


def display_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The :data:`DISPLAY_COLUMNS` of ``frame``, renamed to their headers, one row per run.

    Numbers stay numbers (NaN = not measured) so the table sorts numerically; fractions under a "%" header are
    multiplied by 100; ``top_k_override`` is a nullable integer. Text columns show "—" when missing. A column
    absent from ``frame`` is all missing.
    """
    if any(column in DERIVED_COLUMNS and column not in frame.columns for column, _ in DISPLAY_COLUMNS):
        frame = add_derived(frame)
    out: dict[str, pd.Series] = {}
    for column, header in DISPLAY_COLUMNS:
        if column in _TEXT_DISPLAY_COLUMNS:
            out[header] = _dimension_values(frame, column)
            continue
        if column in frame.columns:
            values = pd.to_numeric(frame[column], errors="coerce").astype("float64")
        else:
            values = pd.Series(np.nan, index=frame.index, dtype="float64")
        if column in PERCENT_COLUMNS:
            values = values * 100.0
        if column in _INTEGER_DISPLAY_COLUMNS and bool(((values % 1 == 0) | values.isna()).all()):
            values = values.astype("Int64")
        out[header] = values
    return pd.DataFrame(out, index=frame.index)


def format_value(column: str, value: object) -> str:
    """Display text for one raw value of ``column`` (a frame column, or a header ending in "(%)").

    A fraction of :data:`PERCENT_COLUMNS` is shown as percent (no "%" sign: the header carries the unit);
    everything else as :func:`display_text` shows it.
    """
    percent = column in PERCENT_COLUMNS or column.endswith("(%)")
    number = None if isinstance(value, str | bool | np.bool_) or _is_missing(value) else cell_number(value)
    return display_text(number * 100.0 if percent and number is not None else value)


def display_text(value: object) -> str:
    """Display text for one cell of :func:`display_frame` (its values are already scaled: no ×100 here).

    "—" for None, NaN or empty text; numbers with 4 significant digits, integers as integers; booleans as
    yes/no; text with hidden characters made visible (:func:`~capbench.leaderboard.escape.visible_text`), not
    escaped.
    """
    if _is_missing(value):
        return MISSING
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, str):
        return visible_text(value)
    number = cell_number(value)
    return str(value) if number is None else format_number(number)


def _csv_cell(value: object) -> str:
    if _is_missing(value):
        return ""
    if isinstance(value, bool | np.bool_):
        return "True" if value else "False"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        return str(int(number)) if abs(number) < 2**53 and number == round(number) else repr(number)
    return str(value)


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """The runs of ``frame`` as UTF-8 CSV in the export's format: its export columns only (no ``source_*`` or
    derived columns), missing = empty cell, floats at full precision (shortest round-trip repr; integral
    values as integers), booleans as True/False. :func:`capbench.leaderboard.data.load_results` reads it back to
    the same values."""
    excluded = set(SOURCE_COLUMNS) | set(DERIVED_COLUMNS)
    columns = [column for column in frame.columns if column not in excluded]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(zip(*(_csv_column(frame[column]) for column in columns), strict=True))
    return buffer.getvalue().encode("utf-8")


def _csv_column(values: pd.Series) -> list[str]:
    """:func:`_csv_cell` over a column; float64 columns vectorised (what most of a results table is)."""
    if values.dtype != np.float64:
        return [_csv_cell(value) for value in values]
    array = values.to_numpy()
    missing = np.isnan(array)
    integral = ~missing & (np.abs(array) < 2**53) & (array == np.round(array))
    out = np.full(len(array), "", dtype=object)
    out[integral] = array[integral].astype(np.int64).astype(str)
    rest = ~missing & ~integral
    out[rest] = [repr(float(x)) for x in array[rest]]
    return out.tolist()
