"""OpenAI gpt-oss (``gpt_oss``): every layer MoE, GQA attention, alternating sliding/full attention.

Per layer: attention d·H·dh + 2·d·Hkv·dh + H·dh·d (``head_dim`` is explicit: 64 with d = 2880, H = 64, so
H·dh ≠ d); E routed experts of 3·d·f_e (a fused gate/up projection d×2f_e and a down projection f_e×d, with
f_e = ``intermediate_size``); router d·E. Excluded as non-weights: every bias (q/k/v/o, router, experts) and
the per-head attention sinks (H scalars per layer).

Sliding window: ``layer_types`` lists ``sliding_attention`` / ``full_attention`` per layer; without it,
transformers' default alternates, starting with a sliding layer at index 0. A sliding layer keeps at most
``sliding_window`` keys, itself included.
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
    sliding_windows_from_layer_types,
)
from capbench.arch.families._fields import ConfigReader
from capbench.arch.structure import ModelStructure

EXPERT_KEYS = ("num_local_experts", "num_experts")
TOP_K_KEYS = ("num_experts_per_tok", "experts_per_token")


def default_layer_types(num_layers: int) -> tuple[str, ...]:
    """transformers' ``GptOssConfig`` default: even layers slide, odd layers attend to the full context."""
    return tuple("sliding_attention" if i % 2 == 0 else "full_attention" for i in range(num_layers))


def build_gpt_oss(config: Mapping[str, Any]) -> ModelStructure:
    """gpt-oss-20b / gpt-oss-120b and same-shaped configs."""
    reader = ConfigReader(config, "gpt_oss")
    d = reader.require_int("hidden_size")
    num_layers = reader.require_int("num_hidden_layers")
    heads = reader.require_int("num_attention_heads")
    kv_heads = reader.nullable_int("num_key_value_heads") or heads
    attention = gqa_attention(d, heads, kv_heads, head_dim(reader, d, heads))
    num_experts = reader.require_int(*EXPERT_KEYS)
    layer_types = reader.str_list("layer_types") or default_layer_types(num_layers)
    windows = sliding_windows_from_layer_types(reader, num_layers, reader.optional_int("sliding_window"), layer_types)
    layers = [layer(i, "moe", attention, 0, router_params(d, num_experts), windows[i]) for i in range(num_layers)]
    return model(
        reader,
        hidden_size=d,
        num_experts=num_experts,
        top_k=reader.require_int(*TOP_K_KEYS),
        expert_params=gated_ffn_params(d, reader.require_int("intermediate_size")),
        layers=layers,
    )
