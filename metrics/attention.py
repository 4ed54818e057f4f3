"""What attention reads and computes per request in a pass: causal pairs and KV tokens, with sliding windows.

Notation (docs/metrics.md §2): a request computes n new tokens on top of c tokens already in its KV cache.
Its new query j (0-based) sits at position c + j and, with full causal attention, sees the c + j + 1 keys
0 … c + j (itself included). On a sliding-window layer with window w it sees at most w keys: the
min(c + j + 1, w) most recent.

Layers are grouped by window (full attention is one group, each distinct window another) so a pass reduces
to one pair count and one KV-token count per group, whatever the number of layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from capbench.arch.structure import ModelStructure

IntArray = NDArray[np.int64]


def _prefix_pairs(x: IntArray, window: int) -> IntArray:
    """S_w(x) = Σ_{m=1}^{x} min(m, w) = x(x+1)/2 if x ≤ w, else w(w+1)/2 + (x − w)·w (x ≥ 0)."""
    return np.where(x <= window, x * (x + 1) // 2, window * (window + 1) // 2 + (x - window) * window)


def causal_pairs(new_tokens: IntArray, cached_tokens: IntArray, window: int | None = None) -> IntArray:
    """(query, key) pairs attention scores for requests computing n new tokens on c cached ones.

    Full attention: pairs = n·c + n(n+1)/2 (each new query sees the whole context plus the new tokens up to
    itself).

    Sliding window w (a query sees at most w keys, itself included): query j sees min(c + j + 1, w) keys, so
    pairs = Σ_{m=c+1}^{c+n} min(m, w) = S_w(c + n) − S_w(c) with S_w as in :func:`_prefix_pairs`. For
    w ≥ c + n this equals the full-attention count. Element-wise over arrays (int64, exact).
    """
    n = np.asarray(new_tokens, dtype=np.int64)
    c = np.asarray(cached_tokens, dtype=np.int64)
    if window is None:
        return n * c + n * (n + 1) // 2
    return _prefix_pairs(c + n, window) - _prefix_pairs(c, window)


def kv_tokens(new_tokens: IntArray, cached_tokens: IntArray, window: int | None = None) -> IntArray:
    """KV-cache token slots a request touches on one layer: c_eff + n (context reads plus new-token writes).

    c_eff = c on full attention, min(c, w − 1) on a sliding-window layer with window w (docs/metrics.md §2).
    """
    n = np.asarray(new_tokens, dtype=np.int64)
    c = np.asarray(cached_tokens, dtype=np.int64)
    if window is None:
        return c + n
    return np.minimum(c, window - 1) + n


@dataclass(frozen=True)
class AttentionGroups:
    """The model's layers grouped by attention window, with each group's per-token coefficients.

    Attributes:
        windows: distinct sliding windows, ascending (empty when every layer has full attention).
        kv_elems_full: Σ over full-attention layers of KV elements per token.
        kv_elems_window: the same sum per window group, aligned with ``windows``.
        attn_flops_per_pair_full: Σ over full-attention layers of 2·H·(d_qk + d_v), FLOPs per (query, key)
            pair (QKᵀ and PV, a multiply-add being 2 FLOPs).
        attn_flops_per_pair_window: the same sum per window group.
    """

    windows: tuple[int, ...]
    kv_elems_full: int
    kv_elems_window: tuple[int, ...]
    attn_flops_per_pair_full: int
    attn_flops_per_pair_window: tuple[int, ...]

    @classmethod
    def of(cls, structure: ModelStructure) -> AttentionGroups:
        windows = tuple(sorted({w for layer in structure.layers if (w := layer.sliding_window) is not None}))
        kv_full = 0
        flops_full = 0
        kv_win = dict.fromkeys(windows, 0)
        flops_win = dict.fromkeys(windows, 0)
        for layer in structure.layers:
            per_pair = 2 * layer.num_heads * (layer.qk_head_dim + layer.v_head_dim)
            if layer.sliding_window is None:
                kv_full += layer.kv_elems_per_token
                flops_full += per_pair
            else:
                kv_win[layer.sliding_window] += layer.kv_elems_per_token
                flops_win[layer.sliding_window] += per_pair
        return cls(
            windows=windows,
            kv_elems_full=kv_full,
            kv_elems_window=tuple(kv_win[w] for w in windows),
            attn_flops_per_pair_full=flops_full,
            attn_flops_per_pair_window=tuple(flops_win[w] for w in windows),
        )
