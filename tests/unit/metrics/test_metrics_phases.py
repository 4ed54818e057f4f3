"""Phase classification and the per-phase aggregate: ratio of sums, percentiles, step latency."""

from __future__ import annotations

import numpy as np
import pytest

from capbench.metrics.passes import scan_passes
from capbench.metrics.phases import DECODE, MIXED, PREFILL, classify, phase_summary
from capbench.metrics.utilization import Ceilings

CEILINGS = Ceilings(
    num_gpus=1, memory_bandwidth_bytes_per_s=1e12, peak_flops_per_s=1e15, compute_dtype="bf16", source="test"
)


@pytest.mark.parametrize(
    ("reqs", "phase"),
    [
        ([[1, 5], [1, 3]], DECODE),  # every request: n = 1 on a non-empty cache
        ([[4, 0]], PREFILL),  # a prompt
        ([[1, 0]], PREFILL),  # a 1-token prompt is not decode (c = 0)
        ([[3, 2]], PREFILL),  # a later chunk of a prompt
        ([[1, 5], [4, 0]], MIXED),  # decode plus a prefill chunk
        ([[1, 5], [1, 0]], MIXED),
    ],
)
def test_classification(reqs: list[list[int]], phase: int) -> None:
    scan = scan_passes([{"reqs": reqs, "sampled": 0, "latency_s": 0.1}])
    assert scan.features.phase.tolist() == [phase]


def test_classify_vectorised() -> None:
    assert classify(np.array([0, 2, 1]), np.array([3, 2, 2])).tolist() == [PREFILL, DECODE, MIXED]


def test_ratio_of_sums_not_mean_of_ratios() -> None:
    # A long pass: 5e11 bytes in 1 s (S-MBU 0.5); a tiny warm-up-like pass: 9e8 bytes in 1 ms (0.9).
    # Time-weighted: (5e11 + 9e8) / (1.001 s · 1e12 B/s) = 0.5004; the mean of ratios would be 0.7.
    out = phase_summary(
        latency_s=np.array([1.0, 1e-3]),
        tokens=np.array([64, 1]),
        pass_bytes=np.array([5e11, 9e8]),
        pass_flops=np.array([1e14, 1e9]),
        ceilings=CEILINGS,
        expert_activation_source="measured",
    )
    assert out["s_mbu"] == pytest.approx((5e11 + 9e8) / (1.001 * 1e12), rel=1e-15)
    assert out["s_mbu"] != pytest.approx(0.7)
    # S-MFU: (1e14 + 1e9) / (1.001 · 1e15).
    assert out["s_mfu"] == pytest.approx((1e14 + 1e9) / 1.001e15, rel=1e-15)
    # Per-pass distribution: p50 of [0.5, 0.9] = 0.7 (linear interpolation), p90 = 0.5 + 0.9·0.4 = 0.86.
    assert out["s_mbu_p50"] == pytest.approx(0.7)
    assert out["s_mbu_p90"] == pytest.approx(0.86)
    assert out["tokens"] == 65 and out["time_s"] == pytest.approx(1.001)
    assert out["tokens_per_s"] == pytest.approx(65 / 1.001)
    assert out["step_latency_s"]["count"] == 2 and out["step_latency_s"]["max"] == 1.0
    # The roofline's point: intensity (1e14 + 1e9) / (5e11 + 9e8) FLOP/byte, achieved (1e14 + 1e9) / 1.001 FLOP/s.
    assert out["arithmetic_intensity_flop_per_byte"] == pytest.approx((1e14 + 1e9) / (5e11 + 9e8), rel=1e-15)
    assert out["achieved_flops_per_s"] == pytest.approx((1e14 + 1e9) / 1.001, rel=1e-15)
    assert out["achieved_bytes_per_s"] == pytest.approx((5e11 + 9e8) / 1.001, rel=1e-15)


def test_unknown_bytes_or_ceilings_give_none_not_zero() -> None:
    out = phase_summary(
        latency_s=np.array([1.0, 2.0]),
        tokens=np.array([1, 1]),
        pass_bytes=np.array([1.0, np.nan]),
        pass_flops=np.array([1.0, 1.0]),
        ceilings=None,
        expert_activation_source="none",
    )
    assert out["bytes"] is None and out["s_mbu"] is None and out["s_mbu_p50"] is None
    assert out["flops"] == 2.0 and out["s_mfu"] is None and out["s_mfu_p90"] is None
    assert out["arithmetic_intensity_flop_per_byte"] is None and out["achieved_bytes_per_s"] is None
    assert out["achieved_flops_per_s"] == pytest.approx(2.0 / 3.0)
