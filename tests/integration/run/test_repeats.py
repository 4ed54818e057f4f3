"""``capbench run --repeats N`` against the mock server: N run directories, one summary with means and 95 %
intervals, one export row; with a seeded noisy server the interval narrows as repeats grow."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from capbench.cli import main
from capbench.summary.columns import HEADLINE
from capbench.summary.export import export_runs
from capbench.testing.mock_server import MockServerProcess, MockSettings

pytestmark = pytest.mark.integration


@pytest.fixture
def noisy() -> Iterator[MockServerProcess]:
    """TTFT = 5 ms + a seeded uniform [0, 20 ms): the draws are the same on every test run."""
    with MockServerProcess(MockSettings(ttft_s=0.005, itl_s=0.001, ttft_jitter_s=0.02, output_tokens=4)) as proc:
        yield proc


def repeats(server: MockServerProcess, out: Path, n: int) -> dict[str, Any]:
    args = ["run", "--runner", "openai", "--base-url", server.url, "--power", "none", "--quiet", "--warmup", "0"]
    assert main([*args, "--num-requests", "20", "--slo", "ttft_s=0.02", "--repeats", str(n), "--out", str(out)]) == 0
    return dict(json.loads((out / "summary.json").read_text()))


def test_repeats_give_intervals_around_their_runs_and_one_export_row(noisy: MockServerProcess, tmp_path: Path) -> None:
    out = tmp_path / "rep"
    summary = repeats(noisy, out, 3)
    assert summary["kind"] == "repeats" and summary["repeats"]["n"] == 3
    runs = [out / f"repeat-{i}" for i in (1, 2, 3)]
    assert all((d / "run.json").exists() and (d / "summary.json").exists() for d in runs)  # left as they are
    singles = export_runs(runs)
    for name in HEADLINE:
        stats = summary["repeats"]["metrics"][name]
        own = [None if v is None or v != v else float(v) for v in singles[name]]  # None or NaN: an empty cell
        assert [v is None for v in stats["values"]] == [v is None for v in own], name
        assert [v for v in stats["values"] if v is not None] == pytest.approx([v for v in own if v is not None])
        if stats["mean"] is None:
            continue
        assert stats["ci95_low"] <= stats["mean"] <= stats["ci95_high"]
        assert all(stats["ci95_low"] <= v <= stats["ci95_high"] for v in stats["values"] if v is not None), name
    measured = [n for n in HEADLINE if summary["repeats"]["metrics"][n]["mean"] is not None]
    assert {"output_tokens_per_s", "ttft_p50_s", "tpot_p99_s", "goodput_fraction"} <= set(measured)
    row = export_runs([out]).iloc[0]
    metrics = summary["repeats"]["metrics"]
    assert row["num_repeats"] == 3 and row["ttft_p50_s"] == pytest.approx(metrics["ttft_p50_s"]["mean"])
    assert row["ci95_high_ttft_p50_s"] == pytest.approx(metrics["ttft_p50_s"]["ci95_high"])
    assert row["std_output_tokens_per_s"] == pytest.approx(metrics["output_tokens_per_s"]["std"])
    assert row["engine"] == "openai"
    assert summary["notes"][0].startswith("repeats: the headline figures are means over 3")


def test_the_interval_narrows_as_repeats_grow(noisy: MockServerProcess, tmp_path: Path) -> None:
    widths = {}
    for n in (2, 8):
        stats = repeats(noisy, tmp_path / f"rep{n}", n)["repeats"]["metrics"]["ttft_p50_s"]
        widths[n] = stats["ci95_high"] - stats["ci95_low"]
    assert widths[8] < widths[2] / 2, widths


def test_repeats_never_overwrite(noisy: MockServerProcess, tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "rep"
    repeats(noisy, out, 2)
    args = ["run", "--runner", "openai", "--base-url", noisy.url, "--power", "none", "--quiet", "--repeats", "2"]
    assert main([*args, "--out", str(out)]) == 2
    assert "already holds repeats" in capsys.readouterr().err
