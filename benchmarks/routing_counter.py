"""Count routed experts on the device (capbench's op) or copy the ids and count them on the host: cost per step.

For each shape (MoE layers L, tokens per step T, top-k, experts E) it times, per engine step, on this machine's
CPU with plain torch (no vLLM):

- ``device``: the step loop's share = L calls of ``torch.ops.capbench.count_routed_experts`` (in the forward)
  + the step-close snapshot (copy and zero of the ``[L, E + 1]`` table); the writer's share = reading the
  snapshot and the self-check (:func:`capbench.runners.vllm.routing.check_counts`).
- ``host``: the step loop's share = keeping a view of each layer's ids (the old callback) + the step-close
  concatenation; the writer's share = one numpy ``bincount`` over all layers' ids (offset by layer).

It also prints the bytes each approach moves off the device per step on a GPU (ids vs counts). Medians of
``--repeats`` timed steps after warm-up, in microseconds; both approaches measured in the same run.

    python benchmarks/routing_counter.py [--repeats 200]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from capbench.runners.vllm.routing import check_counts, count_op

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


def measure(layers: int, tokens: int, top_k: int, experts: int, repeats: int) -> str:
    """One table row: both approaches on one shape (the results are checked equal first)."""
    op = count_op()
    ids = [torch.randint(0, experts, (tokens, top_k), dtype=torch.int32) for _ in range(layers)]
    counts = torch.zeros(layers, experts + 1, dtype=torch.int64)
    valid = torch.tensor(tokens)
    names = [str(i) for i in range(layers)]

    def device_loop() -> torch.Tensor:
        for row, layer_ids in enumerate(ids):
            op(counts, layer_ids, valid, row, experts)
        snapshot = counts.clone()
        counts.zero_()
        return snapshot

    snapshot = device_loop()

    def device_writer() -> object:
        return check_counts(snapshot.tolist(), tokens, [experts] * layers, [top_k] * layers, names)

    def host_loop() -> list[np.ndarray]:
        kept = [layer_ids[:tokens] for layer_ids in ids]  # the old callback kept a view per layer
        return [k.numpy().reshape(-1) for k in kept]

    arrays = host_loop()

    def host_writer() -> list[list[int]]:
        flat = np.concatenate([a.astype(np.int64) + layer * experts for layer, a in enumerate(arrays)])
        counted: list[list[int]] = np.bincount(flat, minlength=layers * experts).reshape(layers, experts).tolist()
        return counted

    assert [row[:experts] for row in snapshot.tolist()] == host_writer()
    return (
        f"{layers:>3} {tokens:>5} {top_k:>2} {experts:>4} | {median_us(device_loop, repeats):>11.1f} "
        f"{median_us(device_writer, repeats):>13.1f} | {median_us(host_loop, repeats):>9.1f} "
        f"{median_us(host_writer, repeats):>11.1f} | {layers * tokens * top_k * 4:>14,} "
        f"{layers * (experts + 1) * 8:>7,}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; medians of {args.repeats} steps, µs per step")
    print(
        f"{'L':>3} {'T':>5} {'k':>2} {'E':>4} | {'device loop':>11} {'device writer':>13} | "
        f"{'host loop':>9} {'host writer':>11} | {'GPU bytes: ids':>14} {'counts':>7}"
    )
    for shape in SHAPES:
        print(measure(*shape, args.repeats), flush=True)


if __name__ == "__main__":
    main()
