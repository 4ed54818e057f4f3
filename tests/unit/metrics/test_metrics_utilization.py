"""S-MBU/S-MFU: ceilings validation and properties (throughput scaling, top_k = E, monotone bytes)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capbench.arch.dtypes import ByteWidths
from capbench.errors import CapbenchError
from capbench.metrics.bytes import pass_bytes
from capbench.metrics.experts import uniform_expected_active
from capbench.metrics.flops import pass_flops
from capbench.metrics.passes import scan_passes
from capbench.metrics.score import score_run
from capbench.metrics.utilization import Ceilings, s_mbu, s_mfu
from tests.support.toys import dense_plus_moe

CEILINGS = Ceilings(2, 1e12, 1e15, "bfloat16", "test")
WIDTHS = ByteWidths(2, 2, 2, 2)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"memory_bandwidth_bytes_per_s": 0.0},
        {"peak_flops_per_s": -1.0},
        {"peak_flops_per_s": float("nan")},
        {"num_gpus": 0},
    ],
)
def test_bad_ceilings_are_errors(kwargs: dict[str, Any]) -> None:
    base = {
        "num_gpus": 1,
        "memory_bandwidth_bytes_per_s": 1e12,
        "peak_flops_per_s": 1e15,
        "compute_dtype": "bf16",
        "source": "t",
    }
    with pytest.raises(CapbenchError, match="must be a positive"):
        Ceilings(**{**base, **kwargs})


def test_formulas() -> None:
    # 6e11 bytes over 0.5 s on 2 GPUs of 1e12 B/s: 6e11 / (0.5 · 2 · 1e12) = 0.6.
    assert s_mbu(6e11, 0.5, CEILINGS) == pytest.approx(0.6)
    assert s_mfu(3e14, 0.5, CEILINGS) == pytest.approx(0.3)
    assert s_mbu(6e11, 0.5, None) is None and s_mbu(None, 0.5, CEILINGS) is None


pass_strategy = st.fixed_dictionaries(
    {
        "reqs": st.lists(st.tuples(st.integers(1, 64), st.integers(0, 4096)).map(list), min_size=1, max_size=8),
        "latency_s": st.floats(1e-4, 1.0),
        "experts_active": st.lists(st.integers(2, 4), min_size=1, max_size=1),
    }
)


def _score(passes: list[dict[str, Any]]) -> dict[str, Any]:
    for rec in passes:
        rec.setdefault("sampled", len(rec["reqs"]))
    return score_run({}, [], passes, [], structure=dense_plus_moe(), widths=WIDTHS, ceilings=CEILINGS, cost=None)


@settings(max_examples=50, deadline=None)
@given(st.lists(pass_strategy, min_size=1, max_size=12))
def test_halving_latency_doubles_utilization(passes: list[dict[str, Any]]) -> None:
    slow = _score([dict(p) for p in passes])["phases"]["all"]
    fast = _score([{**p, "latency_s": p["latency_s"] / 2} for p in passes])["phases"]["all"]
    assert fast["s_mfu"] == pytest.approx(2 * slow["s_mfu"], rel=1e-12)
    assert fast["s_mbu"] == pytest.approx(2 * slow["s_mbu"], rel=1e-12)
    assert fast["tokens_per_s"] == pytest.approx(2 * slow["tokens_per_s"], rel=1e-12)


@given(st.lists(st.tuples(st.integers(1, 32), st.integers(0, 512)).map(list), min_size=1, max_size=6))
def test_top_k_equal_e_is_the_dense_count(reqs: list[list[int]]) -> None:
    # With k = E every token runs every expert: the MoE layer's FLOPs equal a dense layer whose FFN holds
    # shared + E experts, and the uniform estimate gives a_l = E, so bytes equal that dense model's too.
    moe = dense_plus_moe().with_top_k(4)
    moe_layer = moe.layers[1]
    dense_layer = replace(moe_layer, kind="dense", ffn_params=moe_layer.ffn_params + 4 * moe.expert_params)
    dense = replace(moe, layers=(moe.layers[0], dense_layer))
    rec = {"reqs": reqs, "sampled": 1, "latency_s": 1.0}
    f_moe = scan_passes([rec], num_moe_layers=1).features
    f_dense = scan_passes([rec], num_moe_layers=0).features
    assert pass_flops(f_moe, moe).total[0] == pass_flops(f_dense, dense).total[0]
    tokens = f_moe.tokens
    assert uniform_expected_active(4, 4, tokens)[0] == 4.0
    moe_bytes = pass_bytes(f_moe, moe, WIDTHS, uniform_expected_active(4, 4, tokens))
    dense_bytes = pass_bytes(f_dense, dense, WIDTHS, np.zeros(1))
    assert moe_bytes.total[0] == dense_bytes.total[0]
    assert moe.active_params == moe.total_params


@given(st.integers(1, 64), st.integers(0, 3), st.integers(1, 4))
def test_bytes_monotone_in_experts_active(tokens: int, low: int, extra: int) -> None:
    s = dense_plus_moe()
    rec = {"reqs": [[tokens, 10]], "sampled": 1, "latency_s": 1.0}
    f = scan_passes([rec], num_moe_layers=1).features
    fewer = pass_bytes(f, s, WIDTHS, np.array([float(low)])).total[0]
    more = pass_bytes(f, s, WIDTHS, np.array([float(low + extra)])).total[0]
    assert more > fewer
    assert more - fewer == 2 * s.expert_params * extra  # b_e · expert · Δa
