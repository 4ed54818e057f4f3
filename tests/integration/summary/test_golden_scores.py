"""Golden scores: the scorer gives, bit for bit, the summaries recorded before its columnar rewrite (issue #18).

Every shipped run of ``results/demo-moe-cpu`` and the synthetic runs of ``tests/data/golden/runs`` (schema
version 1 records, so this is also the old-schema check) are scored again and compared as canonical JSON text
with ``tests/data/golden/summaries`` (written by ``tests/data/golden/build_golden.py``), only the scorer's own
version stripped. Floats compare by their shortest round-trip text: any change in the last bit fails.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from capbench.errors import CapbenchError
from capbench.records import RecordWarning
from capbench.records.pass_codec import compact_pass
from capbench.records.token_times import compact_request
from capbench.summary.score import score_run_dir
from tests.support.paths import REPO
from tests.support.scripts import load_script

GOLDEN = REPO / "tests" / "data" / "golden"


BUILD = load_script(GOLDEN / "build_golden.py", "build_golden")
RUNS: dict[str, Path] = BUILD.golden_runs()


def test_every_golden_run_has_a_summary() -> None:
    stored = {p.stem for p in (GOLDEN / "summaries").glob("*.json")}
    assert len(RUNS) >= 14 and set(RUNS) == stored


@pytest.mark.parametrize("name", sorted(RUNS))
def test_scores_match_the_golden_summary(name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RecordWarning)  # the synthetic runs hold a duplicate line on purpose
        summary = score_run_dir(RUNS[name], write=False)
    # Fields added since the golden summaries were written: none of these runs has log-likelihood requests.
    assert summary.pop("loglikelihood") is None
    expected = (GOLDEN / "summaries" / f"{name}.json").read_bytes()
    assert BUILD.comparable(summary).decode() == expected.decode()


def _rewrite(source: Path, target: Path, encode: Callable[[dict[str, Any]], dict[str, Any]]) -> int:
    """``source`` with every record the writer can take in this writer's form (a line that does not parse, or a
    record it refuses, kept as it was); returns how many lines changed."""
    changed, lines = 0, []
    for raw in source.read_bytes().splitlines(keepends=True):
        try:
            record = orjson.loads(raw)
            line = orjson.dumps(encode(record)) + b"\n" if isinstance(record, dict) else raw
        except (orjson.JSONDecodeError, CapbenchError):
            line = raw
        changed += line.rstrip(b"\n") != raw.rstrip(b"\n")
        lines.append(line)
    target.write_bytes(b"".join(lines))
    return changed


@pytest.mark.parametrize("name", sorted(RUNS))
def test_the_current_writers_form_scores_the_same(name: str, tmp_path: Path) -> None:
    """The same records as the current writer stores them (compact token times, schema 2; compact integer lists
    of pass records, schema 3) give the same summary, bit for bit."""
    run_dir = tmp_path / name
    shutil.copytree(RUNS[name], run_dir)
    changed = _rewrite(RUNS[name] / "requests.jsonl", run_dir / "requests.jsonl", compact_request)
    if (RUNS[name] / "passes.jsonl").exists():
        changed += _rewrite(RUNS[name] / "passes.jsonl", run_dir / "passes.jsonl", compact_pass)
    assert changed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RecordWarning)
        summary = score_run_dir(run_dir, write=False)
    assert summary.pop("loglikelihood") is None
    expected = (GOLDEN / "summaries" / f"{name}.json").read_bytes()
    assert BUILD.comparable(summary).decode() == expected.decode()
