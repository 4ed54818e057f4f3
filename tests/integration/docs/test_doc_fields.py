"""The field lists of docs/records.md and docs/summary.md are what runs really write: every key a real run writes
is documented, and every documented key is written by a real run or says which runs write it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from capbench.cli import main
from capbench.testing.mock_server import MockServerProcess, MockSettings
from tests.support.paths import REPO

pytestmark = pytest.mark.integration

QUALIFIED = re.compile(
    r"\b(vllm|vLLM|server runners|accuracy runs|open loop|hf runner|launched|not complete|when |only )", re.I
)
"""A documented key that the runs here do not write must say which runs write it."""


def table_rows(document: str, heading: str) -> list[tuple[list[str], str]]:
    """``(backticked keys of the first cell, the rest of the row)`` for the first table under ``heading``."""
    text = (REPO / document).read_text()
    start = text.index(heading + "\n")
    rows: list[tuple[list[str], str]] = []
    for line in text[start:].splitlines()[1:]:
        if line.startswith("#"):
            break
        if not line.startswith("|") or set(line) <= set("|-: "):
            if rows and not line.startswith("|") and line.strip():
                break
            continue
        cells = line.split("|")
        keys = re.findall(r"`([a-z_0-9]+)`", cells[1])
        if keys:
            rows.append((keys, "|".join(cells[2:])))
    assert rows, f"no table under {heading} in {document}"
    return rows


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def server() -> Iterator[MockServerProcess]:
    with MockServerProcess(MockSettings(ttft_s=0.01, itl_s=0.002, output_tokens=8)) as proc:
        yield proc


@pytest.fixture(scope="module")
def runs(tiny_model_dir: Path, server: MockServerProcess, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The demo with its accuracy task (hf), an open-loop openai run against the mock server."""
    root = tmp_path_factory.mktemp("fields")
    demo, openai = root / "demo", root / "openai"
    assert main(["run", "--out", str(demo), "--num-requests", "6", "--max-tokens", "8", "--quiet"]) == 0
    args = ["run", "--runner", "openai", "--base-url", server.url, "--out", str(openai), "--power", "none"]
    assert (
        main([*args, "--request-rate", "50", "--num-requests", "8", "--model-path", str(tiny_model_dir), "--quiet"])
        == 0
    )
    return [demo, openai]


def check(documented: list[tuple[list[str], str]], written: set[str], where: str) -> None:
    keys = {key for row_keys, _ in documented for key in row_keys}
    undocumented = sorted(written - keys)
    assert undocumented == [], f"{where}: written but not documented: {undocumented}"
    unqualified = sorted(
        key
        for row_keys, meaning in documented
        for key in row_keys
        if key not in written and not QUALIFIED.search(meaning)
    )
    assert unqualified == [], (
        f"{where}: documented, not written here, and the row does not say by which runs: {unqualified}"
    )


def test_run_json_fields(runs: list[Path]) -> None:
    written = {key for run in runs for key in json.loads((run / "run.json").read_text())}
    check(table_rows("docs/records.md", "## run.json"), written, "run.json")


def test_requests_fields(runs: list[Path]) -> None:
    written = {key for run in runs for record in _lines(run / "requests.jsonl") for key in record}
    check(table_rows("docs/records.md", "## requests.jsonl"), written, "requests.jsonl")


def test_passes_fields(runs: list[Path]) -> None:
    written = {key for record in _lines(runs[0] / "passes.jsonl") for key in record}
    check(table_rows("docs/records.md", "## passes.jsonl"), written, "passes.jsonl")


def test_summary_top_level_fields(runs: list[Path]) -> None:
    written = {key for run in runs for key in json.loads((run / "summary.json").read_text())}
    check(table_rows("docs/summary.md", "### Top level"), written, "summary.json")
