"""Overhead of capbench's vLLM step recorder: the same load with the plugin on and off.

The tiny MoE runs in the vLLM CPU build, eager in both modes (expert routing is measured only eagerly), once
with the step recorder (every step + its expert routing written to passes.jsonl) and once without, in
alternating rounds (on, off, on, off, ...; a fresh engine each time, so drift on the machine hits both
alike). It prints output tokens/s per round, the medians, and the per-round on/off ratios with their median,
the overhead figure to quote (docs/pitfalls.md #13).

Two ways to apply the load (``--mode``):

- ``engine`` (default): vLLM's offline engine (``LLM.generate``, the same engine-core and worker processes as
  the server) with every request submitted at once and ``max_num_seqs`` = the concurrency, so the engine
  always runs that many sequences: concurrency 16 at the engine, and nothing else competing for the CPU.
  This isolates what the recorder costs the engine.
- ``http``: capbench's own vllm runner: a launched OpenAI server driven by the load generator at a closed-
  loop concurrency. On a 2-core machine this is bistable: vLLM's engine-core process polls its worker on
  one core while the worker computes on the other, so the API server and the client share what is left;
  whether a round settles at ~6,000 or ~1,500 tok/s depends on how that contention falls, with or without
  the recorder. Use it on a machine with spare cores.

    CAPBENCH_VLLM_PYTHON=/path/to/vllm-env/bin/python VLLM_CPU_KVCACHE_SPACE=1 \\
        python benchmarks/vllm_recorder_overhead.py [--mode engine|http] [--rounds 5] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import textwrap
from pathlib import Path
from typing import Any

# Runs in vLLM's interpreter: one engine, a warm-up, then the timed load; prints a JSON line.
OFFLINE_LOAD = textwrap.dedent(
    """
    import json, sys, time
    from vllm import LLM, SamplingParams

    def main():
        model, concurrency, requests, max_tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
        prompts = [line for line in open(sys.argv[5]).read().splitlines() if line]
        prompts = [prompts[i % len(prompts)] for i in range(requests)]
        llm = LLM(model=model, dtype="float32", enforce_eager=True, max_num_seqs=concurrency, max_model_len=1024,
                  enable_prefix_caching=False, seed=0)
        params = SamplingParams(max_tokens=max_tokens, ignore_eos=True, temperature=0.0)
        llm.generate(prompts[:concurrency], params, use_tqdm=False)  # warm-up
        start = time.perf_counter()
        outputs = llm.generate(prompts, params, use_tqdm=False)
        seconds = time.perf_counter() - start
        tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
        print("CAPBENCH_RESULT " + json.dumps({"tokens": tokens, "seconds": seconds}), flush=True)

    if __name__ == "__main__":
        main()
    """
)


def engine_round(model: Path, recorder: bool, args: argparse.Namespace, work: Path) -> tuple[float, int]:
    """Offline engine: output tokens/s of the timed load, and the step records written."""
    from capbench.runners.vllm.runner import vllm_env, vllm_python
    from capbench.workload import load_prompts

    run_dir = Path(tempfile.mkdtemp(prefix="on-" if recorder else "off-", dir=work))
    script = work / "offline_load.py"
    script.write_text(OFFLINE_LOAD)
    prompts = work / "prompts.txt"
    prompts.write_text("\n".join(p.text.replace("\n", " ") for p in load_prompts(None).prompts) + "\n")
    env, plugin_dir = vllm_env(record_dir=run_dir if recorder else None)  # exactly what the runner launches with
    env["HF_HUB_OFFLINE"] = "1"
    python = vllm_python()
    cmd = [python, str(script), str(model), str(args.concurrency), str(args.requests), str(args.max_tokens)]
    try:
        done = subprocess.run([*cmd, str(prompts)], env=env, capture_output=True, text=True, timeout=600)
    finally:
        if plugin_dir is not None:
            shutil.rmtree(plugin_dir, ignore_errors=True)
    if done.returncode != 0:
        raise SystemExit(f"the offline load failed:\n{done.stderr[-3000:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("CAPBENCH_RESULT ")]
    if not lines:
        raise SystemExit(f"the offline load printed no result:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    result = json.loads(lines[-1].removeprefix("CAPBENCH_RESULT "))
    passes = run_dir / "passes.jsonl"
    steps = len(passes.read_text().splitlines()) if passes.exists() else 0
    if recorder and steps == 0:
        raise SystemExit("the recorder wrote no steps: the plugin did not load")
    return result["tokens"] / result["seconds"], steps


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


def http_round(model: Path, recorder: bool, args: argparse.Namespace, work: Path) -> tuple[float, int]:
    """capbench's vllm runner against a launched server: measured-phase output tokens/s, and step records."""
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
    parser.add_argument("--mode", choices=("engine", "http"), default="engine")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--requests", type=int, default=256)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from capbench.models.tiny import build_tiny_moe

    model = build_tiny_moe()
    one_round = engine_round if args.mode == "engine" else http_round
    results: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="capbench-vllm-overhead-") as tmp:
        print(
            f"mode {args.mode}: tiny MoE, eager, concurrency {args.concurrency}, {args.requests} requests x "
            f"{args.max_tokens} tokens (ignore_eos), {args.rounds} alternating rounds, a fresh engine each"
        )
        print(f"{'round':>5} {'recorder':>9} {'tok/s':>9} {'steps':>7}")
        for round_ in range(args.rounds):
            for recorder in (True, False):
                tps, steps = one_round(model, recorder, args, Path(tmp))
                results[recorder].append(tps)
                print(f"{round_:>5} {'on' if recorder else 'off':>9} {tps:>9.1f} {steps:>7}", flush=True)
    on, off = statistics.median(results[True]), statistics.median(results[False])
    ratios = [a / b for a, b in zip(results[True], results[False], strict=True)]
    paired = statistics.median(ratios)
    print(f"median on {on:.1f} tok/s, off {off:.1f} tok/s, ratio of medians {on / off:.3f}")
    print(
        f"per-round on/off: {', '.join(f'{r:.3f}' for r in ratios)}; median {paired:.3f} "
        f"(overhead {1 - paired:+.1%}; the paired figure, robust to drift between rounds)"
    )


if __name__ == "__main__":
    main()
