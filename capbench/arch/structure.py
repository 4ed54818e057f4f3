"""The parameter structure of a Mixture-of-Experts transformer, as the metrics need it.

Notation (docs/metrics.md §1): L layers, d hidden size, V vocabulary size, E routed experts, k experts per
token. Parameter counts are weights only: biases and norm vectors are excluded. All FFNs are gated (three
d×width matrices), so one routed expert of width f_e has 3·d·f_e parameters.

:func:`capbench.arch.families.model_structure` builds a :class:`ModelStructure` from a ``config.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from capbench.errors import CapbenchError

LayerKind = Literal["moe", "dense"]
AttentionKind = Literal["mha", "mla"]  # "mha" covers multi-head, grouped-query and multi-query attention


@dataclass(frozen=True)
class LayerStructure:
    """One decoder layer.

    Attributes:
        index: position of the layer, 0-based.
        kind: ``"moe"`` (routed experts) or ``"dense"`` (one dense FFN).
        attention: ``"mha"`` (MHA/GQA/MQA) or ``"mla"`` (DeepSeek multi-head latent attention).
        attn_params: attention weights. MHA/GQA: d·H·dh + 2·d·Hkv·dh + H·dh·d. MLA: see docs/metrics.md §1.
        ffn_params: on a dense layer its dense FFN, 3·d·f; on a MoE layer its shared experts, 3·d·f_sh
            (0 when the layer has none). Routed experts are counted in :attr:`ModelStructure.expert_params`.
        router_params: the router, d·E, on a MoE layer; 0 on a dense layer.
        num_heads: H, query heads.
        qk_head_dim: d_qk per head (dh for MHA/GQA; nope+rope for MLA).
        v_head_dim: d_v per head (dh for MHA/GQA; v_head_dim for MLA).
        kv_elems_per_token: KV-cache elements one token adds to this layer's cache (2·Hkv·dh for MHA/GQA,
            r_kv + rope for MLA's latent cache).
        sliding_window: the most keys one query sees on this layer, itself included; ``None`` = full attention.
    """

    index: int
    kind: LayerKind
    attention: AttentionKind
    attn_params: int
    ffn_params: int
    router_params: int
    num_heads: int
    qk_head_dim: int
    v_head_dim: int
    kv_elems_per_token: int
    sliding_window: int | None = None

    @property
    def is_moe(self) -> bool:
        return self.kind == "moe"


@dataclass(frozen=True)
class ModelStructure:
    """A whole model: per-layer structure plus the routed-expert and embedding shapes.

    Attributes:
        model_type: the ``config.json`` ``model_type`` it was built from.
        hidden_size: d.
        vocab_size: V.
        num_experts: E, routed experts per MoE layer.
        top_k: k, routed experts each token runs.
        expert_params: parameters of one routed expert, 3·d·f_e (the same in every MoE layer).
        tie_word_embeddings: embedding and lm_head are one tensor.
        layers: the decoder layers in order (multi-token-prediction layers excluded).
    """

    model_type: str
    hidden_size: int
    vocab_size: int
    num_experts: int
    top_k: int
    expert_params: int
    tie_word_embeddings: bool
    layers: tuple[LayerStructure, ...]

    def __post_init__(self) -> None:
        if not 1 <= self.top_k <= self.num_experts:
            raise CapbenchError(f"top_k must be in [1, num_experts={self.num_experts}], got {self.top_k}")

    @property
    def num_layers(self) -> int:
        """L."""
        return len(self.layers)

    @property
    def moe_layers(self) -> tuple[LayerStructure, ...]:
        return tuple(layer for layer in self.layers if layer.is_moe)

    @property
    def num_moe_layers(self) -> int:
        return len(self.moe_layers)

    @property
    def embedding_params(self) -> int:
        """The input embedding, V·d."""
        return self.vocab_size * self.hidden_size

    @property
    def lm_head_params(self) -> int:
        """The output projection, V·d (the same tensor as the embedding when tied)."""
        return self.vocab_size * self.hidden_size

    @property
    def dense_params(self) -> int:
        """Weights every pass reads whatever the routing: Σ_layers attn + Σ_MoE(shared + router) + Σ_dense FFN.

        Embedding and lm_head are excluded (they have their own byte width and terms).
        """
        return sum(layer.attn_params + layer.ffn_params + layer.router_params for layer in self.layers)

    @property
    def router_params_total(self) -> int:
        """All routers: Σ_MoE d·E (part of :attr:`dense_params`)."""
        return sum(layer.router_params for layer in self.layers)

    @property
    def routed_expert_params_total(self) -> int:
        """All routed experts: Σ_MoE E·expert."""
        return self.num_moe_layers * self.num_experts * self.expert_params

    @property
    def total_params(self) -> int:
        """L·attn + Σ_MoE(E·expert + shared + router) + Σ_dense FFN + embedding + lm_head (once if tied)."""
        lm_head = 0 if self.tie_word_embeddings else self.lm_head_params
        return self.dense_params + self.routed_expert_params_total + self.embedding_params + lm_head

    @property
    def active_params(self) -> int:
        """total_params − Σ_MoE (E − k)·expert: the parameters one token can touch."""
        inactive = self.num_moe_layers * (self.num_experts - self.top_k) * self.expert_params
        return self.total_params - inactive

    @property
    def linear_params_per_token(self) -> int:
        """Weights one token multiplies through, lm_head excluded: dense_params + Σ_MoE k·expert.

        The linear FLOPs of a pass are 2·T·linear_params_per_token + 2·s·V·d (docs/metrics.md §2).
        """
        return self.dense_params + self.num_moe_layers * self.top_k * self.expert_params

    def with_top_k(self, top_k: int) -> ModelStructure:
        """The same model run with ``top_k`` experts per token (an inference-time override)."""
        return replace(self, top_k=top_k)
