"""Paging: the table update carries one page; filters and sort apply to every run first; the download and the
Pareto front cover the whole selection; the figures draw a bounded sample that keeps every front run."""

from __future__ import annotations

import asyncio
import csv
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from capbench.leaderboard.paging import PAGE_ROWS, clamp_page, page_count, page_of, plot_sample
from capbench.leaderboard.pareto import cost_accuracy_front, pareto_mask
from tests.support.paths import REPO

needs_gradio = pytest.mark.skipif(importlib.util.find_spec("gradio") is None, reason="gradio not installed")


def test_page_count_and_clamp() -> None:
    assert page_count(0) == 1 and page_count(1) == 1
    assert page_count(PAGE_ROWS) == 1 and page_count(PAGE_ROWS + 1) == 2
    assert page_count(10, page_rows=3) == 4
    assert clamp_page(0, 10, page_rows=3) == 1 and clamp_page(9, 10, page_rows=3) == 4
    assert clamp_page(None, 10) == 1 and clamp_page(float("nan"), 10) == 1 and clamp_page(2.7, 10, page_rows=3) == 2
    with pytest.raises(ValueError, match="page_rows"):
        page_count(3, page_rows=0)


def test_page_of_cuts_in_order() -> None:
    frame = pd.DataFrame({"x": range(10)})
    assert page_of(frame, 1, page_rows=4)["x"].tolist() == [0, 1, 2, 3]
    assert page_of(frame, 3, page_rows=4)["x"].tolist() == [8, 9]
    assert page_of(frame, 7, page_rows=4)["x"].tolist() == [8, 9]  # past the end: the last page


def test_plot_sample_keeps_every_kept_row_and_stays_bounded() -> None:
    frame = pd.DataFrame({"x": range(1000)})
    keep = np.zeros(1000, dtype=bool)
    keep[[3, 500, 999]] = True
    sample = plot_sample(frame, keep, limit=100)
    assert {3, 500, 999} <= set(sample["x"]) and len(sample) <= 100
    assert sample["x"].is_monotonic_increasing  # the frame's order is kept
    assert len(plot_sample(frame, keep, limit=2000)) == 1000  # small enough: every row


def test_front_of_a_sample_holding_the_front_is_the_front() -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {"usd_per_1m_output_tokens": rng.uniform(0, 1, 5000).round(2), "accuracy": rng.uniform(0, 1, 5000).round(2)}
    )
    keep = pareto_mask(frame, [("usd_per_1m_output_tokens", "min"), ("accuracy", "max")])
    sample = plot_sample(frame, keep.to_numpy(), limit=300)
    assert list(cost_accuracy_front(sample).index) == list(cost_accuracy_front(frame).index)


RUNS = 2 * PAGE_ROWS + 23


def _board_csv(path: Path) -> dict[str, float]:
    """RUNS copies of the first shipped run with distinct ids and costs (every third on vllm); {run id: cost}."""
    with (REPO / "results" / "results.csv").open(encoding="utf-8", newline="") as f:
        first = next(csv.DictReader(f))
    costs: dict[str, float] = {}
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(first))
        writer.writeheader()
        for i in range(RUNS):
            run_id = f"run-{i:03d}"
            costs[run_id] = float((i * 37) % RUNS)  # a permutation: file order is not cost order
            engine = "vllm" if i % 3 == 0 else "hf"
            writer.writerow(dict(first, run_id=run_id, engine=engine, usd_per_1m_output_tokens=costs[run_id]))
    return costs


def _block(app: Any, elem_id: str) -> Any:
    return next(b for b in app.blocks.values() if getattr(b, "elem_id", None) == elem_id)


def _event(app: Any, block: Any, trigger: str) -> Any:
    return next(f for f in app.fns.values() if any(t[0] == block._id and t[1] == trigger for t in f.targets))


def _process(app: Any, fn: Any, values: dict[str, Any]) -> dict[str, Any]:
    """Gradio's own processing of one event (preprocess, the function, postprocess), inputs by elem_id."""
    from gradio.state_holder import SessionState

    payload = [values.get(block.elem_id, getattr(block, "value", None)) for block in fn.inputs]
    result = asyncio.run(app.process_api(fn, payload, state=SessionState(app)))
    return {block.elem_id: data for block, data in zip(fn.outputs, result["data"], strict=True)}


def _table_ids(sent: Any) -> list[str]:
    headers = list(sent["headers"])
    return [row[headers.index("Run ID")] for row in sent["data"]]


