"""The leaderboard's Gradio layer and its Space packaging (the browser test covers the page itself)."""

from __future__ import annotations

import importlib.util
import os
import re
import tomllib
from pathlib import Path

import pytest
import yaml

from capbench.cli import main
from tests.support.paths import REPO

FOLDER = REPO / "leaderboard"

needs_gradio = pytest.mark.skipif(importlib.util.find_spec("gradio") is None, reason="gradio not installed")


def _front_matter() -> dict[str, object]:
    text = (FOLDER / "README.md").read_text(encoding="utf-8")
    match = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    assert match, "leaderboard/README.md must open with Space front matter"
    data = yaml.safe_load(match.group(1))
    assert isinstance(data, dict)
    return data


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;@]", requirement.strip(), maxsplit=1)[0].lower()


def test_space_front_matter_and_requirements_agree_with_the_package() -> None:
    meta = _front_matter()
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py" and (FOLDER / "app.py").is_file()
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    lines = [
        line.strip()
        for line in (FOLDER / "requirements.txt").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    needed = {_name(r) for r in [*project["dependencies"], *project["optional-dependencies"]["leaderboard"]]}
    assert {_name(line) for line in lines} == needed  # capbench's own dependencies and its leaderboard extra
    pins = dict(line.split("==") for line in lines if "==" in line)
    assert pins["gradio"] == str(meta["sdk_version"])  # the Space's SDK is the pinned gradio
    assert set(pins) >= {"gradio", "plotly"}


@needs_gradio
def test_installed_gradio_is_the_pinned_one() -> None:
    import gradio

    assert gradio.__version__ == str(_front_matter()["sdk_version"]), "re-pin the Space after testing a new gradio"


@needs_gradio
def test_app_builds_for_a_missing_and_an_empty_file(tmp_path: Path) -> None:
    from capbench.leaderboard.app import build_app

    empty = tmp_path / "empty.csv"
    empty.write_text("")
    app = build_app([tmp_path / "missing.csv", empty])
    assert app.title == "capbench CAP leaderboard"
    import gradio as gr

    shown = {block.elem_id: str(block.value) for block in app.blocks.values() if isinstance(block, gr.Markdown)}
    warnings = shown["load-warnings"].replace("\\", "")
    assert "2 problems while loading the results" in warnings
    assert "missing.csv: file not found; skipped" in warnings
    assert "empty.csv: empty file (no header row); skipped" in warnings


def test_default_csv_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("gradio")
    from capbench.leaderboard import app

    monkeypatch.setenv(app.RESULTS_ENV, f"a.csv{os.pathsep}b.csv")
    assert app.default_csv_paths() == [Path("a.csv"), Path("b.csv")]
    monkeypatch.delenv(app.RESULTS_ENV)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "results.csv").write_text("run_id\n")
    assert app.default_csv_paths() == [Path.cwd() / "results" / "results.csv"]


def test_cli_rejects_a_bad_port(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["leaderboard", "x.csv", "--port", "70000"]) == 2
    assert "--port must be in 1..65535" in capsys.readouterr().err


def test_cli_names_the_missing_extra(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real(name, *a))
    assert main(["leaderboard", "x.csv"]) == 2
    assert "pip install 'capbench[leaderboard]'" in capsys.readouterr().err


@needs_gradio
def test_the_table_shows_percent_once_and_dashes_for_unmeasured() -> None:
    import gradio as gr
    import pandas as pd

    from capbench.leaderboard.app import styled_table
    from capbench.leaderboard.data import load_results

    frame = load_results([REPO / "results" / "results.csv"]).frame
    raw = pd.read_csv(REPO / "results" / "results.csv")
    sent = gr.Dataframe(interactive=False).postprocess(styled_table(frame))  # what the page receives
    headers = list(sent.headers)
    shown = sent.metadata["display_value"]
    assert [row[headers.index("Accuracy (%)")] for row in shown] == [f"{100 * v:.4g}" for v in raw["accuracy"]]
    assert {row[headers.index("Energy (J / output token)")] for row in shown} == {"—"}  # unmeasured on CPU, never 0
    costs = [row[headers.index("Cost (USD / 1M output tokens)")] for row in sent.data]
    assert costs == list(raw["usd_per_1m_output_tokens"])  # the raw numbers stay, so the table sorts numerically


@needs_gradio
def test_cli_names_a_busy_port(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        board = tmp_path / "board.csv"
        board.write_text("run_id\n")
        assert main(["leaderboard", str(board), "--port", str(port)]) == 2
    assert f"cannot serve on 127.0.0.1:{port}" in capsys.readouterr().err
