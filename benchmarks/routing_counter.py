"""Where to count routed experts: in the graph (a counting op per layer), or store the ids per layer and count once
per step. Cost per engine step on this machine's CPU, plain torch, no vLLM, both measured in the same run:

- ``count in op`` (what capbench's recorder first did): L calls of an op that bins and ``index_add_``s each
  layer's ids into a count table (8 small kernels per layer), plus the step-close copy of the table;
- ``store + count``: L calls of ``torch.ops.capbench.store_routed_experts`` (one copy per layer, the recorder's
  op), plus the step-open reset of the rows and the step-close copy of the step's ids; then, on the writer thread,
  :func:`capbench.runners.expert_counts.count_table` (one numpy ``bincount``) and the self-check.

Also the bytes a GPU engine would move to the host per step if it copied the ids instead of counting them on the
device (it counts on the device: the table is ``L × (E + 2)`` int64). Medians of ``--repeats`` steps after
warm-up, in microseconds.

    python benchmarks/routing_counter.py [--repeats 200]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from capbench.runners.expert_counts import check_counts, count_table
from capbench.runners.vllm.routing import store_op

SHAPES: tuple[tuple[int, int, int, int], ...] = (
    (4, 16, 2, 8),  # the tiny test MoE, a decode step at concurrency 16
    (48, 16, 8, 128),  # a 30B-A3B-like model, decode at concurrency 16
    (48, 512, 8, 128),  # the same, a mixed step
    (48, 8192, 8, 128),  # the same, a full prefill chunk
)


def median_us(fn: Callable[[], object], repeats: int) -> float:
    for _ in range(5):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - start)
    return statistics.median(times) / 1e3


def _count_in_op(counts: torch.Tensor, topk_ids: torch.Tensor, valid: torch.Tensor, row: int, experts: int) -> None:
    """The earlier design's op body: bin this layer's valid rows and add them into its row of a count table."""
    ids = topk_ids.reshape(topk_ids.shape[0], -1).to(torch.int64)
    tokens, top_k = ids.shape
    keep = (torch.arange(tokens) < valid).to(counts.dtype)
    bins = torch.where((ids >= 0) & (ids < experts), ids, counts.shape[1] - 1)
    counts[row].index_add_(0, bins.reshape(-1), keep.repeat_interleave(top_k))


def _count_op() -> Any:
    library = torch.library.Library("capbench_bench", "FRAGMENT")
    library.define("count(Tensor(a!) counts, Tensor ids, Tensor valid, int row, int experts) -> ()")
    library.impl("count", _count_in_op, "CompositeExplicitAutograd")
    _LIBRARIES.append(library)
    return torch.ops.capbench_bench.count


_LIBRARIES: list[Any] = []


def measure(layers: int, tokens: int, top_k: int, experts: int, repeats: int, count: Any) -> str:
    """One table row: both designs on one shape (their tables are checked equal first)."""
    store = store_op()
    chosen = [torch.randint(0, experts, (tokens, top_k), dtype=torch.int32) for _ in range(layers)]
    counts = torch.zeros(layers, experts + 1, dtype=torch.int64)
    valid = torch.tensor(tokens)
    ids = torch.full((layers, tokens, top_k), -1, dtype=torch.int32)
    names = [str(i) for i in range(layers)]
    planes = [ids[row] for row in range(layers)]

    def in_op() -> torch.Tensor:
        for row, layer_ids in enumerate(chosen):
            count(counts, layer_ids, valid, row, experts)
        snapshot = counts.clone()
        counts.zero_()
        return snapshot

    def store_loop() -> np.ndarray:
        ids[:, :tokens].fill_(-1)
        for row, layer_ids in enumerate(chosen):
            store(planes[row], layer_ids)
        return ids[:, :tokens].numpy().copy()

    snapshot = store_loop()

    def store_writer() -> object:
        table = count_table(snapshot, [experts] * layers, [top_k] * layers)
        return check_counts(table, tokens, [experts] * layers, [top_k] * layers, names)

    per_expert, reason = store_writer()  # type: ignore[misc]
    assert reason is None and [row[:experts] for row in in_op().tolist()] == per_expert
    return (
        f"{layers:>3} {tokens:>5} {top_k:>2} {experts:>4} | {median_us(in_op, repeats):>11.1f} | "
        f"{median_us(store_loop, repeats):>10.1f} {median_us(store_writer, repeats):>11.1f} | "
        f"{layers * tokens * top_k * 4:>14,} {layers * (experts + 2) * 8:>7,}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    torch.manual_seed(0)
    count = _count_op()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; medians of {args.repeats} steps, µs per step")
    print(
        f"{'L':>3} {'T':>5} {'k':>2} {'E':>4} | {'count in op':>11} | {'store loop':>10} {'writer count':>11} | "
        f"{'GPU ids bytes':>14} {'table':>7}"
    )
    for shape in SHAPES:
        print(measure(*shape, args.repeats, count), flush=True)


if __name__ == "__main__":
    main()