@needs_gradio
def test_the_table_update_sends_one_page_of_the_sorted_filtered_runs(tmp_path: Path) -> None:
    from capbench.leaderboard.app import build_app

    costs = _board_csv(tmp_path / "board.csv")
    app = build_app([tmp_path / "board.csv"])
    engine = _block(app, "filter-engine")
    out = _process(app, _event(app, engine, "change"), {})
    by_cost = sorted(costs, key=costs.__getitem__)
    assert _table_ids(out["runs-table"]) == by_cost[:PAGE_ROWS]  # sorted over every run, then cut
    assert f"{RUNS} of {RUNS} runs shown" in out["status"]
    assert out["page"] == 1

    vllm = [r for r in by_cost if int(r.split("-")[1]) % 3 == 0]
    filtered = _process(app, _event(app, engine, "change"), {"filter-engine": ["vllm"], "sort-descending": True})
    assert _table_ids(filtered["runs-table"]) == vllm[::-1][:PAGE_ROWS]
    assert f"{len(vllm)} of {RUNS} runs shown" in filtered["status"]

    turn = _event(app, _block(app, "page-next"), "click")
    last = _process(app, turn, {"page": 2})  # from page 2, "next" shows page 3: the last 23 runs
    assert last["page"] == 3 and _table_ids(last["runs-table"]) == by_cost[2 * PAGE_ROWS :]
    beyond = _process(app, turn, {"page": 3})  # no page 4: the last page again
    assert beyond["page"] == 3 and len(_table_ids(beyond["runs-table"])) == RUNS - 2 * PAGE_ROWS

    # The Pareto list covers every selected run: sorted most expensive first, page 1 lacks the cheapest run (cost 0,
    # the whole front: every run has the same accuracy), yet the list names it. The run pickers offer the page.
    expensive = _process(app, _event(app, engine, "change"), {"sort-descending": True})
    assert by_cost[0] not in _table_ids(expensive["runs-table"])
    front_rows = [line for line in str(expensive["pareto"]).splitlines() if line.startswith("| ") and "---" not in line]
    assert len(front_rows) == 2 and front_rows[1].split(" | ")[2] == "0"  # the header, then the cost-0 run
    choices = [choice[1] for choice in out["run-pick"]["choices"]]
    assert set(choices) <= {*by_cost[:PAGE_ROWS], *(out["radar-runs"]["value"] or [])}


@needs_gradio
def test_the_download_holds_every_filtered_run(tmp_path: Path) -> None:
    from capbench.leaderboard.app import build_app

    costs = _board_csv(tmp_path / "board.csv")
    app = build_app([tmp_path / "board.csv"])
    fn = _event(app, _block(app, "download"), "click")
    out = _process(app, fn, {"filter-engine": ["hf"]})
    sent = out["download-file"]
    path = Path(sent["path"] if isinstance(sent, dict) else sent.path)
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    hf = {r for r in costs if int(r.split("-")[1]) % 3 != 0}
    assert {row["run_id"] for row in rows} == hf and len(rows) == len(hf) > PAGE_ROWS
    assert [float(row["usd_per_1m_output_tokens"]) for row in rows] == sorted(costs[r] for r in hf)


@needs_gradio
def test_the_figures_draw_a_bounded_sample_with_the_whole_front(monkeypatch: pytest.MonkeyPatch) -> None:
    from capbench.leaderboard import app as app_module

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "run_id": [f"r{i}" for i in range(3000)],
            "usd_per_1m_output_tokens": rng.uniform(0, 1, 3000),
            "accuracy": rng.uniform(0, 1, 3000),
            "tokens_per_s_per_user": rng.uniform(0, 1, 3000),
            "output_tokens_per_s_per_gpu": rng.uniform(0, 1, 3000),
            "capacity_point": [i == 7 for i in range(3000)],
        }
    )
    drawn = app_module.plot_runs(frame, limit=200)
    assert len(drawn) <= 200
    assert set(cost_accuracy_front(frame).index) <= set(drawn.index)
    both_max = [("tokens_per_s_per_user", "max"), ("output_tokens_per_s_per_gpu", "max")]
    assert set(frame.index[pareto_mask(frame, both_max)]) <= set(drawn.index)
    assert 7 in drawn.index
    assert app_module._plot_caption(len(drawn), len(frame)).startswith(f"The figures draw {len(drawn)} of the 3000")
    assert app_module._plot_caption(10, 10) == ""
