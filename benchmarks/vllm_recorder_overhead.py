"""Overhead of capbench's vLLM step recorder: the same load against a server with the plugin on and off.

Launches the tiny MoE in the vLLM CPU build, eager in both modes (expert routing is measured only eagerly),
once with the step recorder (steps + expert routing written to passes.jsonl) and once without it, in
alternating rounds (on, off, on, off, ...; a fresh server each time, so drift on the machine hits both alike),
drives each with capbench's load generator at a fixed concurrency, and prints output tokens/s over the
measured phase, the medians, and their ratio (docs/pitfalls.md #13: measure the recorder, report it).

    CAPBENCH_VLLM_PYTHON=/path/to/vllm-env/bin/python \\
        python benchmarks/vllm_recorder_overhead.py [--rounds 3] [--concurrency 16] [--requests 96]

Needs VLLM_CPU_KVCACHE_SPACE (GiB) on CPU; HF_HUB_OFFLINE=1 is set here (the model is local).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any


class _CountingSink:
    def __init__(self) -> None:
        self.output_tokens = 0
        self.errors = 0

    def on_pass(self, record: dict[str, Any]) -> None:
        pass

    def on_request(self, record: dict[str, Any]) -> None:
        if record["warmup"]:
            return
        if record["error"] is not None:
            self.errors += 1
        self.output_tokens += record["output_tokens"] or 0


def one_round(model: Path, recorder: bool, args: argparse.Namespace, work: Path) -> tuple[float, int]:
    """Output tokens/s of the measured phase, and the number of step records written."""
    from capbench.config import build_run_spec
    from capbench.runners.vllm.runner import VLLMRunner
    from capbench.workload import build_workload, load_prompts

    run_dir = Path(tempfile.mkdtemp(prefix="on-" if recorder else "off-", dir=work))
    spec = build_run_spec(
        None,
        {
            "runner": "vllm",
            "model": str(model),
            "dtype": "float32",
            "enforce_eager": True,
            "record_steps": recorder,
            "num_requests": args.requests,
            "concurrency": args.concurrency,
            "max_tokens": args.max_tokens,
            "ignore_eos": True,
            "warmup": args.concurrency,
            "metrics_interval_s": 0,
            "engine_args": {"max_model_len": 1024},
        },
    )
    workload = build_workload(
        load_prompts(None), num_requests=args.requests, duration_s=None, warmup=spec.warmup, seed=0
    )
    runner = VLLMRunner(spec, model, run_dir=run_dir)
    try:
        sink = _CountingSink()
        runner.execute(workload, sink)
    finally:
        runner.close()
    client = runner.facts["client"]
    if sink.errors:
        raise SystemExit(f"{sink.errors} requests failed; see {run_dir}")
    seconds = (client["t_end_ns"] - client["t_start_ns"]) / 1e9
    passes = run_dir / "passes.jsonl"
    steps = len(passes.read_text().splitlines()) if passes.exists() else 0
    return sink.output_tokens / seconds, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--requests", type=int, default=96)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from capbench.models.tiny import build_tiny_moe

    model = build_tiny_moe()
    results: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="capbench-vllm-overhead-") as tmp:
        print(
            f"tiny MoE, eager, concurrency {args.concurrency}, {args.requests} requests x {args.max_tokens} tokens "
            f"(ignore_eos), {args.rounds} alternating rounds, a fresh server each"
        )
        print(f"{'round':>5} {'recorder':>9} {'tok/s':>9} {'steps':>7}")
        for round_ in range(args.rounds):
            for recorder in (True, False):
                tps, steps = one_round(model, recorder, args, Path(tmp))
                results[recorder].append(tps)
                print(f"{round_:>5} {'on' if recorder else 'off':>9} {tps:>9.1f} {steps:>7}", flush=True)
    on, off = statistics.median(results[True]), statistics.median(results[False])
    print(f"median on {on:.1f} tok/s, off {off:.1f} tok/s, on/off {on / off:.3f} (overhead {1 - on / off:+.1%})")


if __name__ == "__main__":
    main()
