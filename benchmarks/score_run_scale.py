"""Benchmark: ``capbench score`` of a synthetic run of N requests and N engine steps (issue #18).

Usage::

    .venv/bin/python benchmarks/score_run_scale.py                       # N = 1,000,000
    .venv/bin/python benchmarks/score_run_scale.py --sizes 1000000,4000000  # the flatness check (4M takes a while)
    .venv/bin/python benchmarks/score_run_scale.py --sizes 200000 --dir /tmp/runs --keep

For each N a run directory is generated (in a child process) as the current :class:`~capbench.records.RunWriter`
would write it: ``requests.jsonl`` with N requests (1–32 output tokens, one token time each, 2 % failed, the first
64 warm-up, an SLO on every latency), ``passes.jsonl`` with N steps of Qwen3-30B-A3B (the generator of
``benchmarks/score_throughput.py``: 1–64 requests per step, 48 measured MoE layers) and ``power.jsonl`` at 1 Hz on
one GPU. Then, each in its own fresh child process so each has its own peak memory:

- **parse floor**: read every line of the three files and decode it with ``orjson`` (the JSON library the reader
  uses), keeping nothing: the least any line-by-line JSON scorer must spend;
- **score**: :func:`capbench.summary.score.score_run_dir` (``write=False``): read, check and score everything.

It prints the score's wall time and its ratio to the parse floor (one core decoding every line), the CPU seconds
it used (its own and its pass readers': a ``passes.jsonl`` of 64 MiB or more is read by child processes, one per
segment of the file, while the requests are read, :mod:`capbench.summary.pass_worker`, so wall time can be less
than CPU time on two cores), and the peak resident memory (``ru_maxrss``) of the scoring child and of the largest
pass reader, with the total bound (scorer + readers × the largest), next to the resident memory of a child that
only imported capbench. Targets (issue #18), on the 2-core
development VM: wall ≤ 5 s and ≤ 3× the parse floor at N = 1,000,000; peak RSS ≤ 300 MB and flat from 1M to 4M.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from score_throughput import CONFIG, generate

MS = 1_000_000
WARMUP_REQUESTS = 64


def _request_encoder() -> Callable[[dict[str, Any]], dict[str, Any]]:
    """What the writer does to a request record before writing it (identity for schema version 1)."""
    try:
        from capbench.records.token_times import compact_request  # schema version 2
    except ImportError:
        return lambda record: record
    return compact_request


def generate_requests(path: Path, num_requests: int, seed: int, block: int = 20000) -> int:
    """Write ``num_requests`` request records; returns the last done time (ns)."""
    rng = np.random.default_rng(seed)
    encode = _request_encoder()
    dumps = orjson.dumps
    t_next = 10**12
    last_done = 0
    with path.open("wb") as f:
        for first in range(0, num_requests, block):
            count = min(block, num_requests - first)
            outs = rng.integers(1, 33, size=count)
            spacing = rng.integers(1 * MS, 30 * MS, size=count)
            ttft = rng.integers(20 * MS, 400 * MS, size=count)
            failed = rng.random(count) < 0.02
            lines = []
            for j in range(count):
                i = first + j
                t_submit = t_next
                t_next += int(spacing[j]) // 64
                out = int(outs[j])
                first_t = t_submit + int(ttft[j])
                gaps = rng.integers(5 * MS, 60 * MS, size=out - 1)
                times = [first_t, *(first_t + np.cumsum(gaps)).tolist()]
                done = times[-1] + 100_000
                last_done = max(last_done, done)
                bad = bool(failed[j])
                record = {
                    "id": f"r{i:08d}",
                    "warmup": i < WARMUP_REQUESTS,
                    "prompt_id": f"p{i % 1000}",
                    "prompt_tokens": 128 + (i % 512),
                    "output_tokens": None if bad else out,
                    "t_submit_ns": t_submit,
                    "t_first_token_ns": None if bad else first_t,
                    "t_done_ns": done,
                    "token_times_ns": [] if bad else times,
                    "error": "HTTP 500" if bad else None,
                    "finish_reason": None if bad else "length",
                    "output_text": "" if bad else "tok " * out,
                }
                lines.append(dumps(encode(record)))
            f.write(b"\n".join(lines) + b"\n")
    return last_done


def generate_run(run_dir: Path, n: int, seed: int, pass_form: str = "writer") -> None:
    """A run directory of ``n`` requests, ``n`` passes (in ``pass_form``: ``score_throughput.pass_encoder``) and
    1 Hz power (child process: bounded memory)."""
    from capbench.records.schema import SCHEMA_VERSION

    run_dir.mkdir(parents=True, exist_ok=True)
    last_done = generate_requests(run_dir / "requests.jsonl", n, seed)
    generate(run_dir / "passes.jsonl", n, seed, form=pass_form)
    rng = np.random.default_rng(seed + 1)
    with (run_dir / "power.jsonl").open("wb") as f:
        for k, t_ns in enumerate(range(10**12 - 10**9, last_done + 2 * 10**9, 10**9)):
            f.write(orjson.dumps({"t_ns": t_ns, "gpu": 0, "power_w": 400.0 + 200.0 * rng.random(), "energy_j": None}))
            f.write(b"\n")
            if k % 100000 == 0:
                f.flush()
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "run_id": f"bench-{n}",
        "status": "complete",
        "error": None,
        "capbench_version": "bench",
        "spec": {"slo": {"ttft_s": 0.3, "tpot_s": 0.05, "itl_s": 0.055, "e2e_latency_s": 2.0}, "usd_per_gpu_hour": 2.5},
        "model": {"name": "qwen3-30b-a3b", "config": orjson.loads(CONFIG.read_bytes())},
        "hardware": {"device": "cuda", "num_gpus": 1, "gpu_name": "NVIDIA H100 80GB HBM3", "profile": "h100-sxm"},
        "dtypes": {"weights": "bfloat16", "experts": "bfloat16", "embeddings": "bfloat16", "kv": "bfloat16"}
        | {"compute": "bfloat16"},
        "load": {"pattern": "closed_loop", "concurrency": 64},
    }
    (run_dir / "run.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_s() -> float:
    """User + system CPU seconds of this process and of its children that have ended (the pass reader)."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def _child_parse(run_dir: Path, out: Any) -> None:
    loads = orjson.loads
    t0 = time.perf_counter()
    lines = 0
    for name in ("requests.jsonl", "passes.jsonl", "power.jsonl"):
        with (run_dir / name).open("rb") as f:
            for raw in f:
                loads(raw)
                lines += 1
    out.put({"parse_s": time.perf_counter() - t0, "lines": lines, "peak_mb": _peak_mb()})


