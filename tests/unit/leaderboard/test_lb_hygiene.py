"""What the board shows is what is stored: hidden characters made visible, long names cut, complete runs first."""

from __future__ import annotations

import pandas as pd
import pytest

from capbench.leaderboard.app import default_selection
from capbench.leaderboard.escape import escape_markdown, plotly_text, visible_text
from capbench.leaderboard.table import apply_filters, display_frame, display_text, filter_options


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain name", "plain name"),
        ("abc\u202edef", "abc⟨U+202E⟩def"),  # right-to-left override: would display "abcfed"
        ("a\u2066b\u2069c", "a⟨U+2066⟩b⟨U+2069⟩c"),  # isolates
        ("zero\u200bwidth", "zero⟨U+200B⟩width"),
        ("bell\x07", "bell⟨U+0007⟩"),
        ("tab\tand\nnewline", "tab and newline"),
        ("模型 é", "模型 é"),  # printable text from any script is left alone
    ],
)
def test_hidden_characters_are_made_visible(raw: str, shown: str) -> None:
    assert visible_text(raw) == shown
    assert display_text(raw) == shown
    assert "\u202e" not in escape_markdown(raw) and "\u202e" not in plotly_text(raw)


def test_the_table_and_its_filters_use_the_visible_text() -> None:
    frame = pd.DataFrame({"run_id": ["a", "b"], "model": ["x\u202ey", "plain"], "status": ["complete", "partial"]})
    options = filter_options(frame)
    assert "x⟨U+202E⟩y" in options["model"]
    assert list(apply_filters(frame, {"model": ["x⟨U+202E⟩y"]})["run_id"]) == ["a"]
    assert list(display_frame(frame)["Model"]) == ["x⟨U+202E⟩y", "plain"]
    assert frame["model"][0] == "x\u202ey"  # the stored value (and the download) is unchanged


def test_only_complete_runs_by_default() -> None:
    frame = pd.DataFrame({"run_id": ["a", "b", "c"], "model": ["m"] * 3, "status": ["complete", "partial", "failed"]})
    options = filter_options(frame)
    assert options["status"] == ["complete", "failed", "partial"]
    start = default_selection("status", options["status"])
    assert start == ["complete"]
    assert list(apply_filters(frame, {"status": start})["run_id"]) == ["a"]
    assert list(apply_filters(frame, {"status": []})["run_id"]) == ["a", "b", "c"]  # cleared: every run
    assert default_selection("model", options["model"]) == []
    assert default_selection("status", ["partial"]) == []  # nothing complete: show what there is
