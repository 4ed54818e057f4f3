"""Build the golden scoring fixtures: deterministic run directories and the summaries the scorer gave for them.

Usage (from the repository root)::

    .venv/bin/python tests/data/golden/build_golden.py     # (re)write the synthetic runs and every summary

The summaries under ``tests/data/golden/summaries/`` were written by the scorer *before* the columnar rewrite
(issue #18) and are the reference :mod:`tests.integration.summary.test_golden_scores` compares against, as JSON
text (floats bit for bit). Re-running this script overwrites them with whatever the current scorer says, so do
that only for a deliberate change of a figure, and say so in the commit.

Runs covered: every shipped run of ``results/demo-moe-cpu/points`` and the synthetic runs written here (schema
version 1 records: ``token_times_ns`` lists), which exercise what the shipped runs do not: errors, warm-up,
a missing first token, SLOs, sessions, accuracy records, fixed lengths, power on two GPUs (a counter and sampled
power), a duplicate line and a partial run without passes or power.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from capbench.summary.score import score_run_dir

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = Path(__file__).resolve().parent
RUNS = GOLDEN / "runs"
SUMMARIES = GOLDEN / "summaries"
SHIPPED = ROOT / "results" / "demo-moe-cpu" / "points"
BASE_RUN = SHIPPED / "96ccb12d2e96" / "attempt-1"
VARYING = ("capbench_version",)
"""Summary fields that legitimately differ between scorer builds (stripped before comparing)."""
MS = 1_000_000


def golden_runs() -> dict[str, Path]:
    """Name → run directory of every golden run (shipped runs by point id, synthetic ones by name)."""
    runs = {f"shipped-{p.name}": p / "attempt-1" for p in sorted(SHIPPED.iterdir()) if (p / "attempt-1").is_dir()}
    runs.update({f"synthetic-{p.name}": p for p in sorted(RUNS.iterdir()) if p.is_dir()})
    return runs


def comparable(summary: dict[str, Any]) -> bytes:
    """The summary as canonical JSON text without the fields in :data:`VARYING`."""
    kept = {k: v for k, v in summary.items() if k not in VARYING}
    return orjson.dumps(kept, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)


def _lines(records: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in records)


def _manifest(run_id: str, status: str) -> dict[str, Any]:
    base = orjson.loads((BASE_RUN / "run.json").read_bytes())
    manifest = copy.deepcopy(base)
    manifest.update(run_id=run_id, status=status, schema_version=1)
    manifest["error"] = None if status == "complete" else "KeyboardInterrupt: interrupted by the user"
    manifest["hardware"] = {"device": "cuda", "num_gpus": 2, "gpu_name": "NVIDIA H100 80GB HBM3", "profile": "h100-sxm"}
    slo = {"ttft_s": 0.05, "tpot_s": 0.012, "itl_s": 0.03, "e2e_latency_s": 1.0}
    manifest["spec"] = dict(manifest["spec"], slo=slo)
    manifest["spec"]["usd_per_gpu_hour"] = 2.5
    manifest["load"] = dict(manifest["load"], fixed_length={"prompt_tokens": 24, "output_tokens": 8})
    manifest["client"] = {"follow_ups_dropped": 3, "warnings": ["client CPU was busy 91% of the run"]}
    return manifest


def _requests(rng: np.random.Generator, n: int, *, sessions: bool) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    t = 10**12
    for i in range(n):
        warm = i < 3
        t_submit = t + int(rng.integers(0, 20 * MS))
        t += int(rng.integers(1 * MS, 8 * MS))
        out = int(rng.integers(0, 12))
        failed = rng.random() < 0.05
        gaps = rng.integers(2 * MS, 40 * MS, size=max(out - 1, 0))
        first = t_submit + int(rng.integers(5 * MS, 80 * MS))
        times = [first, *(first + np.cumsum(gaps)).tolist()] if out else []
        if out and rng.random() < 0.1:  # a server that streams several tokens per chunk: fewer times than tokens
            times = times[::2]
        done = (times[-1] if times else first) + int(rng.integers(0, 3 * MS))
        record: dict[str, Any] = {
            "id": f"{'w' if warm else 'r'}{i:05d}",
            "warmup": warm,
            "prompt_id": f"p{i % 17}",
            "prompt_tokens": None if rng.random() < 0.02 else 24 + int(rng.integers(0, 3)),
            "output_tokens": None if failed else out,
            "t_submit_ns": t_submit,
            "t_first_token_ns": None if failed or not out else first,
            "t_done_ns": done,
            "token_times_ns": [] if failed else times,
            "error": "HTTP 500: server error" if failed else None,
            "finish_reason": None if failed else "length",
            "output_text": "x" * out,
            "sample_id": f"s{i % 50}",
            "score": None if failed else float(rng.integers(0, 2)),
            "answer": None if failed or rng.random() < 0.2 else str(int(rng.integers(0, 100))),
        }
        if sessions:
            record["session_id"] = f"c{i % 20}"
            record["turn"] = (i // 20) % 4
        records.append(record)
    records.append(dict(records[10]))  # an identical duplicate line: dropped with a warning
    return records


def _passes(rng: np.random.Generator, n: int, t0: int) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    t = t0
    for i in range(n):
        batch = int(rng.integers(1, 6))
        prefill = rng.random() < 0.2
        reqs = [
            [int(rng.integers(8, 40)), 0] if prefill and j == 0 else [1, int(rng.integers(8, 60))] for j in range(batch)
        ]
        tokens = sum(r[0] for r in reqs)
        measured = rng.random() > 0.1
        expert_tokens = None
        active = None
        if measured:
            expert_tokens = [rng.multinomial(tokens, [1 / 8] * 8).tolist() for _ in range(4)]
            active = [sum(1 for c in layer if c) for layer in expert_tokens]
        span = int(rng.integers(2 * MS, 9 * MS))
        records.append(
            {
                "t_start_ns": t,
                "t_end_ns": t + span,
                "reqs": reqs,
                "req_ids": [f"r{i}-{j}" for j in range(batch)],
                "sampled": batch,
                "experts_active": active,
                "expert_tokens": expert_tokens,
                "warmup": i < 4,
            }
        )
        t += span + int(rng.integers(0, 2 * MS))
    return records


def _power(rng: np.random.Generator, t0: int, t1: int) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    energy = 1000.0
    for t_ns in range(t0 - 50 * MS, t1 + 50 * MS, 100 * MS):
        watts = float(300 + 200 * rng.random())
        energy += watts * 0.1
        records.append({"t_ns": t_ns, "gpu": 0, "power_w": watts, "energy_j": energy})
        records.append({"t_ns": t_ns + 7 * MS, "gpu": 1, "power_w": float(250 + 150 * rng.random()), "energy_j": None})
    return records


def write_synthetic_runs() -> None:
    """Write the synthetic golden runs (deterministic: fixed seeds, fixed timestamps)."""
    rng = np.random.default_rng(18)
    full = RUNS / "full-v1"
    full.mkdir(parents=True, exist_ok=True)
    requests = _requests(rng, 400, sessions=True)
    t0 = min(r["t_submit_ns"] for r in requests)
    t1 = max(r["t_done_ns"] for r in requests)
    (full / "run.json").write_bytes(orjson.dumps(_manifest("golden-full-v1", "complete"), option=orjson.OPT_INDENT_2))
    (full / "requests.jsonl").write_bytes(_lines(requests))
    (full / "passes.jsonl").write_bytes(_lines(_passes(rng, 600, t0)))
    (full / "power.jsonl").write_bytes(_lines(_power(rng, t0, t1)))
    sparse = RUNS / "partial-v1"
    sparse.mkdir(parents=True, exist_ok=True)
    manifest = _manifest("golden-partial-v1", "partial")
    manifest["spec"]["slo"] = {"ttft_s": 0.04, "e2e_latency_s": 0.5}
    manifest["load"]["fixed_length"] = None
    manifest["accuracy"] = None
    manifest["load"]["dataset"] = {"name": "random"}
    (sparse / "run.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    (sparse / "requests.jsonl").write_bytes(_lines(_requests(rng, 120, sessions=False)))


def write_summaries() -> None:
    """Score every golden run with the current scorer (without writing into the run) and store the summary."""
    SUMMARIES.mkdir(parents=True, exist_ok=True)
    for name, run_dir in golden_runs().items():
        summary = score_run_dir(run_dir, write=False)
        (SUMMARIES / f"{name}.json").write_bytes(comparable(summary))


if __name__ == "__main__":
    write_synthetic_runs()
    write_summaries()
