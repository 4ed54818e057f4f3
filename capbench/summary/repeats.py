"""A run repeated N times: each repeat a run directory of its own, and one summary over them.

``capbench run --repeats N --out DIR`` writes ``DIR/repeat-1`` ... ``DIR/repeat-N`` (ordinary run directories,
left as they are) and ``DIR/summary.json``, the repeats' summary: ``kind: "repeats"``, and ``repeats``:

- ``n`` (complete repeats used), ``run_dirs`` (all, relative to DIR), ``incomplete`` (those not complete, left
  out of the figures);
- ``metrics``: for each headline figure (:data:`capbench.summary.columns.HEADLINE`, the export's column names)
  ``values`` (per complete repeat; null where a repeat did not measure it), and over the measured values ``n``,
  ``mean``, ``std`` (sample standard deviation) and the 95 % confidence interval of the mean
  (``ci95_low``/``ci95_high`` = mean ∓ t₀.₉₇₅(n − 1)·std/√n; :func:`capbench.metrics.stats.mean_ci95`).

The rest of ``DIR/summary.json`` is the first complete repeat's summary with each headline figure replaced by its
mean, so ``capbench export DIR`` gives one row whose settings are the run's, whose headline columns are means,
with ``std_*``, ``ci95_low_*``, ``ci95_high_*`` and ``num_repeats`` beside them; every other figure in that row
(and the row's ``run.json`` facts) is the first complete repeat's, which its ``notes`` say.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from capbench.errors import CapbenchError
from capbench.metrics.stats import mean_ci95
from capbench.records.reader import read_json_object, read_manifest
from capbench.records.schema import MANIFEST_FILE, SUMMARY_FILE
from capbench.summary.columns import BY_NAME, HEADLINE

KIND = "repeats"


def repeat_dir(out: Path, index: int) -> Path:
    """Where repeat ``index`` (from 1) of a run writes."""
    return out / f"repeat-{index}"


def is_repeats_dir(path: Path) -> bool:
    """``path`` holds a repeats' summary (and no run of its own)."""
    summary = path / SUMMARY_FILE
    if (path / MANIFEST_FILE).exists() or not summary.is_file():
        return False
    try:
        return json.loads(summary.read_text(encoding="utf-8")).get("kind") == KIND
    except (OSError, ValueError, AttributeError):
        return False


def run_complete(run_dir: Path) -> bool:
    """``run.json`` says ``complete`` and ``summary.json`` exists."""
    if not (run_dir / MANIFEST_FILE).is_file() or not (run_dir / SUMMARY_FILE).is_file():
        return False
    try:
        return read_manifest(run_dir).get("status") == "complete"
    except CapbenchError:
        return False


def _set(summary: dict[str, Any], path: Sequence[str], value: Any) -> None:
    node = summary
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            return  # the first repeat has no such section: nothing to replace
        node = child
    node[path[-1]] = value


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def aggregate_repeats(out: Path, run_dirs: Sequence[Path]) -> dict[str, Any]:
    """The repeats' summary (module docstring) of ``run_dirs`` (complete ones count)."""
    complete = [d for d in run_dirs if run_complete(d)]
    if not complete:
        raise CapbenchError(f"none of the {len(run_dirs)} repeats in {out} completed: nothing to summarize")
    loaded = [(read_manifest(d), read_json_object(d / SUMMARY_FILE)) for d in complete]
    base = copy.deepcopy(loaded[0][1])
    metrics: dict[str, Any] = {}
    for name in HEADLINE:
        column = BY_NAME[name]
        values = [_number(column.value(manifest, summary)) for manifest, summary in loaded]
        stats = mean_ci95([v for v in values if v is not None])
        metrics[name] = {"values": values, **stats}
        if column.summary is not None:
            _set(base, column.summary, stats["mean"])
    base["kind"] = KIND
    base["repeats"] = {
        "n": len(complete),
        "run_dirs": [d.name for d in run_dirs],
        "incomplete": [d.name for d in run_dirs if d not in complete],
        "metrics": metrics,
    }
    notes = list(base.get("notes") or [])
    notes.insert(
        0,
        f"repeats: the headline figures are means over {len(complete)} complete repeats (repeats.metrics: standard "
        f"deviation, 95 % interval); every other figure is {complete[0].name}'s",
    )
    base["notes"] = notes
    return base


def first_manifest(path: Path, summary: Mapping[str, Any]) -> dict[str, Any]:
    """The ``run.json`` an export row of a repeats directory takes its run facts from: the first complete repeat's."""
    repeats = summary.get("repeats") or {}
    incomplete = set(repeats.get("incomplete") or [])
    for name in repeats.get("run_dirs") or []:
        if name not in incomplete:
            return read_manifest(path / name)
    raise CapbenchError(f"{path}: the repeats' summary names no complete repeat")
