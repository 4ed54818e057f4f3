"""Qwen MoE families: ``qwen2_moe`` (Qwen1.5-MoE, Qwen2-MoE) and ``qwen3_moe``.

Layer selection (as transformers' ``Qwen2MoeDecoderLayer`` / ``Qwen3MoeDecoderLayer``): layer i is MoE iff
i ∉ ``mlp_only_layers`` and (i+1) % ``decoder_sparse_step`` == 0; other layers are dense FFNs of width
``intermediate_size``. Routed experts have width f_e = ``moe_intermediate_size``.

Per MoE layer: E·3·d·f_e routed + router d·E + (qwen2_moe only) one shared expert 3·d·f_sh with
f_sh = ``shared_expert_intermediate_size``. The shared expert's 1-wide sigmoid gate (d weights per MoE layer)
is left out, as docs/metrics.md §1 specifies; so are qwen2_moe's q/k/v biases and qwen3_moe's q/k norms.

Sliding window: off unless ``use_sliding_window`` is true and ``sliding_window`` is set (not null or 0,
which transformers 5 saves for "off"). When on, the
sliding layers are those an explicit ``layer_types`` list marks ``sliding_attention``; without one, layers
i >= ``max_window_layers`` slide. That is the documented meaning of the field ("the first
max_window_layers layers use full attention"), as Qwen2 and transformers 4.x Qwen2-MoE implement it;
transformers 5.23's Qwen2-MoE default ``layer_types`` (even layers below max_window_layers slide)
contradicts its own field documentation. An absent ``max_window_layers`` takes transformers' default:
28 for qwen2_moe, and 0 (every layer slides) for qwen3_moe, whose transformers config has no such field
and applies the window to every layer. No released Qwen MoE checkpoint enables sliding windows.
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
from capbench.errors import CapbenchError

EXPERT_KEYS = ("num_experts", "num_local_experts")
DEFAULT_MAX_WINDOW_LAYERS = {"qwen2_moe": 28, "qwen3_moe": 0}


def moe_layer_indices(reader: ConfigReader, num_layers: int) -> frozenset[int]:
    """Indices i with i ∉ ``mlp_only_layers`` and (i+1) % ``decoder_sparse_step`` == 0."""
    mlp_only = set(reader.int_list("mlp_only_layers"))
    out_of_range = sorted(i for i in mlp_only if i >= num_layers)
    if out_of_range:
        raise CapbenchError(
            f"config.json for model_type {reader.model_type!r}: 'mlp_only_layers' names layers "
            f"{out_of_range}, but the model has only {num_layers} layers (0-based)"
        )
    step = reader.int_or(1, "decoder_sparse_step", minimum=1)
    return frozenset(i for i in range(num_layers) if i not in mlp_only and (i + 1) % step == 0)


def sliding_windows(reader: ConfigReader, num_layers: int) -> tuple[int | None, ...]:
    """Per-layer attention window (keys seen, itself included), ``None`` for full attention."""
    if not reader.bool_or(False, "use_sliding_window"):
        return (None,) * num_layers
    window = reader.optional_int("sliding_window", minimum=0)  # transformers 5 saves 0 for "off"
    if not window:
        return (None,) * num_layers
    layer_types = reader.str_list("layer_types")
    if layer_types is not None:
        return sliding_windows_from_layer_types(reader, num_layers, window, layer_types)
    full_layers = reader.int_or(DEFAULT_MAX_WINDOW_LAYERS[reader.model_type], "max_window_layers")
    return tuple(window if i >= full_layers else None for i in range(num_layers))


def _build(reader: ConfigReader, *, has_shared_expert: bool) -> ModelStructure:
    d = reader.require_int("hidden_size")
    num_layers = reader.require_int("num_hidden_layers")
    heads = reader.require_int("num_attention_heads")
    kv_heads = reader.nullable_int("num_key_value_heads") or heads
    attention = gqa_attention(d, heads, kv_heads, head_dim(reader, d, heads))
    num_experts = reader.require_int(*EXPERT_KEYS)
    expert_width = reader.require_int("moe_intermediate_size")
    shared_width = reader.require_int("shared_expert_intermediate_size", minimum=0) if has_shared_expert else 0
    moe_indices = moe_layer_indices(reader, num_layers)
    dense_width = reader.require_int("intermediate_size") if len(moe_indices) < num_layers else 0
    windows = sliding_windows(reader, num_layers)

    layers = []
    for i in range(num_layers):
        if i in moe_indices:
            shared = gated_ffn_params(d, shared_width)
            layers.append(layer(i, "moe", attention, shared, router_params(d, num_experts), windows[i]))
        else:
            layers.append(layer(i, "dense", attention, gated_ffn_params(d, dense_width), 0, windows[i]))
    return model(
        reader,
        hidden_size=d,
        num_experts=num_experts,
        top_k=reader.require_int("num_experts_per_tok"),
        expert_params=gated_ffn_params(d, expert_width),
        layers=layers,
    )


def build_qwen2_moe(config: Mapping[str, Any]) -> ModelStructure:
    """Qwen1.5-MoE / Qwen2-MoE: one shared expert (``shared_expert_intermediate_size`` wide) per MoE layer."""
    return _build(ConfigReader(config, "qwen2_moe"), has_shared_expert=True)


def build_qwen3_moe(config: Mapping[str, Any]) -> ModelStructure:
    """Qwen3-MoE: no shared expert."""
    return _build(ConfigReader(config, "qwen3_moe"), has_shared_expert=False)
