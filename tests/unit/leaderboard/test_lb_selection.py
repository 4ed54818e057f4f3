"""The precomputed filter and sort path (RunIndex) against the plain pandas one, and what a filter change sends."""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from capbench.leaderboard.selection import RunIndex
from capbench.leaderboard.table import (
    DISPLAY_COLUMNS,
    FILTER_DIMENSIONS,
    add_derived,
    apply_filters,
    filter_options,
    sort_runs,
)

REPO = Path(__file__).resolve().parents[3]


def random_runs(seed: int, runs: int = 300) -> pd.DataFrame:
    """Runs with few distinct values per column (many ties), missing cells of every kind and hidden characters."""
    rng = np.random.default_rng(seed)

    def pick(values: list[Any]) -> list[Any]:
        return [values[i] for i in rng.integers(0, len(values), runs)]

    numbers = [1.0, 2.0, 2.0, 3.5, np.nan]
    frame = pd.DataFrame(
        {
            "run_id": [f"r{i:04d}" for i in range(runs)],
            "status": pick(["complete", "complete", "partial", None]),
            "model": pick(["qwen", "Mixtral", "mixtral", "m\u202eodel", "", None]),
            "engine": pick(["vllm", "hf", "sglang", None]),
            "hardware_profile": pick(["h100-sxm", "a100", None]),
            "gpu_name": pick(["NVIDIA H100", None]),
            "num_gpus": pick([0.0, 1.0, 2.0, 8.0, np.nan]),
            "dtype_weights": pick(["bf16", "fp8", None]),
            "dtype_experts": pick(["fp8", "int4", None]),
            "accuracy_task": pick(["gsm8k", "mmlu", None]),
            "dataset": pick(["sharegpt", "random", None]),
            "load_pattern": pick(["closed_loop", "poisson", None]),
            "concurrency": pick([4.0, 16.0, 128.0, np.nan]),
            "request_rate_per_s": pick([0.5, 2.0, np.nan]),
            "top_k_override": pick([np.nan, np.nan, 2.0]),
            "accuracy": pick(numbers),
            "usd_per_1m_output_tokens": pick(numbers),
            "output_tokens_per_s": pick(numbers),
            "ttft_p50_s": pick(numbers),
        }
    )
    return add_derived(frame.sample(frac=1.0, random_state=seed).reset_index(drop=True))


def random_selections(frame: pd.DataFrame, rng: np.random.Generator) -> dict[str, list[str] | None]:
    """Up to three dimensions, each with one to three of its options (or nothing / None: no constraint)."""
    options = filter_options(frame)
    chosen: dict[str, list[str] | None] = {}
    for dimension in rng.choice(list(FILTER_DIMENSIONS), size=int(rng.integers(0, 4)), replace=False):
        values = options[str(dimension)]
        count = int(rng.integers(0, min(3, len(values)) + 1))
        chosen[str(dimension)] = [str(v) for v in rng.choice(values, size=count, replace=False)] or None
    return chosen


SORT_COLUMNS = [column for column, _ in DISPLAY_COLUMNS]


@pytest.mark.parametrize("seed", range(6))
def test_the_index_selects_and_sorts_as_the_pandas_filter_and_sort(seed: int) -> None:
    frame = random_runs(seed)
    index = RunIndex(frame)
    rng = np.random.default_rng(100 + seed)
    for _ in range(20):
        selections = random_selections(frame, rng)
        mask = index.mask(selections)
        expected_rows = apply_filters(frame, selections)
        assert frame.index[mask].tolist() == expected_rows.index.tolist(), selections
        for column in SORT_COLUMNS:
            if column not in frame.columns:
                continue
            for descending in (False, True):
                expected = sort_runs(expected_rows, column, ascending=not descending).index.tolist()
                got = index.sorted_positions(mask, column, descending=descending).tolist()
                assert got == expected, (selections, column, descending)


def test_sort_orders_are_kept_and_ties_keep_the_runs_order() -> None:
    frame = pd.DataFrame({"run_id": ["a", "b", "c", "d", "e"], "cost": [2.0, 1.0, np.nan, 2.0, 1.0]})
    index = RunIndex(frame)
    assert index.order("cost", descending=False).tolist() == [1, 4, 0, 3, 2]  # missing last
    assert index.order("cost", descending=True).tolist() == [0, 3, 1, 4, 2]  # ties in file order, missing last
    assert index.order("cost", descending=True) is index.order("cost", descending=True)  # computed once
    without_a = (frame["run_id"] != "a").to_numpy()
    assert index.sorted_positions(without_a, "cost", descending=True).tolist() == [3, 1, 4, 2]


def test_the_index_rejects_what_the_pandas_path_rejects() -> None:
    index = RunIndex(random_runs(0, runs=20))
    with pytest.raises(ValueError, match="'shade'"):
        index.mask({"shade": ["red"]})
    with pytest.raises(ValueError, match="no such column"):
        index.order("shade", descending=False)


def test_positions_by_run_id() -> None:
    frame = random_runs(1, runs=30)
    index = RunIndex(frame)
    assert index.position(str(frame["run_id"].iloc[7])) == 7
    assert index.position("no-such-run") is None and index.position(None) is None


def test_an_empty_board_selects_nothing() -> None:
    from capbench.leaderboard.data import empty_frame

    index = RunIndex(empty_frame())
    mask = index.mask({"engine": ["vllm"]})
    assert len(mask) == 0
    assert index.sorted_positions(mask, "usd_per_1m_output_tokens", descending=True).tolist() == []


# --- what a filter change sends --------------------------------------------------------------------------------


