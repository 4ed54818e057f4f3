"""Benchmark: the leaderboard's data path on a large results CSV (what one filter change costs the server).

Usage::

    .venv/bin/python benchmarks/leaderboard_scale.py               # 10,000 runs
    .venv/bin/python benchmarks/leaderboard_scale.py --runs 50000

The CSV repeats the rows of ``results/results.csv`` with new run ids and its cost, accuracy and throughput
scaled by seeded random factors (so the Pareto front is not trivial), written to a temp file. It reports
wall seconds (median of 3) for: ``load_results`` (parse and validate every row), ``filter_options``,
``apply_filters`` on one engine, ``sort_runs`` by cost, building the app's ``RunIndex`` (once per load) and the
same filter and sort through it (what a filter change runs), ``cost_accuracy_front``, ``normalize`` (radar) on the
first 10 runs, ``styled_table`` + Gradio's ``Dataframe.postprocess`` of one page of the table (what one table
update sends; ``paging.PAGE_ROWS`` runs), the
filtered-rows CSV of the download button (``csv_bytes``), the cost-accuracy scatter (``cap_scatter``), and peak
resident memory (``ru_maxrss``). One filter change runs the ``RunIndex`` filter and sort, the front, the table
page and the scatter; ``apply_filters`` and ``sort_runs`` are the plain pandas path it replaces.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

REPO = Path(__file__).resolve().parents[1]


def make_csv(path: Path, runs: int, seed: int = 0) -> None:
    base = pd.read_csv(REPO / "results" / "results.csv")
    rng = np.random.default_rng(seed)
    frame = base.sample(n=runs, replace=True, random_state=seed).reset_index(drop=True)
    frame["run_id"] = [f"bench-{i:07d}" for i in range(runs)]
    for column in ("usd_per_1m_output_tokens", "output_tokens_per_s"):
        frame[column] = frame[column] * rng.uniform(0.5, 2.0, runs)
    frame["accuracy"] = (frame["accuracy"] * rng.uniform(0.9, 1.1, runs)).clip(0, 1)
    frame.to_csv(path, index=False)


def timed(fn: Callable[[], Any], repeats: int = 3) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    args = parser.parse_args()

    import gradio as gr

    from capbench.leaderboard import plots
    from capbench.leaderboard.app import styled_table
    from capbench.leaderboard.data import load_results
    from capbench.leaderboard.paging import page_of
    from capbench.leaderboard.pareto import cost_accuracy_front
    from capbench.leaderboard.radar import normalize
    from capbench.leaderboard.selection import RunIndex
    from capbench.leaderboard.table import apply_filters, csv_bytes, filter_options, sort_runs

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.csv"
        make_csv(path, args.runs)
        size_mib = path.stat().st_size / 2**20
        t_load, results = timed(lambda: load_results([path]))
    frame = results.frame
    assert len(frame) == args.runs and not results.warnings, results.warnings[:3]
    table = gr.Dataframe(interactive=False)
    t_index, index = timed(lambda: RunIndex(frame))
    cost = "usd_per_1m_output_tokens"
    index.order(cost, descending=False)  # as the app does at load
    rows = [
        ("load_results", t_load),
        ("filter_options", timed(lambda: filter_options(frame))[0]),
        ("apply_filters (engine=hf)", timed(lambda: apply_filters(frame, {"engine": ["hf"]}))[0]),
        ("sort_runs (cost)", timed(lambda: sort_runs(frame, "usd_per_1m_output_tokens", ascending=True))[0]),
        ("RunIndex (at load)", t_index),
        (
            "RunIndex filter + sort (engine=hf)",
            timed(lambda: index.sorted_positions(index.mask({"engine": ["hf"]}), cost, descending=False))[0],
        ),
        ("cost_accuracy_front", timed(lambda: cost_accuracy_front(frame))[0]),
        ("normalize (10 runs)", timed(lambda: normalize(frame.head(10)))[0]),
        ("table page (style + postprocess)", timed(lambda: table.postprocess(styled_table(page_of(frame, 1))))[0]),
        ("download CSV (csv_bytes)", timed(lambda: csv_bytes(frame))[0]),
        ("cost-accuracy scatter (cap_scatter)", timed(lambda: plots.cap_scatter(frame))[0]),
    ]
    front = len(cost_accuracy_front(frame))
    print(f"{args.runs} runs, CSV {size_mib:.1f} MiB, Pareto front {front} runs")
    for name, seconds in rows:
        print(f"  {name:<36} {seconds:8.3f} s")
    print(f"  peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
