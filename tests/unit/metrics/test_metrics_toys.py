"""Checks of the hand-counted parameters of the toy model structures (tests/support/toys.py)."""

from __future__ import annotations

from capbench.arch.dtypes import ByteWidths
from tests.support.toys import dense_plus_moe, mla_toy, sliding_toy


def test_dense_plus_moe_counts() -> None:
    s = dense_plus_moe()
    assert s.dense_params == 192 * 2 + 144 + 120 + 32 == 680
    assert s.linear_params_per_token == 680 + 1 * 2 * 72 == 824
    assert s.lm_head_params == 10 * 8 == 80


def test_mla_toy_counts() -> None:
    s = mla_toy()
    assert s.dense_params == 224 + 32 == 256
    assert s.linear_params_per_token == 256 + 1 * 48 == 304


def test_sliding_toy_counts() -> None:
    s = sliding_toy()
    assert s.dense_params == 2 * (32 + 8) == 80
    assert s.linear_params_per_token == 80 + 2 * 1 * 12 == 104


def test_router_width_separate_from_other_dense_weights() -> None:
    """A bf16 router (b_r = 2) next to fp8 weights (b_w = 1): dense bytes = 1·(680 − 32) + 2·32 = 712."""
    from capbench.metrics.bytes import dense_weight_bytes

    s = dense_plus_moe()
    assert s.router_params_total == 32
    fp8_bf16_router = ByteWidths(weights=1, experts=1, embeddings=2, kv=2, router=2)
    assert dense_weight_bytes(s, fp8_bf16_router) == 1 * (680 - 32) + 2 * 32 == 712
    same_width = ByteWidths(weights=1, experts=1, embeddings=2, kv=2)  # router None: b_r = b_w
    assert dense_weight_bytes(s, same_width) == 680
