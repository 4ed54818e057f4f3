"""The whole summary.json: shape, nulls with notes, JSON-serializable at full precision."""

from __future__ import annotations

import orjson
import pytest

from capbench.metrics.score import SPEC_VERSION, score_run
from tests.support.summaries import MANIFEST, PASSES, REQUESTS, full_summary


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
    orjson.dumps(s)  # serializable as is


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
