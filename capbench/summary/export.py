"""Flatten scored runs to one CSV row each (docs/summary.md, "CSV columns").

:func:`summary_row` turns a run's manifest and ``summary.json`` into a flat dict whose column names carry
their units (``ttft_p50_s``, ``energy_per_output_token_j``, ``usd_per_1m_output_tokens``); a figure that was
not measured is ``None`` and becomes an empty cell, never 0. :func:`export_runs` reads run directories into
a :class:`pandas.DataFrame` with a stable column order; :func:`write_csv` writes it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from capbench.errors import CapbenchError
from capbench.records.reader import read_json_object, read_manifest
from capbench.records.schema import CAPACITY_FILE, SUMMARY_FILE
from capbench.summary.columns import BY_NAME, COLUMNS, NAMES, PHASES, Scalar

__all__ = ["NAMES", "PHASES", "export_runs", "run_row", "summary_row", "write_csv"]


def summary_row(manifest: Mapping[str, Any], summary: Mapping[str, Any]) -> dict[str, Scalar]:
    """One run as one flat row: every declared column (:data:`capbench.summary.columns.COLUMNS`) in order, each
    read through its own path into ``run.json`` or ``summary.json``. Every key is always present (a stable
    schema); ``None`` = not measured."""
    return {column.name: column.value(manifest, summary) for column in COLUMNS}


def _scored(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A scored run directory's ``run.json`` and ``summary.json``; a clear error when it is not one."""
    if not run_dir.exists():
        raise CapbenchError(f"run directory {run_dir} does not exist")
    if not run_dir.is_dir():
        raise CapbenchError(f"{run_dir} is not a directory (expected a capbench run directory)")
    manifest = read_manifest(run_dir)
    path = run_dir / SUMMARY_FILE
    if not path.is_file():
        raise CapbenchError(f"{run_dir} has no {SUMMARY_FILE}: score it first with `capbench score {run_dir}`")
    return manifest, read_json_object(path, fix=f"; re-score with `capbench score {run_dir}`")


def run_row(run_dir: Path) -> dict[str, Scalar]:
    """The export row of one run directory, or of a repeats directory (``capbench run --repeats N``: one row,
    headline figures averaged)."""
    from capbench.summary.repeats import first_manifest, is_repeats_dir

    if is_repeats_dir(run_dir):
        summary = read_json_object(run_dir / SUMMARY_FILE)
        return summary_row(first_manifest(run_dir, summary), summary)
    return summary_row(*_scored(run_dir))


def _capacity_rows(search_dir: Path) -> list[dict[str, Scalar]]:
    """A capacity search's directory: one row per probe run that was scored, with the search's columns (the run
    at the capacity has ``capacity_point`` true and the cost at capacity)."""
    result = read_json_object(search_dir / CAPACITY_FILE)
    capacity_run = result.get("at_capacity_run")
    rows = []
    for probe in result.get("probes") or []:
        for rel in probe.get("run_dirs") or []:
            run_dir = search_dir / rel
            if not (run_dir / SUMMARY_FILE).is_file():
                continue  # a probe that never started has nothing to export
            manifest, summary = _scored(run_dir)
            at_capacity = rel == capacity_run
            capacity = {
                "search_id": result.get("search_id"),
                "search": result.get("search"),
                "capacity_point": at_capacity,
                "verdict": probe.get("verdict"),
                "attainment": probe.get("attainment"),
                "max_concurrency": result.get("max_concurrency"),
                "max_request_rate_per_s": result.get("max_request_rate_per_s"),
                "usd_per_1m_output_tokens_at_capacity": BY_NAME["usd_per_1m_output_tokens"].value(manifest, summary)
                if at_capacity
                else None,
            }
            rows.append(summary_row(manifest, {**summary, "capacity": capacity}))
    if not rows:
        raise CapbenchError(f"{search_dir}: the capacity search has no scored probe yet")
    return rows


def export_runs(run_dirs: Iterable[Path | str]) -> pd.DataFrame:
    """One row per run directory (each must hold ``run.json`` and ``summary.json``); a repeats directory
    (``capbench run --repeats``) is one row, a capacity search's directory one row per probe run.

    Columns: the declared columns in order, then any others in first-seen order (union over runs). A column
    whose values are all integers (or missing) becomes pandas' nullable ``Int64``, so counts are written
    as integers and a missing value stays an empty cell; floats are written at full precision.
    """
    rows: list[dict[str, Scalar]] = []
    for run_dir in map(Path, run_dirs):
        if (run_dir / CAPACITY_FILE).is_file():
            rows.extend(_capacity_rows(run_dir))
        else:
            rows.append(run_row(run_dir))
    if not rows:
        raise CapbenchError("no run directories given")
    columns = list(NAMES)
    seen = set(columns)
    for row in rows:
        for key in row:
            if key not in seen:
                seen.add(key)
                columns.append(key)
    frame = pd.DataFrame.from_records(rows, columns=columns)
    for column in columns:
        values = [row.get(column) for row in rows]
        present = [v for v in values if v is not None]
        if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
            frame[column] = pd.array(values, dtype="Int64")  # counts stay integers, missing stays empty
    return frame


def write_csv(frame: pd.DataFrame, output: Path | str | None) -> None:
    """Write ``frame`` as CSV to ``output`` (``None`` or ``-`` = stdout); empty cells for missing values."""
    if output is None or str(output) == "-":
        frame.to_csv(sys.stdout, index=False)
        return
    path = Path(output)
    try:
        with path.open("w", newline="", encoding="utf-8") as f:
            frame.to_csv(f, index=False)
    except OSError as exc:
        raise CapbenchError(f"cannot write the CSV to {path}: {exc.strerror or exc}") from exc
