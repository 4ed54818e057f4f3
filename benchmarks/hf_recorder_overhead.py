"""Overhead of measuring expert activation in the hf runner: the same load with router hooks on and off.

Serves the embedded tiny MoE in-process (records kept in memory, not written) at several batch sizes,
alternating recorder on / off over several rounds so drift on the machine hits both alike, and prints the
median output tokens/s of each and their ratio (docs/pitfalls.md #13: measure the recorder, report it).

    python benchmarks/hf_recorder_overhead.py [--rounds 5] [--requests 32] [--max-tokens 32]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any


class _NullSink:
    def __init__(self) -> None:
        self.output_tokens = 0

    def on_pass(self, record: dict[str, Any]) -> None:
        pass

    def on_request(self, record: dict[str, Any]) -> None:
        self.output_tokens += record["output_tokens"]


def _tokens_per_s(runner: Any, requests: list[Any], batch_size: int) -> float:
    sink = _NullSink()
    start = time.perf_counter()
    for i in range(0, len(requests), batch_size):
        runner.serve(requests[i : i + batch_size], sink)
    return sink.output_tokens / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--batch-sizes", default="1,4,16")
    args = parser.parse_args()

    import torch

    from capbench.config import RunSpec
    from capbench.models.tiny import build_tiny_moe
    from capbench.runners.hf.runner import HFRunner
    from capbench.workload import build_requests, load_prompts

    model_dir = build_tiny_moe()
    requests = build_requests(load_prompts(), args.requests, 0, seed=0)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.requests} requests x "
        f"{args.max_tokens} tokens (ignore_eos), {args.rounds} alternating rounds"
    )
    print(f"{'batch':>5} {'on tok/s':>10} {'off tok/s':>10} {'on/off':>8}")
    for batch_size in (int(b) for b in args.batch_sizes.split(",")):
        runners = {
            flag: HFRunner(
                RunSpec(
                    concurrency=batch_size,
                    max_tokens=args.max_tokens,
                    ignore_eos=True,
                    record_experts=flag,
                    device="cpu",
                ),
                model_dir,
            )
            for flag in (True, False)
        }
        for runner in runners.values():  # warm-up
            _tokens_per_s(runner, requests[:batch_size], batch_size)
        rates: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(args.rounds):
            for flag in (True, False):
                rates[flag].append(_tokens_per_s(runners[flag], requests, batch_size))
        on, off = statistics.median(rates[True]), statistics.median(rates[False])
        print(f"{batch_size:>5} {on:>10,.0f} {off:>10,.0f} {on / off:>8.3f}")
        for runner in runners.values():
            runner.close()


if __name__ == "__main__":
    main()
