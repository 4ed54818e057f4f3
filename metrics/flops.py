"""Model FLOPs of a pass (docs/metrics.md §2; ``flops_convention: model``).

A multiply-add is 2 FLOPs. For a pass with T tokens and s sampling requests:

- linear layers: 2 · T · linear_params_per_token, where linear_params_per_token = Σ_layers attn
  + Σ_MoE (k·expert + shared + router) + Σ_dense FFN (each token runs exactly k routed experts)
- lm_head:       2 · s · V · d (only sampling requests project onto the vocabulary)
- attention:     Σ_layers 2 · H_l · (d_qk,l + d_v,l) · Σ_i pairs_i,l, pairs from
                 :func:`capbench.metrics.attention.causal_pairs` (full or sliding window per layer).
                 MLA counts its non-absorbed form (d_qk = nope + rope, d_v = v): the math the model requires,
                 not what a given kernel executes.

All in FLOPs, float64 per pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from capbench.arch.structure import ModelStructure
from capbench.metrics.attention import AttentionGroups
from capbench.metrics.features import PassFeatures

FloatArray = NDArray[np.float64]

FLOPS_CONVENTION = "model"
FLOPS_PARTS: tuple[str, ...] = ("linear_layers", "lm_head", "attention")


@dataclass(frozen=True)
class PassFlops:
    """Per-pass FLOPs by part (arrays aligned with the passes)."""

    linear_layers: FloatArray
    lm_head: FloatArray
    attention: FloatArray

    @property
    def total(self) -> FloatArray:
        return self.linear_layers + self.lm_head + self.attention


def pass_flops(features: PassFeatures, structure: ModelStructure) -> PassFlops:
    """FLOPs computed by each pass, by part (formulas in the module docstring)."""
    groups = AttentionGroups.of(structure)
    if groups.windows != features.windows:
        raise ValueError(f"features scanned for windows {features.windows}, the model has {groups.windows}")
    attention = groups.attn_flops_per_pair_full * features.pairs_full.astype(np.float64)
    for col, per_pair in enumerate(groups.attn_flops_per_pair_window):
        attention = attention + per_pair * features.pairs_window[:, col].astype(np.float64)
    return PassFlops(
        linear_layers=2.0 * structure.linear_params_per_token * features.tokens.astype(np.float64),
        lm_head=2.0 * structure.lm_head_params * features.sampled.astype(np.float64),
        attention=attention,
    )
