"""Expert activation: uniform expectation, per-phase means, load balance, estimate policy labels."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from capbench.arch.dtypes import ByteWidths
from capbench.metrics.experts import (
    SOURCE_ESTIMATED,
    SOURCE_MEASURED,
    SOURCE_NONE,
    activation_source,
    load_balance,
    uniform_expected_active,
)
from capbench.metrics.score import score_run
from capbench.metrics.utilization import Ceilings
from tests.support.toys import dense_plus_moe


def test_uniform_expectation_edge_cases() -> None:
    assert uniform_expected_active(128, 8, 0).item() == 0.0  # no token, no expert
    assert uniform_expected_active(8, 8, [1, 5]).tolist() == [8.0, 8.0]  # k = E: all experts
    assert uniform_expected_active(8, 8, 0).item() == 0.0
    # One token hits exactly k experts.
    assert uniform_expected_active(128, 8, 1).item() == pytest.approx(8.0)
    # Two tokens, E = 4, k = 2: 4·(1 − (1/2)²) = 3.
    assert uniform_expected_active(4, 2, 2).item() == pytest.approx(3.0)
    # Saturates at E for large T.
    assert uniform_expected_active(128, 8, 10_000).item() == pytest.approx(128.0)


def test_activation_source_labels() -> None:
    m, e, n = SOURCE_MEASURED, SOURCE_ESTIMATED, SOURCE_NONE
    assert activation_source(np.array([m, m], dtype=np.int8), True) == "measured"
    assert activation_source(np.array([e], dtype=np.int8), True) == "uniform_estimate"
    assert activation_source(np.array([m, e], dtype=np.int8), True) == "mixed"
    assert activation_source(np.array([m, n], dtype=np.int8), True) == "none"
    assert activation_source(np.array([m], dtype=np.int8), False) == "not_applicable"


def test_load_balance_hand_computed() -> None:
    # Layer 0 counts [2, 2, 2, 2]: perfectly balanced, max/mean 1, CV 0.
    # Layer 1 counts [6, 2, 0, 0]: mean 2, max/mean 3, std = sqrt((16 + 0 + 4 + 4)/4) = sqrt(6), CV sqrt(6)/2.
    out = load_balance(np.array([[2, 2, 2, 2], [6, 2, 0, 0]]), passes_counted=3)
    assert out is not None
    assert out["max_over_mean_per_layer"] == [1.0, 3.0]
    assert out["cv_per_layer"] == pytest.approx([0.0, np.sqrt(6) / 2])
    # Pooled over 8 counts: mean 2, max 6 → 3; std = sqrt((4·0 + 16 + 0 + 4 + 4)/8) = sqrt(3), CV sqrt(3)/2.
    assert out["max_over_mean"] == 3.0
    assert out["cv"] == pytest.approx(np.sqrt(3) / 2)
    assert out["tokens_routed"] == 16 and out["passes_counted"] == 3
    assert load_balance(None, 0) is None


def _score(passes: list[dict[str, Any]], expert_estimate: bool = False) -> dict[str, Any]:
    return score_run(
        {},
        [],
        passes,
        [],
        structure=dense_plus_moe(),
        widths=ByteWidths(2, 2, 2, 2),
        ceilings=Ceilings(1, 1e12, 1e15, "bf16", "t"),
        cost=None,
        expert_estimate=expert_estimate,
    )


def test_phase_means_and_uniform_expectation() -> None:
    # Two decode passes (T = 2 and 1) measured 3 and 2 experts; E = 4, k = 2.
    passes = [
        {
            "reqs": [[1, 5], [1, 3]],
            "sampled": 2,
            "experts_active": [3],
            "latency_s": 0.01,
            "expert_tokens": [[2, 1, 1, 0]],
        },
        {"reqs": [[1, 6]], "sampled": 1, "experts_active": [2], "latency_s": 0.01, "expert_tokens": [[1, 1, 0, 0]]},
        {"reqs": [[4, 0]], "sampled": 1, "experts_active": [4], "latency_s": 0.02},
    ]
    experts = _score(passes)["experts"]
    decode = experts["decode"]
    assert decode["mean_active_per_layer"] == [2.5]  # (3 + 2) / 2
    assert decode["mean_active"] == 2.5
    # Uniform: T = 2 → 4·(1 − 0.5²) = 3; T = 1 → 2; mean 2.5.
    assert decode["uniform_expectation"] == pytest.approx(2.5)
    # Load balance from the decode passes' summed counts [3, 2, 1, 0]: mean 1.5, max/mean 2.
    assert decode["load_balance"]["max_over_mean"] == 2.0
    assert experts["prefill"]["load_balance"] is None  # the prefill pass gave no counts
    assert experts["prefill"]["mean_active"] == 4.0
    assert experts["activation_source"] == "measured"
    assert experts["load_balance"]["passes_counted"] == 2


def test_unmeasured_passes_null_or_labeled_estimate() -> None:
    passes = [
        {"reqs": [[1, 5], [1, 3]], "sampled": 2, "experts_active": None, "latency_s": 0.01},
        {"reqs": [[1, 6]], "sampled": 1, "experts_active": [2], "latency_s": 0.01},
    ]
    strict = _score([dict(p) for p in passes])
    assert strict["phases"]["decode"]["s_mbu"] is None
    assert strict["phases"]["decode"]["bytes"] is None
    assert strict["phases"]["decode"]["s_mfu"] is not None  # FLOPs do not depend on routing
    assert strict["phases"]["decode"]["expert_activation_source"] == "none"
    assert any("did not measure experts_active" in note for note in strict["notes"])
    estimated = _score([dict(p) for p in passes], expert_estimate=True)
    decode = estimated["phases"]["decode"]
    assert decode["expert_activation_source"] == "mixed"
    assert decode["s_mbu"] is not None
    # The estimate for T = 2: 1 MoE layer · 4·(1 − 0.5²) = 3 experts → routed bytes 2·72·3 + measured 2·72·2.
    assert decode["bytes_by_part"]["routed_experts"] == pytest.approx(2 * 72 * 3 + 2 * 72 * 2)
    assert estimated["experts"]["decode"]["estimated_active"] == pytest.approx(3.0)
    assert estimated["experts"]["decode"]["mean_active"] == 2.0  # only the measured pass
    assert estimated["experts"]["estimate_policy"] == "uniform_estimate_when_unmeasured"


def test_merged_tallies_equal_one_tally_of_all_the_passes() -> None:
    """Tallies of two stretches of a run (two processes' segments), merged, are the tally of the whole run."""
    from capbench.metrics.experts import ExpertTally

    rng = np.random.default_rng(3)
    phase = rng.integers(0, 3, 40).astype(np.int8)
    active = rng.integers(0, 9, (40, 4))
    counts = rng.integers(0, 50, (40, 4, 8))
    whole, first, second = ExpertTally(), ExpertTally(), ExpertTally()
    whole.add_active(phase, active)
    whole.add_tokens(phase[:25], counts[:25])
    first.add_active(phase[:9], active[:9])
    second.add_active(phase[9:], active[9:])
    second.add_tokens(phase[:25], counts[:25])  # only the second stretch had per-expert counts
    first.merge(second)
    for code in range(3):
        assert np.array_equal(first.active_sum_per_layer[code], whole.active_sum_per_layer[code])
        assert np.array_equal(first.token_counts[code], whole.token_counts[code])
    assert np.array_equal(first.active_passes, whole.active_passes)
    assert np.array_equal(first.token_passes, whole.token_passes)
    for code in range(3):  # copies: merging never aliases the other tally's arrays
        if second.token_counts[code] is not None:
            assert first.token_counts[code] is not second.token_counts[code]
