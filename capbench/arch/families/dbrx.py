"""Databricks DBRX (``dbrx``): every layer MoE, GQA attention, fields nested in attn_config / ffn_config.

Top-level fields use DBRX's own names, with transformers' aliases accepted: ``d_model`` (``hidden_size``),
``n_heads`` (``num_attention_heads``), ``n_layers`` (``num_hidden_layers``). ``attn_config.kv_n_heads`` gives
Hkv (a top-level ``num_key_value_heads`` is accepted when ``attn_config`` lacks it); ``ffn_config`` gives
f_e = ``ffn_hidden_size``, E = ``moe_num_experts``, k = ``moe_top_k``.

Per layer: the fused Wqkv d·(H·dh + 2·Hkv·dh) plus out_proj H·dh·d — the same total as
d·H·dh + 2·d·Hkv·dh + H·dh·d with dh = d/H; E experts of 3·d·f_e (w1, v1, w2); router d·E. DBRX has no
biases; its LayerNorms are not counted. DBRX cannot tie its embeddings (transformers rejects it).
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
from capbench.errors import CapbenchError


def build_dbrx(config: Mapping[str, Any]) -> ModelStructure:
    """DBRX base/instruct and same-shaped configs."""
    reader = ConfigReader(config, "dbrx")
    attn = reader.sub("attn_config")
    ffn = reader.sub("ffn_config")
    d = reader.require_int("d_model", "hidden_size")
    num_layers = reader.require_int("n_layers", "num_hidden_layers")
    heads = reader.require_int("n_heads", "num_attention_heads")
    kv_heads = attn.optional_int("kv_n_heads") or reader.optional_int("num_key_value_heads")
    if kv_heads is None:
        kv_heads = attn.require_int("kv_n_heads")  # raises, naming attn_config.kv_n_heads
    if reader.bool_or(False, "tie_word_embeddings"):
        raise CapbenchError("config.json for model_type 'dbrx': DBRX does not support tie_word_embeddings=true")
    attention = gqa_attention(d, heads, kv_heads, head_dim(reader, d, heads))
    num_experts = ffn.require_int("moe_num_experts")
    layers = [layer(i, "moe", attention, 0, router_params(d, num_experts)) for i in range(num_layers)]
    return model(
        reader,
        hidden_size=d,
        num_experts=num_experts,
        top_k=ffn.require_int("moe_top_k"),
        expert_params=gated_ffn_params(d, ffn.require_int("ffn_hidden_size")),
        tie_embeddings=False,
        layers=layers,
    )