def _board_csv(path: Path, runs: int = 12) -> list[str]:
    """``runs`` copies of the first shipped run, every other one on vllm, costs rising with the id; the ids."""
    with (REPO / "results" / "results.csv").open(encoding="utf-8", newline="") as f:
        first = next(csv.DictReader(f))
    ids = [f"run-{i:02d}" for i in range(runs)]
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(first))
        writer.writeheader()
        for i, run_id in enumerate(ids):
            engine = "vllm" if i % 2 else "hf"
            writer.writerow(dict(first, run_id=run_id, engine=engine, usd_per_1m_output_tokens=str(1.0 + i)))
    return ids


def _process(app: Any, state: Any, trigger: tuple[str, str], values: dict[str, Any]) -> dict[str, Any]:
    """Gradio's own processing of the event ``trigger`` (elem_id, event name) in the session ``state`` (which
    keeps the pickers' choices, as the page does), inputs by elem_id."""
    block = next(b for b in app.blocks.values() if getattr(b, "elem_id", None) == trigger[0])
    fn = next(f for f in app.fns.values() if any(t[0] == block._id and t[1] == trigger[1] for t in f.targets))
    payload = [values.get(b.elem_id, getattr(b, "value", None)) for b in fn.inputs]
    result = asyncio.run(app.process_api(fn, payload, state=state))
    return {b.elem_id: data for b, data in zip(fn.outputs, result["data"], strict=True)}


def _skipped(sent: Any) -> bool:
    """Whether an output was left as the page shows it (``gr.skip()``: an update with nothing in it)."""
    return isinstance(sent, dict) and sent.get("__type__") == "update" and len(sent) == 1


def test_a_filter_change_sends_the_run_details_only_through_the_pickers_event(tmp_path: Path) -> None:
    pytest.importorskip("gradio")
    from gradio.state_holder import SessionState

    from capbench.leaderboard.app import build_app

    ids = _board_csv(tmp_path / "board.csv")
    app = build_app([tmp_path / "board.csv"])
    state = SessionState(app)

    def process(trigger: tuple[str, str], values: dict[str, Any]) -> dict[str, Any]:
        return _process(app, state, trigger, values)

    def unfiltered() -> None:
        """Every run again: the pickers offer every run (12 runs, one page), as after the page's load."""
        process(("filter-engine", "change"), {"run-pick": None})

    details = ["run-details", "utilization", "roofline", "experts", "latency", "capacity-curve"]

    loaded = process(("filter-engine", "change"), {})  # as the page's load event: nothing picked yet
    assert loaded["run-pick"]["value"] == ids[0]

    # The picked run stays selected: its details are already on the page and are not built again.
    kept = process(("filter-engine", "change"), {"filter-engine": ["vllm"], "run-pick": ids[1]})
    assert kept["run-pick"]["value"] == ids[1]
    assert all(_skipped(kept[name]) for name in details)

    unfiltered()
    # The picked run leaves the selection: the pick moves to the first run, and the picker's change event (which
    # Gradio fires for the new value) draws its details, once.
    moved = process(("filter-engine", "change"), {"filter-engine": ["vllm"], "run-pick": ids[0]})
    assert moved["run-pick"]["value"] == ids[1]
    assert all(_skipped(moved[name]) for name in details)
    drawn = process(("run-pick", "change"), {"filter-engine": ["vllm"], "run-pick": ids[1]})
    assert "Run run\\-01" in drawn["run-details"]  # escaped markdown
    assert not any(_skipped(drawn[name]) for name in details)

    unfiltered()
    # The radar: drawn by the filter change when its runs stay (a new sort can reorder them), else by its own
    # change event.
    radar_kept = process(("filter-engine", "change"), {"filter-engine": ["vllm"], "radar-runs": [ids[1], ids[3]]})
    assert radar_kept["radar-runs"]["value"] == [ids[1], ids[3]] and not _skipped(radar_kept["cap-radar"])
    unfiltered()
    radar_moved = process(("filter-engine", "change"), {"filter-engine": ["vllm"], "radar-runs": [ids[0]]})
    assert radar_moved["radar-runs"]["value"] != [ids[0]] and _skipped(radar_moved["cap-radar"])


def test_the_page_load_draws_what_no_other_event_draws(tmp_path: Path) -> None:
    pytest.importorskip("gradio")
    from gradio.state_holder import SessionState

    from capbench.leaderboard.app import build_app

    ids = _board_csv(tmp_path / "board.csv")
    app = build_app([tmp_path / "board.csv"])
    state = SessionState(app)
    _process(app, state, ("filter-engine", "change"), {})  # the pickers offer every run
    load = next(f for f in app.fns.values() if any(t[1] == "load" for t in f.targets))
    payload = [getattr(b, "value", None) for b in load.inputs]
    run_pick = next(i for i, b in enumerate(load.inputs) if getattr(b, "elem_id", None) == "run-pick")
    payload[run_pick] = ids[0]  # the run the page would show: a load draws its details all the same
    result = asyncio.run(app.process_api(load, payload, state=state))
    sent = {b.elem_id: data for b, data in zip(load.outputs, result["data"], strict=True)}
    assert [name for name, data in sent.items() if _skipped(data)] == ["cap-radar"]  # none picked: its event draws
    assert "Run run\\-00" in sent["run-details"]  # escaped markdown

    # A fresh page has no run picked: the load picks the first run, whose details run_pick's change event draws.
    payload[run_pick] = None
    result = asyncio.run(app.process_api(load, payload, state=state))
    sent = {b.elem_id: data for b, data in zip(load.outputs, result["data"], strict=True)}
    assert sent["run-pick"]["value"] == ids[0] and _skipped(sent["run-details"])
    assert sent["radar-runs"]["value"] and _skipped(sent["cap-radar"])  # radar_runs' change event draws it
