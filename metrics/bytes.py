"""Bytes a pass moves through GPU memory (docs/metrics.md §2).

Weights are read once per pass; activations are ignored. For a pass with T tokens, s sampling requests and
a_l distinct routed experts hit in MoE layer l, with byte widths b_w, b_e, b_emb, b_kv (bytes/element):

- dense weights:   b_w · (dense_params − router_params) + b_r · router_params  (attention of every layer,
                   shared experts and routers of MoE layers, dense FFNs; b_r = b_w unless the routers are
                   stored in another dtype)
- routed experts:  b_e · expert_params · Σ_{l∈MoE} a_l
- lm_head:         b_emb · V · d   when s > 0, else 0
- embedding rows:  b_emb · d · T
- KV cache:        b_kv · [Σ_{full layers} kv_elems_l · Σ_i (c_i + n_i)
                           + Σ_{window groups w} Σ_{l∈w} kv_elems_l · Σ_i (min(c_i, w−1) + n_i)]

All in bytes, float64 per pass (fractional widths such as 4.125-bit int4 make bytes non-integral).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from capbench.arch.dtypes import ByteWidths
from capbench.arch.structure import ModelStructure
from capbench.metrics.attention import AttentionGroups
from capbench.metrics.features import PassFeatures

FloatArray = NDArray[np.float64]

BYTES_PARTS: tuple[str, ...] = ("dense_weights", "routed_experts", "lm_head", "embedding", "kv_cache")


@dataclass(frozen=True)
class PassBytes:
    """Per-pass bytes by part (arrays aligned with the passes). ``routed_experts`` is NaN where Σ a_l is
    unknown (not measured and not estimated), which makes ``total`` NaN there too."""

    dense_weights: FloatArray
    routed_experts: FloatArray
    lm_head: FloatArray
    embedding: FloatArray
    kv_cache: FloatArray

    @property
    def total(self) -> FloatArray:
        return self.dense_weights + self.routed_experts + self.lm_head + self.embedding + self.kv_cache


def dense_weight_bytes(structure: ModelStructure, widths: ByteWidths) -> float:
    """Bytes of the weights every pass reads: b_w · (dense_params − router_params) + b_r · router_params."""
    routers = structure.router_params_total
    return widths.weights * (structure.dense_params - routers) + widths.router_or_weights * routers


def pass_bytes(
    features: PassFeatures,
    structure: ModelStructure,
    widths: ByteWidths,
    experts_active_sum: FloatArray,
) -> PassBytes:
    """Bytes moved by each pass, by part.

    ``experts_active_sum`` is Σ_l a_l per pass as used for routed-expert bytes: measured, or the labeled
    uniform estimate, or NaN (see :func:`capbench.metrics.score`'s expert policy).
    """
    groups = AttentionGroups.of(structure)
    if groups.windows != features.windows:
        raise ValueError(f"features scanned for windows {features.windows}, the model has {groups.windows}")
    count = features.num_passes
    d = structure.hidden_size
    tokens = features.tokens.astype(np.float64)
    kv_elems = groups.kv_elems_full * features.kv_tokens_full.astype(np.float64)
    for col, elems in enumerate(groups.kv_elems_window):
        kv_elems = kv_elems + elems * features.kv_tokens_window[:, col].astype(np.float64)
    return PassBytes(
        dense_weights=np.full(count, dense_weight_bytes(structure, widths), dtype=np.float64),
        routed_experts=widths.experts * structure.expert_params * experts_active_sum,
        lm_head=np.where(features.sampled > 0, widths.embeddings * structure.lm_head_params, 0.0),
        embedding=widths.embeddings * d * tokens,
        kv_cache=widths.kv * kv_elems,
    )