def _child_idle(out: Any) -> None:
    import capbench.summary.score  # noqa: F401  (what the scorer imports)

    out.put({"peak_mb": _peak_mb()})


def _child_score(run_dir: Path, out: Any) -> None:
    import warnings

    from capbench.summary.score import score_run_dir

    warnings.simplefilter("ignore")
    t0 = time.perf_counter()
    cpu0 = _cpu_s()
    summary = score_run_dir(run_dir, write=False)
    wall_s = time.perf_counter() - t0
    out.put(
        {
            "score_s": wall_s,
            "cpu_s": _cpu_s() - cpu0,
            "peak_mb": _peak_mb(),
            "reader_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            "readers": _readers(run_dir),
            "requests": summary["requests"]["total"],
            "passes": summary["pass_records"]["total"],
            "ttft_p99_s": summary["latency"]["ttft_s"]["p99"],
            "itl_count": summary["latency"]["itl_s"]["count"],
        }
    )


def _readers(run_dir: Path) -> int:
    """How many pass-reader processes the scorer starts for this run."""
    from capbench.summary import pass_worker

    return pass_worker._segments((run_dir / "passes.jsonl").stat().st_size, (run_dir / "requests.jsonl").stat().st_size)


def _in_child(target: Callable[..., None], *args: Any) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=target, args=(*args, queue))
    child.start()
    result: dict[str, Any] = queue.get()
    child.join()
    if child.exitcode != 0:
        raise SystemExit(f"{target.__name__} failed (exit code {child.exitcode})")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="1000000", help="comma-separated N (requests = passes = N)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dir", type=Path, help="where the run directories go (reused when present)")
    parser.add_argument("--keep", action="store_true", help="keep the generated run directories")
    parser.add_argument(
        "--pass-form", choices=("writer", "lists"), default="writer", help="pass records as this capbench's "
        "writer writes them (schema 3: integer lists as base64 varints) or as JSON lists (schema 1-2: an older run)"
    )  # fmt: skip
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    base = args.dir or Path(tempfile.mkdtemp(prefix="capbench-score-scale-"))
    idle = _in_child(_child_idle)["peak_mb"]
    print(f"child after importing the scorer: peak RSS {idle:.0f} MB")
    rows = []
    for n in sizes:
        run_dir = base / (f"run-{n}" if args.pass_form == "writer" else f"run-{n}-{args.pass_form}")
        if not (run_dir / "run.json").exists():
            t0 = time.perf_counter()
            child = multiprocessing.get_context("spawn").Process(
                target=generate_run, args=(run_dir, n, args.seed, args.pass_form)
            )
            child.start()
            child.join()
            if child.exitcode != 0:
                raise SystemExit(f"generating {run_dir} failed")
            print(f"generated N={n:,} in {time.perf_counter() - t0:.0f} s: {run_dir}")
        sizes_mb = {p.name: p.stat().st_size / 1e6 for p in run_dir.glob("*.jsonl")}
        parse = _in_child(_child_parse, run_dir)
        score = _in_child(_child_score, run_dir)
        ratio = score["score_s"] / parse["parse_s"]
        rows.append((n, score, parse, ratio))
        files = ", ".join(f"{k} {v:.0f} MB" for k, v in sorted(sizes_mb.items()))
        print(f"N={n:,}: {files}")
        print(
            f"  score {score['score_s']:.2f} s, parse floor {parse['parse_s']:.2f} s ({parse['lines']:,} lines): "
            f"{ratio:.2f}x the floor; CPU {score['cpu_s']:.2f} s ({score['cpu_s'] / parse['parse_s']:.2f}x the floor)"
        )
        reader, readers = score["reader_peak_mb"], score["readers"]
        both = score["peak_mb"] + readers * reader
        print(
            f"  peak RSS {score['peak_mb']:.0f} MB"
            + (
                f" + {readers} pass reader process(es), the largest {reader:.0f} MB = at most {both:.0f} MB together"
                if readers
                else ""
            )
            + f" (parse-only child {parse['peak_mb']:.0f} MB)"
        )
        print(
            f"  checked: {score['requests']:,} requests, {score['passes']:,} passes, TTFT p99 {score['ttft_p99_s']}, "
            f"{score['itl_count']:,} inter-token gaps"
        )
    if len(rows) > 1:
        (n0, s0, _, _), (n1, s1, _, _) = rows[0], rows[-1]
        m0 = s0["peak_mb"] + s0["readers"] * s0["reader_peak_mb"]
        m1 = s1["peak_mb"] + s1["readers"] * s1["reader_peak_mb"]
        print(
            f"peak RSS (all processes, bound) N={n0:,} -> N={n1:,}: {m0:.0f} -> {m1:.0f} MB "
            f"(+{m1 - m0:.0f} MB for {n1 / n0:.0f}x the records)"
        )
    if args.dir is None and not args.keep:
        shutil.rmtree(base)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
