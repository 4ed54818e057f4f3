"""The whole summary.json: shape, nulls with notes, JSON-serialisable at full precision."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from capbench.metrics.cost import CostInputs
from capbench.metrics.score import SPEC_VERSION, score_run
from capbench.metrics.utilization import Ceilings
from tests.unit.test_metrics_toys import DISTINCT_WIDTHS, dense_plus_moe

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


def test_shape_and_values() -> None:
    s = full_summary()
    assert list(s)[:7] == [
        "schema_version",
        "spec_version",
        "capbench_version",
        "recorded_with_capbench_version",
        "run_id",
        "status",
        "flops_convention",
    ]
    assert s["spec_version"] == SPEC_VERSION and s["flops_convention"] == "model"
    assert s["requests"] == {"total": 3, "measured": 2, "warmup": 1, "completed": 2, "errors": 0, "error_rate": 0.0}
    assert s["throughput"]["wall_s"] == pytest.approx(0.03)
    assert s["throughput"]["output_tokens"] == 5
    assert set(s["phases"]) == {"prefill", "decode", "all"}
    assert s["pass_records"] == {"total": 4, "warmup": 1, "scored": 3}
    decode = s["phases"]["decode"]
    assert decode["passes"] == 2 and decode["tokens"] == 3 and decode["time_s"] == pytest.approx(0.02)
    # Decode bytes, per test_metrics_bytes_flops' formulas: pass 1 T = 2, a = 3, Σ(c+n) = 11;
    # pass 2 T = 1, a = 2, Σ(c+n) = 7. dense 1360 each; lm_head 320 each; embedding 32·T; KV 16·Σ(c+n).
    expected = (1360 + 36 * 3 + 320 + 32 * 2 + 16 * 11) + (1360 + 36 * 2 + 320 + 32 * 1 + 16 * 7)
    assert decode["bytes"] == expected
    assert decode["s_mbu"] == pytest.approx(expected / (0.02 * 3.35e12), rel=1e-15)
    assert decode["expert_activation_source"] == "measured"
    assert s["experts"]["decode"]["mean_active"] == 2.5
    assert s["experts"]["load_balance"]["tokens_routed"] == 14 + 4 + 2
    assert s["energy"]["energy_source"] == "counter"
    assert s["energy"]["energy_j"] == pytest.approx(0.3 * 30)  # 300 W over the 30 ms wall window
    assert s["energy"]["phase_energy_j"] == pytest.approx({"prefill": 3.0, "decode": 6.0})
    assert s["cost"]["usd_per_gpu_hour"] == 3.0
    assert s["cost"]["total_usd"] == pytest.approx(3.0 * 0.03 / 3600 + 9.0 / 3.6e6 * 0.12)
    assert s["hardware"]["ceilings"]["memory_bandwidth_bytes_per_s"] == 3.35e12
    orjson.dumps(s)  # serialisable as is


def test_no_passes() -> None:
    s = score_run(MANIFEST, REQUESTS, None, [], structure=None, widths=None, ceilings=None, cost=None)
    assert s["phases"] == {}
    assert any("phases are empty" in n for n in s["notes"])
    assert s["experts"]["activation_source"] is None
    assert s["energy"]["energy_j"] is None and s["cost"]["total_usd"] is None
    assert s["latency"]["ttft_s"]["count"] == 2


def test_every_missing_input_is_noted() -> None:
    s = score_run(MANIFEST, [], PASSES, [], structure=None, widths=None, ceilings=None, cost=None)
    notes = " | ".join(s["notes"])
    assert "model structure unknown" in notes
    assert "no hardware ceilings" in notes
    assert "no measured (non-warm-up) request" in notes
    assert "energy: no usable power samples" in notes
    assert "cost (all)" in notes
    decode = s["phases"]["decode"]
    assert decode["bytes"] is None and decode["flops"] is None and decode["s_mbu"] is None
    assert decode["tokens_per_s"] == pytest.approx(3 / 0.02)
    assert s["hardware"]["ceilings"] is None and s["hardware"]["null_reason"]
    # Expert activity is still reported from the measurement, without the model structure.
    assert decode["expert_activation_source"] == "measured"
    assert s["experts"]["decode"]["mean_active"] == 2.5 and s["experts"]["decode"]["uniform_expectation"] is None
