"""The terminal report of a run with log-likelihood requests: their own table, with the group's figures."""

from __future__ import annotations

from rich.console import Console

from capbench.summary.report import print_summary

GROUP = {
    "requests": 160,
    "completed": 158,
    "failed": 2,
    "prompt_tokens": 7294,
    "latency_s": {"count": 158, "mean": 0.0915, "p50": 0.0873, "p90": 0.115, "p99": 0.196, "max": 0.22},
    "prompt_tokens_per_s": 1966.3,
    "requests_per_s": 43.1,
}


def _printed(summary: dict) -> str:
    console = Console(width=140, record=True)
    print_summary(summary, console)
    return console.export_text()


def test_the_group_gets_its_table() -> None:
    text = _printed({"status": "complete", "loglikelihood": GROUP})
    words = " ".join(text.split())  # the title wraps to the table's width
    assert "Log-likelihood requests (158 completed, 2 failed; 7,294 prompt tokens)" in words
    line = next(row for row in text.splitlines() if "latency" in row and "ms" in row)
    assert "91.5 ms" in line and "87.3 ms" in line and "196 ms" in line
    assert "1,966" in text and "43.1" in text


def test_no_table_without_the_group() -> None:
    assert "Log-likelihood" not in _printed({"status": "complete", "loglikelihood": None})
