"""Golden scores: the scorer gives, bit for bit, the summaries recorded before its columnar rewrite (issue #18).

Every shipped run of ``results/demo-moe-cpu`` and the synthetic runs of ``tests/data/golden/runs`` (schema
version 1 records, so this is also the old-schema check) are scored again and compared as canonical JSON text
with ``tests/data/golden/summaries`` (written by ``tests/data/golden/build_golden.py``), only the scorer's own
version stripped. Floats compare by their shortest round-trip text: any change in the last bit fails.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from capbench.records import RecordWarning
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
