"""Benchmark: score a synthetic passes.jsonl of 1,000,000 engine steps of Qwen3-30B-A3B.

Usage::

    .venv/bin/python benchmarks/score_throughput.py                 # generate into a temp dir, score, report
    .venv/bin/python benchmarks/score_throughput.py --passes 200000 --path /tmp/passes.jsonl --keep

The synthetic run mimics a continuously batching server: 1–64 requests per step (a bounded random walk),
mostly decode steps (n = 1 on contexts of 64–8192 tokens), with a 512-token prefill chunk joining about one
step in 30 and a pure prefill step about one in 200; ``experts_active`` is measured for all 48 MoE layers
(the uniform expectation for the step's T plus noise); the first 100 steps are warm-up. The seed fixes it.

It reports passes/s, wall seconds split into parse (reading and ``orjson``-decoding every line, timed alone
over the same file) and compute (the rest of :func:`capbench.metrics.score.score_run`), and peak resident
memory (``ru_maxrss``), next to the resident memory before scoring (the file is generated in a child process,
so neither figure includes the generator).
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from capbench.arch.dtypes import ByteWidths
from capbench.arch.families import model_structure
from capbench.metrics.score import score_run
from capbench.metrics.utilization import Ceilings
from capbench.records.reader import iter_jsonl

CONFIG = Path(__file__).resolve().parents[1] / "tests" / "data" / "models" / "qwen3-30b-a3b.json"
STRUCTURE = model_structure(orjson.loads(CONFIG.read_bytes()))  # 48 MoE layers, GQA 32/4 heads of 128, no shared
NUM_LAYERS, NUM_EXPERTS, TOP_K = STRUCTURE.num_layers, STRUCTURE.num_experts, STRUCTURE.top_k
KV_ELEMS = STRUCTURE.layers[0].kv_elems_per_token
EXPERT_PARAMS, DENSE_PARAMS = STRUCTURE.expert_params, STRUCTURE.dense_params
ACTIVE_LINEAR_PARAMS = STRUCTURE.linear_params_per_token
WARMUP_PASSES = 100


def pass_encoder(form: str = "writer") -> Callable[[dict[str, Any]], dict[str, Any]]:
    """What the writer does to a pass record before writing it: ``writer`` = this capbench's writer (schema 3:
    :func:`capbench.records.pass_codec.compact_pass`; identity before it), ``lists`` = the JSON lists of schema
    versions 1 and 2 (what an older run holds)."""
    if form == "lists":
        return lambda record: record
    try:
        from capbench.records.pass_codec import compact_pass
    except ImportError:  # an older capbench: schema 2 wrote the lists
        return lambda record: record
    return compact_pass


def generate(path: Path, num_passes: int, seed: int, block: int = 20000, form: str = "writer") -> None:
    """Write ``num_passes`` synthetic pass records to ``path`` (bounded memory: ``block`` passes at a time), in
    ``form`` (:func:`pass_encoder`)."""
    encode = pass_encoder(form)
    rng = np.random.default_rng(seed)
    batch = 32
    t_ns = 10**12
    dumps = orjson.dumps
    with path.open("wb") as f:
        for first in range(0, num_passes, block):
            count = min(block, num_passes - first)
            steps = rng.integers(-2, 3, size=count)
            prefill_chunk = rng.random(count) < 1 / 30
            prefill_only = rng.random(count) < 1 / 200
            lines = []
            for j in range(count):
                batch = min(64, max(1, batch + int(steps[j])))
                if prefill_only[j]:
                    chunks = int(rng.integers(1, 5))
                    reqs = [[512, 512 * int(rng.integers(0, 8))] for _ in range(chunks)]
                    sampled = int(rng.integers(0, chunks + 1))
                else:
                    contexts = rng.integers(64, 8192, size=batch).tolist()
                    reqs = [[1, c] for c in contexts]
                    sampled = batch
                    if prefill_chunk[j]:
                        reqs.append([512, 512 * int(rng.integers(0, 4))])
                tokens = sum(n for n, _ in reqs)
                expected = NUM_EXPERTS * (1.0 - (1.0 - TOP_K / NUM_EXPERTS) ** tokens)
                noise = rng.normal(0.0, 2.0, size=NUM_LAYERS)
                active = np.clip(np.rint(expected + noise), TOP_K, NUM_EXPERTS).astype(int).tolist()
                # Roughly memory-bound: bytes at ~2.2 TB/s plus linear FLOPs at ~500 TFLOP/s, plus 1 ms.
                weight_bytes = 2 * (DENSE_PARAMS + EXPERT_PARAMS * sum(active))
                kv_bytes = 2 * NUM_LAYERS * KV_ELEMS * sum(n + c for n, c in reqs)
                flops = 2 * ACTIVE_LINEAR_PARAMS * tokens
                latency_ns = int(1e6 + (weight_bytes + kv_bytes) / 2.2e12 * 1e9 + flops / 5e14 * 1e9)
                record = {
                    "t_start_ns": t_ns,
                    "t_end_ns": t_ns + latency_ns,
                    "reqs": reqs,
                    "sampled": sampled,
                    "experts_active": active,
                }
                if first + j < WARMUP_PASSES:
                    record["warmup"] = True
                lines.append(dumps(encode(record)))
                t_ns += latency_ns + 50_000
            f.write(b"\n".join(lines) + b"\n")


def rss_mib() -> float:
    """Current resident set size, MiB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=1_000_000, help="passes to generate (default 1,000,000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--path", type=Path, help="passes.jsonl to score (generated there when absent)")
    parser.add_argument("--keep", action="store_true", help="keep the generated file")
    parser.add_argument(
        "--form", choices=("writer", "lists"), default="writer", help="pass records as the writer writes them "
        "(schema 3: integer lists as base64 varints) or as JSON lists (schema 1-2)"
    )  # fmt: skip
    args = parser.parse_args(argv)
    tmp = None
    path = args.path
    if path is None:
        tmp = Path(tempfile.mkdtemp(prefix="capbench-bench-"))
        path = tmp / "passes.jsonl"
    if not path.exists():
        t0 = time.perf_counter()
        # Generate in a child process so this process's peak memory is the scorer's alone.
        child = multiprocessing.get_context("spawn").Process(
            target=generate, args=(path, args.passes, args.seed), kwargs={"form": args.form}
        )
        child.start()
        child.join()
        if child.exitcode != 0:
            raise SystemExit(f"generating {path} failed (exit code {child.exitcode})")
        print(
            f"generated {args.passes:,} passes ({path.stat().st_size / 2**20:.0f} MiB) "
            f"in {time.perf_counter() - t0:.1f} s: {path}"
        )
    structure = STRUCTURE
    widths = ByteWidths(weights=2, experts=2, embeddings=2, kv=2)
    ceilings = Ceilings(1, 3.35e12, 989.4e12, "bfloat16", "H100 SXM5 datasheet (dense bf16)")
    manifest = {"run_id": "bench", "status": "complete"}
    rss_before = rss_mib()

    t0 = time.perf_counter()
    lines = sum(1 for _ in iter_jsonl(path))
    parse_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    summary = score_run(
        manifest, [], iter_jsonl(path), [], structure=structure, widths=widths, ceilings=ceilings, cost=None
    )
    score_s = time.perf_counter() - t0
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    scored = summary["pass_records"]["scored"]
    decode = summary["phases"].get("decode", {})
    print(f"records: {lines:,} lines, {scored:,} scored passes ({summary['pass_records']['warmup']} warm-up)")
    print(f"score_run wall: {score_s:.2f} s -> {lines / score_s:,.0f} passes/s")
    print(f"  parse (iter_jsonl + orjson, timed alone): {parse_s:.2f} s")
    print(f"  compute (scan loop + numpy, = score - parse): {score_s - parse_s:.2f} s")
    print(f"memory: RSS before scoring {rss_before:.0f} MiB, peak RSS {peak_mib:.0f} MiB")
    print(
        f"decode: {decode.get('passes')} passes, S-MBU {decode.get('s_mbu')}, S-MFU {decode.get('s_mfu')}, "
        f"tokens/s {decode.get('tokens_per_s')}"
    )
    for name, phase in summary["phases"].items():
        print(f"  {name:8s} passes {phase['passes']:>9,}  s_mbu {phase['s_mbu']}  s_mfu {phase['s_mfu']}")
    if tmp is not None and not args.keep:
        shutil.rmtree(tmp)
    elif tmp is not None:
        print(f"kept {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
