"""Benchmark: how exactly capbench replays a request trace at its recorded times.

Usage::

    .venv/bin/python benchmarks/trace_replay.py                       # 10,000 requests at 100x speed
    .venv/bin/python benchmarks/trace_replay.py --requests 2000 --speed 20

A Mooncake-format trace is written to a temp directory (seeded): Poisson arrivals at ``--rate`` requests per
second as recorded (default 6.5/s, about the published Mooncake conversation trace's rate), prompts of 1 to 4
blocks of 512 tokens whose first block is one of 20 shared "system prompt" blocks 60 % of the time, outputs of
1 to 32 tokens. The mock server (:mod:`capbench.testing.mock_server`, zero delays) runs pinned to one core and
``capbench run --runner openai --trace ... --replay-speed X`` to the other, with the embedded demo model's
tokenizer for the token ids (``--model-path``). Printed from the run's records: requests, the replayed span,
the client's schedule lag (timer to submission: ``schedule_lag_*`` of the load report) and how late each
request was sent (``t_sent_ns - t_scheduled_ns``), p50 / p99 / max in ms, and the client's CPU use.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def write_trace(path: Path, requests: int, rate_per_s: float, seed: int) -> None:
    rng, t_ms = random.Random(seed), 0.0
    with path.open("w") as out:
        for i in range(requests):
            t_ms += rng.expovariate(rate_per_s) * 1e3
            blocks = [rng.randrange(20)] if rng.random() < 0.6 else []
            blocks += [100 + 4 * i + k for k in range(rng.randint(1, 4 - len(blocks)))]
            length = 512 * (len(blocks) - 1) + rng.randint(16, 512)
            entry = {"timestamp": round(t_ms, 3), "input_length": length, "output_length": rng.randint(1, 32)}
            out.write(json.dumps({**entry, "hash_ids": blocks}) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10_000, help="trace length (default 10000)")
    parser.add_argument("--rate", type=float, default=6.5, help="recorded arrivals per second (default 6.5)")
    parser.add_argument("--speed", type=float, default=100.0, help="replay speed (default 100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    args = parser.parse_args(argv)

    from capbench.testing.mock_server import MockServerProcess, MockSettings

    with tempfile.TemporaryDirectory() as tmp:
        trace, out = Path(tmp) / "trace.jsonl", Path(tmp) / "run"
        write_trace(trace, args.requests, args.rate, args.seed)
        with MockServerProcess(MockSettings(), cpus=[args.server_cpu]) as server:
            command = [
                "taskset", "-c", str(args.client_cpu), sys.executable, "-m", "capbench", "run", "--runner", "openai",
                "--base-url", server.url, "--model-path", str(REPO / "capbench" / "models" / "demo_moe"),
                "--trace", str(trace), "--trace-format", "mooncake", "--replay-speed", str(args.speed),
                "--power", "none", "--warmup", "4", "--out", str(out), "--quiet",
            ]  # fmt: skip
            env = {**os.environ, "PYTHONPATH": str(REPO)}
            subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
        records = [json.loads(line) for line in (out / "requests.jsonl").read_text().splitlines() if line.strip()]
        client = json.loads((out / "summary.json").read_text())["client"]
        dataset = json.loads((out / "run.json").read_text())["load"]["dataset"]
    measured = [r for r in records if not r["warmup"]]
    late_ms = np.array([(r["t_sent_ns"] - r["t_scheduled_ns"]) / 1e6 for r in measured])
    errors = sum(1 for r in measured if r["error"] is not None)
    print(f"trace: {len(measured)} requests, {dataset['duration_s']:.1f} s replayed at {args.speed:g}x "
          f"(mean {len(measured) / dataset['duration_s']:.0f} requests/s), {errors} errors")  # fmt: skip
    lag = [client[f"schedule_lag_{k}_s"] * 1e3 for k in ("p50", "p99", "max")]
    print(f"schedule lag (timer to submission) ms: p50 {lag[0]:.3f}  p99 {lag[1]:.3f}  max {lag[2]:.3f}")
    p50, p99 = np.percentile(late_ms, [50, 99])
    print(f"sent late (t_sent - t_scheduled) ms:   p50 {p50:.3f}  p99 {p99:.3f}  max {late_ms.max():.3f}")
    print(f"client CPU: {client['cpu_util']:.0%} of one core; client_bound: {client['client_bound']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
