"""Parameter formulas and layer builders shared by the family modules (docs/metrics.md §1).

Notation: d hidden size, H query heads, Hkv key/value heads, dh head dim, E routed experts, f FFN width.
Every count is a number of weight elements (biases and norm vectors excluded).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from capbench.arch.families._fields import ConfigReader
from capbench.arch.structure import AttentionKind, LayerKind, LayerStructure, ModelStructure
from capbench.errors import CapbenchError


@dataclass(frozen=True)
class Attention:
    """The attention block of one layer: its weights and the shapes the FLOP and KV formulas need."""

    kind: AttentionKind
    params: int
    num_heads: int
    qk_head_dim: int
    v_head_dim: int
    kv_elems_per_token: int


def gated_ffn_params(hidden_size: int, width: int) -> int:
    """A gated FFN (gate, up and down projections): 3·d·f weights."""
    return 3 * hidden_size * width


def router_params(hidden_size: int, num_experts: int) -> int:
    """The router's linear layer: d·E weights."""
    return hidden_size * num_experts


def gqa_attention(hidden_size: int, num_heads: int, num_kv_heads: int, head_dim: int) -> Attention:
    """MHA/GQA/MQA: q d·H·dh, k and v d·Hkv·dh each, o H·dh·d, so d·H·dh + 2·d·Hkv·dh + H·dh·d weights.

    KV elements per token per layer: 2·Hkv·dh (one key and one value vector per KV head).
    """
    d, h, hkv, dh = hidden_size, num_heads, num_kv_heads, head_dim
    return Attention(
        kind="mha",
        params=d * h * dh + 2 * d * hkv * dh + h * dh * d,
        num_heads=h,
        qk_head_dim=dh,
        v_head_dim=dh,
        kv_elems_per_token=2 * hkv * dh,
    )


def mla_attention(
    hidden_size: int,
    num_heads: int,
    q_lora_rank: int | None,
    kv_lora_rank: int,
    qk_nope_head_dim: int,
    qk_rope_head_dim: int,
    v_head_dim: int,
) -> Attention:
    """DeepSeek multi-head latent attention (weights only; the two latent RMSNorms are excluded).

    - Q: d·H·(nope+rope) without ``q_lora_rank``, else d·r_q + r_q·H·(nope+rope).
    - KV: d·(r_kv+rope) (the joint down-projection with the shared rope key) + r_kv·H·(nope+v).
    - O: H·v·d.

    KV elements per token per layer: r_kv + rope (the compressed latent plus the shared rope key).
    """
    d, h, r_kv = hidden_size, num_heads, kv_lora_rank
    nope, rope, v = qk_nope_head_dim, qk_rope_head_dim, v_head_dim
    q = d * h * (nope + rope) if q_lora_rank is None else d * q_lora_rank + q_lora_rank * h * (nope + rope)
    kv = d * (r_kv + rope) + r_kv * h * (nope + v)
    o = h * v * d
    return Attention(
        kind="mla",
        params=q + kv + o,
        num_heads=h,
        qk_head_dim=nope + rope,
        v_head_dim=v,
        kv_elems_per_token=r_kv + rope,
    )


def head_dim(reader: ConfigReader, hidden_size: int, num_heads: int) -> int:
    """``head_dim`` when the config gives one, else d/H (which must then divide exactly)."""
    explicit = reader.optional_int("head_dim")
    if explicit is not None:
        return explicit
    if hidden_size % num_heads:
        raise CapbenchError(
            f"config.json for model_type {reader.model_type!r} has no 'head_dim' and hidden size "
            f"{hidden_size} is not a multiple of num_attention_heads {num_heads}; add 'head_dim'."
        )
    return hidden_size // num_heads


def layer(
    index: int,
    kind: LayerKind,
    attention: Attention,
    ffn_params: int,
    router_params: int,
    sliding_window: int | None = None,
) -> LayerStructure:
    """One :class:`LayerStructure` from its attention block and FFN/router weight counts."""
    return LayerStructure(
        index=index,
        kind=kind,
        attention=attention.kind,
        attn_params=attention.params,
        ffn_params=ffn_params,
        router_params=router_params,
        num_heads=attention.num_heads,
        qk_head_dim=attention.qk_head_dim,
        v_head_dim=attention.v_head_dim,
        kv_elems_per_token=attention.kv_elems_per_token,
        sliding_window=sliding_window,
    )


def sliding_windows_from_layer_types(
    reader: ConfigReader, num_layers: int, window: int | None, layer_types: Sequence[str]
) -> tuple[int | None, ...]:
    """Per-layer window from a transformers ``layer_types`` list (``sliding_attention`` / ``full_attention``).

    A ``sliding_attention`` layer keeps ``window`` keys (itself included); a full layer has ``None``.
    """
    if len(layer_types) != num_layers:
        raise CapbenchError(
            f"config.json for model_type {reader.model_type!r}: 'layer_types' has {len(layer_types)} entries "
            f"but the model has {num_layers} layers"
        )
    unknown = sorted(set(layer_types) - {"sliding_attention", "full_attention"})
    if unknown:
        raise CapbenchError(
            f"config.json for model_type {reader.model_type!r}: unsupported 'layer_types' values {unknown}; "
            "known: 'sliding_attention', 'full_attention'"
        )
    if "sliding_attention" in layer_types and window is None:
        raise CapbenchError(
            f"config.json for model_type {reader.model_type!r} has sliding_attention layers but no "
            "'sliding_window'; add it."
        )
    return tuple(window if kind == "sliding_attention" else None for kind in layer_types)


def tie_word_embeddings(reader: ConfigReader, default: bool) -> bool:
    """``tie_word_embeddings``, else the family's transformers default (``False`` for every family here)."""
    return reader.bool_or(default, "tie_word_embeddings")


def model(
    reader: ConfigReader,
    *,
    hidden_size: int,
    num_experts: int,
    top_k: int,
    expert_params: int,
    layers: Sequence[LayerStructure],
    tie_embeddings: bool | None = None,
) -> ModelStructure:
    """Assemble a :class:`ModelStructure`, turning shape inconsistencies into a user-facing error.

    V is the config's ``vocab_size``; ``tie_embeddings`` None reads ``tie_word_embeddings`` (default False).
    """
    vocab_size = reader.require_int("vocab_size")
    if tie_embeddings is None:
        tie_embeddings = tie_word_embeddings(reader, default=False)
    if not any(item.is_moe for item in layers):
        raise CapbenchError(
            f"config.json for model_type {reader.model_type!r} describes no MoE layer; capbench measures "
            "Mixture-of-Experts models only."
        )
    if top_k > num_experts:
        raise CapbenchError(
            f"config.json for model_type {reader.model_type!r}: experts per token ({top_k}) exceeds the "
            f"number of routed experts ({num_experts})"
        )
    return ModelStructure(
        model_type=reader.model_type,
        hidden_size=hidden_size,
        vocab_size=vocab_size,
        num_experts=num_experts,
        top_k=top_k,
        expert_params=expert_params,
        tie_word_embeddings=tie_embeddings,
        layers=tuple(layers),
    )
