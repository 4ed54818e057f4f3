"""A full summary.json from a small hand-made run (two-layer toy model, H100 ceilings, rental cost): shared by
the summary and export tests, and the example in docs/summary.md."""

from __future__ import annotations

from typing import Any

from capbench.metrics.cost import CostInputs
from capbench.metrics.score import score_run
from capbench.metrics.utilization import Ceilings
from tests.support.toys import DISTINCT_WIDTHS, dense_plus_moe

S = 1_000_000_000
MS = 1_000_000

MANIFEST: dict[str, Any] = {
    "schema_version": 1,
    "run_id": "toy-run",
    "status": "complete",
    "capbench_version": "0.1.0",
    "model": {"name": "toy-moe", "config": {"model_type": "toy"}},
    "engine": {"name": "hf", "version": "5.0"},
    "hardware": {"profile": "h100-sxm", "num_gpus": 1, "gpu_name": "NVIDIA H100 80GB HBM3"},
    "dtypes": {"weights": "bfloat16", "experts": "int4", "embeddings": "float32", "kv": "fp8", "compute": "bfloat16"},
    "load": {"pattern": "static_batches", "concurrency": 2, "num_requests": 2, "warmup_requests": 1, "seed": 0},
}

REQUESTS = [
    {
        "id": "w0",
        "warmup": True,
        "prompt_tokens": 4,
        "output_tokens": 1,
        "t_submit_ns": 0,
        "t_first_token_ns": 5 * MS,
        "t_done_ns": 5 * MS,
        "error": None,
    },
    {
        "id": "r0",
        "warmup": False,
        "prompt_tokens": 4,
        "output_tokens": 3,
        "t_submit_ns": 10 * MS,
        "t_first_token_ns": 20 * MS,
        "t_done_ns": 40 * MS,
        "token_times_ns": [20 * MS, 30 * MS, 40 * MS],
        "error": None,
    },
    {
        "id": "r1",
        "warmup": False,
        "prompt_tokens": 3,
        "output_tokens": 2,
        "t_submit_ns": 10 * MS,
        "t_first_token_ns": 20 * MS,
        "t_done_ns": 30 * MS,
        "token_times_ns": [20 * MS, 30 * MS],
        "error": None,
    },
]

PASSES = [
    {"warmup": True, "t_start_ns": 0, "t_end_ns": 5 * MS, "reqs": [[4, 0]], "sampled": 1, "experts_active": [4]},
    {
        "t_start_ns": 10 * MS,
        "t_end_ns": 20 * MS,
        "reqs": [[4, 0], [3, 0]],
        "sampled": 2,
        "experts_active": [4],
        "expert_tokens": [[4, 3, 4, 3]],
    },
    {
        "t_start_ns": 20 * MS,
        "t_end_ns": 30 * MS,
        "reqs": [[1, 5], [1, 4]],
        "sampled": 2,
        "experts_active": [3],
        "expert_tokens": [[2, 1, 1, 0]],
    },
    {
        "t_start_ns": 30 * MS,
        "t_end_ns": 40 * MS,
        "reqs": [[1, 6]],
        "sampled": 1,
        "experts_active": [2],
        "expert_tokens": [[1, 1, 0, 0]],
    },
]

POWER = [{"t_ns": t * MS, "gpu": 0, "power_w": 300.0, "energy_j": 0.3 * t} for t in range(0, 50, 5)]

CEILINGS = Ceilings(1, 3.35e12, 989.4e12, "bfloat16", "H100 SXM5 datasheet")
COST = CostInputs(
    num_gpus=1,
    pricing="rental",
    usd_per_gpu_hour=3.0,
    usd_per_kwh=0.12,
    gpu_purchase_usd=25_000,
    host_purchase_usd=10_000,
    price_source="test",
)


def full_summary() -> dict[str, Any]:
    return score_run(
        MANIFEST,
        REQUESTS,
        PASSES,
        POWER,
        structure=dense_plus_moe(),
        widths=DISTINCT_WIDTHS,
        ceilings=CEILINGS,
        cost=COST,
    )
