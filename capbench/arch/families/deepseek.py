"""DeepSeek MoE families with multi-head latent attention: ``deepseek_v2`` (V2, V2-Lite), ``deepseek_v3``.

Layer selection (DeepSeek's reference ``DeepseekV2DecoderLayer``): layer i is MoE iff
i >= ``first_k_dense_replace`` and i % ``moe_layer_freq`` == 0 (``moe_layer_freq`` defaults to 1); other
layers are dense FFNs of width ``intermediate_size``.

Per MoE layer: E·3·d·f_e routed (f_e = ``moe_intermediate_size``, E = ``n_routed_experts``), the shared
experts 3·d·f_sh with f_sh = ``n_shared_experts``·f_e (read from the config, never assumed; null means
none), and the router d·E (V3's per-expert ``e_score_correction_bias`` is a bias and is not counted).

Attention is MLA (see :func:`~._common.mla_attention`); ``q_lora_rank`` must be present and may be null.

Multi-token-prediction modules (``num_nextn_predict_layers``, alias ``num_mtp_layers``) are not part of
inference and are excluded: ``num_hidden_layers`` already counts only the main model's layers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from capbench.arch.families._common import (
    gated_ffn_params,
    layer,
    mla_attention,
    model,
    router_params,
)
from capbench.arch.families._fields import ConfigReader
from capbench.arch.structure import ModelStructure

EXPERT_KEYS = ("n_routed_experts", "num_local_experts", "num_experts")
MTP_KEYS = ("num_nextn_predict_layers", "num_mtp_layers")


def moe_layer_indices(reader: ConfigReader, num_layers: int) -> frozenset[int]:
    """Indices i with i >= ``first_k_dense_replace`` and i % ``moe_layer_freq`` == 0."""
    first_dense = reader.require_int("first_k_dense_replace", minimum=0)
    freq = reader.int_or(1, "moe_layer_freq", minimum=1)
    return frozenset(i for i in range(num_layers) if i >= first_dense and i % freq == 0)


def mtp_layers(reader: ConfigReader) -> int:
    """Multi-token-prediction layers the checkpoint carries besides ``num_hidden_layers`` (not counted)."""
    return reader.int_or(0, *MTP_KEYS, minimum=0)


def _build(reader: ConfigReader) -> ModelStructure:
    d = reader.require_int("hidden_size")
    num_layers = reader.require_int("num_hidden_layers")
    mtp_layers(reader)  # validated only: MTP layers are excluded from the inference structure
    attention = mla_attention(
        d,
        num_heads=reader.require_int("num_attention_heads"),
        q_lora_rank=reader.nullable_int("q_lora_rank"),
        kv_lora_rank=reader.require_int("kv_lora_rank"),
        qk_nope_head_dim=reader.require_int("qk_nope_head_dim", minimum=0),
        qk_rope_head_dim=reader.require_int("qk_rope_head_dim", minimum=0),
        v_head_dim=reader.require_int("v_head_dim"),
    )
    num_experts = reader.require_int(*EXPERT_KEYS)
    expert_width = reader.require_int("moe_intermediate_size")
    shared_width = (reader.nullable_int("n_shared_experts", minimum=0) or 0) * expert_width
    moe_indices = moe_layer_indices(reader, num_layers)
    dense_width = reader.require_int("intermediate_size") if len(moe_indices) < num_layers else 0

    layers = []
    for i in range(num_layers):
        if i in moe_indices:
            shared = gated_ffn_params(d, shared_width)
            layers.append(layer(i, "moe", attention, shared, router_params(d, num_experts)))
        else:
            layers.append(layer(i, "dense", attention, gated_ffn_params(d, dense_width), 0))
    return model(
        reader,
        hidden_size=d,
        num_experts=num_experts,
        top_k=reader.require_int("num_experts_per_tok"),
        expert_params=gated_ffn_params(d, expert_width),
        layers=layers,
    )


def build_deepseek_v2(config: Mapping[str, Any]) -> ModelStructure:
    """DeepSeek-V2 / V2-Lite (V2 has ``n_shared_experts`` = 2; read from the config)."""
    return _build(ConfigReader(config, "deepseek_v2"))


def build_deepseek_v3(config: Mapping[str, Any]) -> ModelStructure:
    """DeepSeek-V3 / R1 (V3 has ``n_shared_experts`` = 1; read from the config)."""
    return _build(ConfigReader(config, "deepseek_v3"))
