"""Run details and warnings as Markdown: every value from the file escaped, "—" (never 0) when missing."""

from __future__ import annotations

import math
import re

from capbench.leaderboard.data import LoadWarning
from capbench.leaderboard.details import MAX_WARNINGS_SHOWN, run_details_markdown, warnings_markdown
from tests.support.html import parse_html, render_markdown

TEXT_FIELDS: tuple[str, ...] = (
    "run_id",
    "model",
    "engine",
    "engine_version",
    "hardware_profile",
    "gpu_name",
    "ceiling_compute_dtype",
    "ceiling_source",
    "spec_version",
    "capbench_version",
    "status",
    "dtype_weights",
    "dtype_experts",
    "dtype_embeddings",
    "dtype_kv",
    "dtype_compute",
    "load",
    "dataset",
    "accuracy_task",
    "accuracy_metric",
    "energy_source",
    "usd_per_gpu_hour_source",
    "source_file",
)
# The only tags the details' own Markdown produces.
OWN_TAGS = {"h4", "ul", "li", "strong", "p"}


def hostile(field: str) -> str:
    return f"<i>{field}</i>[x](http://evil.example)|**b**`c`"


def full_row() -> dict[str, object]:
    row: dict[str, object] = {field: hostile(field) for field in TEXT_FIELDS}
    row.update(
        {
            "num_gpus": 8.0,
            "ceiling_memory_bandwidth_bytes_per_s": 3.35e12,
            "ceiling_peak_flops_per_s": 989.5e12,
            "summary_schema_version": 1.0,
            "accuracy": 0.85,
            "accuracy_stderr": 0.01,
            "accuracy_samples": 200.0,
            "energy_per_output_token_j": 0.25,
            "usd_per_1m_output_tokens": 1.5,
            "usd_per_gpu_hour": 2.75,
            "top_k_override": 4.0,
            "source_row": 3,
        }
    )
    return row


def test_every_field_escaped_and_shown_literally() -> None:
    markdown = run_details_markdown(full_row())
    assert "<i>" not in markdown and "](" not in markdown
    tags, text = parse_html(render_markdown(markdown))
    assert set(tags) <= OWN_TAGS, set(tags) - OWN_TAGS  # no i, a, code, em, table from the values
    for field in TEXT_FIELDS:
        assert hostile(field) in text, field  # each value is in the details, shown as its literal text


def test_numbers_with_units() -> None:
    _, text = parse_html(render_markdown(run_details_markdown(full_row())))
    assert "85 % ± 1 % (n = 200)" in text  # accuracy fraction 0.85 -> 85 %, stderr 0.01 -> 1 %
    assert "3350 GB/s" in text  # 3.35e12 bytes/s / 1e9
    assert "989.5 TFLOP/s" in text  # 989.5e12 FLOP/s / 1e12
    assert "0.25 J / output token" in text
    assert "1.5 USD / 1M output tokens" in text
    assert "2.75 USD / GPU-hour" in text
    assert f"{hostile('gpu_name')} × 8" in text
    assert f"{hostile('source_file')}, row 3" in text
    assert "summary schema version: 1;" in text


def test_missing_values_are_dashes_not_zero() -> None:
    markdown = run_details_markdown({})
    assert "0" not in markdown  # no number at all is shown for an empty row
    lines = {line.split(":**", 1)[0]: line.split(":**", 1)[1] for line in markdown.splitlines() if ":**" in line}
    assert lines["- **Model"] == " —"
    assert lines["- **Accuracy"] == " —"
    assert lines["- **Energy"] == " — (source: —)"
    assert lines["- **Cost"] == " — (at —, source: —)"
    assert lines["- **Ceilings used"] == " memory bandwidth —, peak — (—), source: —"
    assert lines["- **Top-k override"] == " —"
    assert markdown.splitlines()[0] == "#### Run —"


def test_nan_numbers_are_dashes() -> None:
    row = {key: math.nan for key in full_row() if key not in TEXT_FIELDS}
    row["gpu_name"] = "Some GPU"
    markdown = run_details_markdown(row)
    assert not re.search(r"\d", markdown), markdown  # no digit: every number is missing
    assert "Some GPU × —" in markdown


def test_measured_zero_is_zero() -> None:
    markdown = run_details_markdown({"energy_per_output_token_j": 0.0, "energy_source": "nvml"})
    assert "**Energy:** 0 J / output token (source: nvml)" in markdown


def test_cpu_run() -> None:
    assert "**GPUs:** none (CPU)" in run_details_markdown({"num_gpus": 0.0})


def test_load_computed_when_not_derived() -> None:
    markdown = run_details_markdown({"load_pattern": "closed_loop", "concurrency": 4.0})
    assert "**Load:** concurrency 4;" in markdown


def test_warnings_markdown() -> None:
    assert warnings_markdown([]) == ""
    warnings = [
        LoadWarning("<b>evil</b>.csv", None, "file not found; skipped"),
        LoadWarning("r|s.csv", 3, "column x: '[a](http://e.example)' is not a finite number; skipped"),
    ]
    markdown = warnings_markdown(warnings)
    assert "<b>" not in markdown
    assert markdown.startswith("**2 problems while loading the results:**")
    tags, text = parse_html(render_markdown(markdown))
    assert set(tags) <= {"p", "strong", "ul", "li"}
    assert tags.count("li") == 2
    assert str(warnings[0]) in text and str(warnings[1]) in text


def test_warnings_markdown_is_capped() -> None:
    warnings = [LoadWarning("f.csv", row, "bad; skipped") for row in range(1, MAX_WARNINGS_SHOWN + 6)]
    markdown = warnings_markdown(warnings)
    assert markdown.count("\n- ") == MAX_WARNINGS_SHOWN + 1
    assert "and 5 more" in markdown
