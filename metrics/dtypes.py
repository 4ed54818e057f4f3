"""Bytes per stored element for each tensor group of a model (docs/metrics.md §2, "Byte widths").

b_w: the other transformer weights (attention, dense FFN, shared experts, router); b_e: routed-expert weights;
b_emb: embedding and lm_head; b_kv: the KV cache. Widths are bytes per element and may be fractional
(int4 with group scales, MXFP4, NVFP4).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ByteWidths:
    """Bytes per element: ``weights`` (b_w), ``experts`` (b_e), ``embeddings`` (b_emb), ``kv`` (b_kv)."""

    weights: float
    experts: float
    embeddings: float
    kv: float
