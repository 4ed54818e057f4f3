"""Causal (query, key) pairs and KV token slots, closed forms against brute-force loops."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from capbench.metrics.attention import AttentionGroups, causal_pairs, kv_tokens
from tests.support.toys import dense_plus_moe, sliding_toy


def brute_pairs(n: int, c: int, window: int | None) -> int:
    """Query j (0-based) at position c + j sees keys max(0, c + j − w + 1) … c + j."""
    total = 0
    for j in range(n):
        position = c + j
        first = 0 if window is None else max(0, position - window + 1)
        total += position - first + 1
    return total


def brute_kv(n: int, c: int, window: int | None) -> int:
    """Keys read from the cache (at most w − 1 old ones on a sliding layer) plus the n new ones written."""
    return (c if window is None else min(c, window - 1)) + n


@given(
    n=st.integers(1, 300),
    c=st.integers(0, 2000),
    window=st.one_of(st.none(), st.integers(1, 600)),
)
def test_closed_forms_match_brute_force(n: int, c: int, window: int | None) -> None:
    assert int(causal_pairs(np.array([n]), np.array([c]), window)[0]) == brute_pairs(n, c, window)
    assert int(kv_tokens(np.array([n]), np.array([c]), window)[0]) == brute_kv(n, c, window)


def test_full_attention_form() -> None:
    # n·c + n(n+1)/2: a 4-token prompt has 1+2+3+4 = 10 pairs; one decode token on 9 cached has 10.
    assert causal_pairs(np.array([4, 1]), np.array([0, 9])).tolist() == [10, 10]


def test_sliding_window_worked_example() -> None:
    # w = 4, n = 3, c = 5: S_4(8) − S_4(5) = (10 + 4·4) − (10 + 1·4) = 26 − 14 = 12.
    assert causal_pairs(np.array([3]), np.array([5]), 4).tolist() == [12]


def test_groups() -> None:
    g = AttentionGroups.of(sliding_toy())
    assert g.windows == (4,)
    assert (g.kv_elems_full, g.kv_elems_window) == (4, (4,))
    assert (g.attn_flops_per_pair_full, g.attn_flops_per_pair_window) == (8, (8,))
    full = AttentionGroups.of(dense_plus_moe())
    assert full.windows == () and full.kv_elems_full == 16 and full.attn_flops_per_pair_full == 64
