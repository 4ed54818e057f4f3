"""Families whose every layer is MoE with GQA attention and no shared expert: ``mixtral`` and ``olmoe``.

Per layer: attention d·H·dh + 2·d·Hkv·dh + H·dh·d, E routed experts of 3·d·f_e (f_e = ``intermediate_size``),
router d·E. OLMoE's q/k RMSNorms are norm vectors and are not counted.

Sliding window (Mixtral): when ``sliding_window`` is set (not null) every layer attends to at most that many
keys, itself included (transformers' ``sliding_window_causal_mask``). OLMoE has no sliding window.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from capbench.arch.families._common import (
    gated_ffn_params,
    gqa_attention,
    head_dim,
    layer,
    model,
    router_params,
)
from capbench.arch.families._fields import ConfigReader
from capbench.arch.structure import ModelStructure

#: Accepted spellings of E, preferred first (transformers 5 saves Mixtral's as ``num_local_experts`` and maps
#: OLMoE's ``num_local_experts`` to ``num_experts``).
MIXTRAL_EXPERT_KEYS = ("num_local_experts", "num_experts")
OLMOE_EXPERT_KEYS = ("num_experts", "num_local_experts")


def _build(reader: ConfigReader, *, expert_keys: tuple[str, ...], kv_heads_required: bool) -> ModelStructure:
    d = reader.require_int("hidden_size")
    num_layers = reader.require_int("num_hidden_layers")
    heads = reader.require_int("num_attention_heads")
    if kv_heads_required:
        kv_heads = reader.nullable_int("num_key_value_heads") or heads
    else:
        kv_heads = reader.optional_int("num_key_value_heads") or heads
    dh = head_dim(reader, d, heads)
    num_experts = reader.require_int(*expert_keys)
    top_k = reader.require_int("num_experts_per_tok")
    expert_width = reader.require_int("intermediate_size")
    window = reader.optional_int("sliding_window") if reader.model_type == "mixtral" else None

    attention = gqa_attention(d, heads, kv_heads, dh)
    layers = [
        layer(
            i,
            "moe",
            attention,
            ffn_params=0,
            router_params=router_params(d, num_experts),
            sliding_window=window,
        )
        for i in range(num_layers)
    ]
    return model(
        reader,
        hidden_size=d,
        num_experts=num_experts,
        top_k=top_k,
        expert_params=gated_ffn_params(d, expert_width),
        layers=layers,
    )


def build_mixtral(config: Mapping[str, Any]) -> ModelStructure:
    """Mixtral: ``num_key_value_heads`` required (null means H, as in transformers)."""
    return _build(ConfigReader(config, "mixtral"), expert_keys=MIXTRAL_EXPERT_KEYS, kv_heads_required=True)


def build_olmoe(config: Mapping[str, Any]) -> ModelStructure:
    """OLMoE: absent or null ``num_key_value_heads`` means H (transformers' ``OlmoeConfig``)."""
    return _build(ConfigReader(config, "olmoe"), expert_keys=OLMOE_EXPERT_KEYS, kv_heads_required=False)
