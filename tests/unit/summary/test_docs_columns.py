"""docs/summary.md lists exactly the CSV columns the export writes (``capbench.summary.columns``)."""

from __future__ import annotations

import itertools
import re

from capbench.summary.columns import NAMES, PHASES
from tests.support.paths import REPO

NAME = re.compile(r"^[a-z0-9_{},<>]+$")
NOT_COLUMNS = {"null"}
"""Backticked words in the column table that are values, not column names."""


def expand(pattern: str) -> list[str]:
    """``{a,b}_x`` → ``a_x``, ``b_x``; ``<phase>_y`` → one per phase."""
    pattern = pattern.replace("<phase>", "{" + ",".join(PHASES) + "}")
    parts = re.split(r"(\{[^}]*\})", pattern)
    options = [part[1:-1].split(",") if part.startswith("{") else [part] for part in parts]
    return ["".join(choice) for choice in itertools.product(*options)]


def documented_columns() -> list[str]:
    text = (REPO / "docs" / "summary.md").read_text()
    section = text[text.index("## CSV columns") :]
    names: list[str] = []
    for line in section.splitlines():
        cells = line.split("|")
        if len(cells) < 4 or set(line) <= set("|-: "):
            continue
        for token in re.findall(r"`([^`]+)`", cells[2]):
            outside_braces = re.sub(r"\{[^}]*\}", "", token)
            if NAME.match(token) and "," not in outside_braces and token not in NOT_COLUMNS:
                names.extend(expand(token))
    return names


def test_the_docs_list_every_column_once_and_nothing_else() -> None:
    documented = documented_columns()
    assert len(documented) == len(set(documented)), "a column is listed twice"
    assert sorted(set(NAMES) - set(documented)) == [], "exported but not documented"
    assert sorted(set(documented) - set(NAMES)) == [], "documented but not exported"


def test_expand() -> None:
    assert expand("slo_{ttft,tpot}_s") == ["slo_ttft_s", "slo_tpot_s"]
    assert expand("<phase>_passes")[0] == "prefill_passes" and len(expand("<phase>_passes")) == len(PHASES)
