"""Overhead of capbench's vLLM step recorder, and eager vs compiled: paired ratios measured in one run.

The tiny MoE runs in the vLLM CPU build in alternating rounds (a fresh engine each time, so drift on the
machine hits every configuration alike). Each round runs, in order:

- compiled (vLLM's default), recorder on (every step + its expert routing, counted by the graph-safe op);
- compiled, recorder off;
- compiled, steps recorded without their routing (what the routing counter adds is the difference);
- with ``--compare-modes``: eager (``enforce_eager``), recorder off; and eager, recorder on.

It prints output tokens/s per configuration and round, each engine's start-up time (the first recorded
compiled round includes the cold compile into capbench's own compile cache; later rounds load it warm), and
the per-round paired ratios with their medians, the figures to quote: recorder on/off in compiled mode (as
step-time overhead, = tok/s off / tok/s on − 1, since every step carries ``concurrency`` sequences), and
eager/compiled step time.

Two ways to apply the load (``--mode``):

- ``engine`` (default): vLLM's offline engine (``LLM.generate``, the same engine-core and worker processes as
  the server) with every request submitted at once and ``max_num_seqs`` = the concurrency, so the engine
  always runs that many sequences: concurrency 16 at the engine, and nothing else competing for the CPU.
  This isolates what the recorder costs the engine.
- ``http``: capbench's own vllm runner: a launched OpenAI server driven by the load generator at a closed-
  loop concurrency. On a 2-core machine this is bistable: vLLM's engine-core process polls its worker on
  one core while the worker computes on the other, so the API server and the client share what is left;
  use it on a machine with spare cores.

    CAPBENCH_VLLM_PYTHON=/path/to/vllm-env/bin/python VLLM_CPU_KVCACHE_SPACE=1 \\
        python benchmarks/vllm_recorder_overhead.py [--mode engine|http] [--rounds 5] [--concurrency 16] \\
        [--compare-modes]
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

from capbench.records.schema import PassRecord, RequestRecord

# Runs in vLLM's interpreter: one engine, a warm-up, then the timed load; prints a JSON line.
OFFLINE_LOAD = textwrap.dedent(
    """
    import json, sys, time
    from vllm import LLM, SamplingParams

    def main():
        model, concurrency, requests, max_tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
        prompts = [line for line in open(sys.argv[5]).read().splitlines() if line]
        prompts = [prompts[i % len(prompts)] for i in range(requests)]
        eager = sys.argv[6] == "eager"
        started = time.perf_counter()
        llm = LLM(model=model, dtype="float32", enforce_eager=eager, max_num_seqs=concurrency, max_model_len=1024,
                  enable_prefix_caching=False, seed=0)
        start_s = time.perf_counter() - started
        params = SamplingParams(max_tokens=max_tokens, ignore_eos=True, temperature=0.0)
        llm.generate(prompts[:concurrency], params, use_tqdm=False)  # warm-up
        start = time.perf_counter()
        outputs = llm.generate(prompts, params, use_tqdm=False)
        seconds = time.perf_counter() - start
        tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
        result = {"tokens": tokens, "seconds": seconds, "start_s": start_s}
        print("CAPBENCH_RESULT " + json.dumps(result), flush=True)

    if __name__ == "__main__":
        main()
    """
)


Round = tuple[float, int, float | None, int]
"""Output tokens/s, step records written, engine start-up seconds (None when not timed), steps with routing."""


def engine_round(
    model: Path, recorder: bool, eager: bool, args: argparse.Namespace, work: Path, experts: bool = True
) -> Round:
    """Offline engine: output tokens/s of the timed load, the step records, the engine's start-up time."""
    from capbench.runners.vllm.runner import vllm_env, vllm_python
    from capbench.workload import load_prompts

    run_dir = Path(tempfile.mkdtemp(prefix="on-" if recorder else "off-", dir=work))
    script = work / "offline_load.py"
    script.write_text(OFFLINE_LOAD)
    prompts = work / "prompts.txt"
    prompts.write_text("\n".join(p.text.replace("\n", " ") for p in load_prompts(None).prompts) + "\n")
    # exactly what the runner launches with
    env, plugin_dir = vllm_env(record_dir=run_dir if recorder else None, record_experts=experts)
    env["HF_HUB_OFFLINE"] = "1"
    python = vllm_python()
    cmd = [python, str(script), str(model), str(args.concurrency), str(args.requests), str(args.max_tokens)]
    cmd += [str(prompts), "eager" if eager else "compiled"]
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    finally:
        if plugin_dir is not None:
            shutil.rmtree(plugin_dir, ignore_errors=True)
    if done.returncode != 0:
        raise SystemExit(f"the offline load failed:\n{done.stderr[-3000:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("CAPBENCH_RESULT ")]
    if not lines:
        raise SystemExit(f"the offline load printed no result:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    result = json.loads(lines[-1].removeprefix("CAPBENCH_RESULT "))
    steps, routed = count_steps(run_dir / "passes.jsonl")
    if recorder and steps == 0:
        raise SystemExit("the recorder wrote no steps: the plugin did not load")
    if recorder and experts and routed != steps:
        raise SystemExit(f"only {routed} of {steps} steps have routing: the routing counter failed")
    return result["tokens"] / result["seconds"], steps, result["start_s"], routed


def count_steps(passes: Path) -> tuple[int, int]:
    """Step records in ``passes``, and how many of them have measured routing."""
    if not passes.exists():
        return 0, 0
    records = [json.loads(line) for line in passes.read_text().splitlines() if line.strip()]
    return len(records), sum(1 for r in records if r.get("experts_active") is not None)


class _CountingSink:
    def __init__(self) -> None:
        self.output_tokens = 0
        self.errors = 0

    def on_pass(self, record: PassRecord) -> None:
        pass

    def on_request(self, record: RequestRecord) -> None:
        if record["warmup"]:
            return
        if record["error"] is not None:
            self.errors += 1
        self.output_tokens += record["output_tokens"] or 0


def http_round(
    model: Path, recorder: bool, eager: bool, args: argparse.Namespace, work: Path, experts: bool = True
) -> Round:
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
            "enforce_eager": eager,
            "record_steps": recorder,
            "record_experts": experts,
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
    steps, routed = count_steps(run_dir / "passes.jsonl")
    return sink.output_tokens / seconds, steps, None, routed


CONFIGS: tuple[tuple[str, bool, bool, bool], ...] = (
    ("compiled+rec", False, True, True),
    ("compiled", False, False, False),
    ("compiled+steps", False, True, False),
    ("eager", True, False, False),
    ("eager+rec", True, True, True),
)
"""(label, eager, recorder, experts) in the order each round runs them: ``+rec`` records every step and its expert
routing, ``+steps`` every step without routing (separates the step records' cost from the routing counter's)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("engine", "http"), default="engine")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--requests", type=int, default=256)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--compare-modes", action="store_true", help="also run eager rounds (eager vs compiled)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from capbench.models.tiny import build_tiny_moe

    model = build_tiny_moe()
    one_round = engine_round if args.mode == "engine" else http_round
    configs = CONFIGS if args.compare_modes else CONFIGS[:3]
    results: dict[str, list[float]] = {label: [] for label, _, _, _ in configs}
    with tempfile.TemporaryDirectory(prefix="capbench-vllm-overhead-") as tmp:
        print(
            f"mode {args.mode}: tiny MoE, concurrency {args.concurrency}, {args.requests} requests x "
            f"{args.max_tokens} tokens (ignore_eos), {args.rounds} alternating rounds, a fresh engine each"
        )
        print(f"{'round':>5} {'config':>13} {'tok/s':>9} {'steps':>7} {'routed':>7} {'start s':>8}")
        for round_ in range(args.rounds):
            for label, eager, recorder, experts in configs:
                tps, steps, start_s, routed = one_round(model, recorder, eager, args, Path(tmp), experts)
                results[label].append(tps)
                started = "-" if start_s is None else f"{start_s:.1f}"
                print(f"{round_:>5} {label:>13} {tps:>9.1f} {steps:>7} {routed:>7} {started:>8}", flush=True)
    for label, values in results.items():
        print(f"median {label}: {statistics.median(values):.1f} tok/s")
    report("compiled step time, recorder on/off", results["compiled"], results["compiled+rec"])
    report("compiled step time, steps only (no routing)/off", results["compiled"], results["compiled+steps"])
    report(
        "compiled step time, recorder on/steps only (the routing counter)",
        results["compiled+steps"],
        results["compiled+rec"],
    )
    if args.compare_modes:
        report("eager/compiled step time (recorder off)", results["compiled"], results["eager"])
        report("eager step time, recorder on/off", results["eager"], results["eager+rec"])


def report(what: str, baseline: list[float], other: list[float]) -> None:
    """Per-round step-time ratios other/baseline (= tok/s baseline / tok/s other: every step runs the same
    sequences) and their median, the paired figure robust to drift between rounds."""
    ratios = [b / o for b, o in zip(baseline, other, strict=True)]
    paired = statistics.median(ratios)
    print(f"{what}: per round {', '.join(f'{r:.3f}' for r in ratios)}; median {paired:.3f} ({paired - 1:+.1%})")


if __name__ == "__main__":
    main()
