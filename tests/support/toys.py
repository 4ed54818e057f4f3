"""Hand-built toy model structures shared by the metric tests.

Each toy is small enough to count by hand; the arithmetic is written next to every number.
"""

from __future__ import annotations

from capbench.arch.dtypes import ByteWidths
from capbench.arch.structure import LayerKind, LayerStructure, ModelStructure


def gqa_layer(
    index: int,
    kind: LayerKind,
    *,
    d: int,
    heads: int,
    kv_heads: int,
    head_dim: int,
    ffn: int,
    router: int,
    window: int | None = None,
) -> LayerStructure:
    """An MHA/GQA layer: attn = d·H·dh + 2·d·Hkv·dh + H·dh·d, KV elements per token = 2·Hkv·dh."""
    attn = d * heads * head_dim + 2 * d * kv_heads * head_dim + heads * head_dim * d
    return LayerStructure(
        index=index,
        kind=kind,
        attention="mha",
        attn_params=attn,
        ffn_params=ffn,
        router_params=router,
        num_heads=heads,
        qk_head_dim=head_dim,
        v_head_dim=head_dim,
        kv_elems_per_token=2 * kv_heads * head_dim,
        sliding_window=window,
    )


def dense_plus_moe() -> ModelStructure:
    """Layer 0 dense FFN (f = 6), layer 1 MoE (E = 4, k = 2, f_e = 3, one shared expert f_sh = 5).

    d = 8, H = 2, Hkv = 1, dh = 4, V = 10, untied.
    attn = 8·2·4 + 2·8·1·4 + 2·4·8 = 64 + 64 + 64 = 192 per layer; KV elems = 2·1·4 = 8 per layer.
    dense FFN = 3·8·6 = 144; shared = 3·8·5 = 120; router = 8·4 = 32; one expert = 3·8·3 = 72.
    """
    d = 8
    return ModelStructure(
        model_type="toy",
        hidden_size=d,
        vocab_size=10,
        num_experts=4,
        top_k=2,
        expert_params=3 * d * 3,
        tie_word_embeddings=False,
        layers=(
            gqa_layer(0, "dense", d=d, heads=2, kv_heads=1, head_dim=4, ffn=3 * d * 6, router=0),
            gqa_layer(1, "moe", d=d, heads=2, kv_heads=1, head_dim=4, ffn=3 * d * 5, router=d * 4),
        ),
    )


def mla_toy() -> ModelStructure:
    """One MoE layer with DeepSeek MLA: d = 8, H = 2, nope = 3, rope = 2, v = 3, r_kv = 4, no q_lora.

    Q: d·H·(nope+rope) = 8·2·5 = 80; KV: d·(r_kv+rope) + r_kv·H·(nope+v) = 8·6 + 4·2·6 = 48 + 48 = 96;
    O: H·v·d = 2·3·8 = 48; attn = 224. KV elems = r_kv + rope = 6. d_qk = 5, d_v = 3.
    E = 4, k = 1, f_e = 2 → expert = 3·8·2 = 48; router = 8·4 = 32; no shared; V = 10.
    """
    d = 8
    layer = LayerStructure(
        index=0,
        kind="moe",
        attention="mla",
        attn_params=80 + 96 + 48,
        ffn_params=0,
        router_params=d * 4,
        num_heads=2,
        qk_head_dim=3 + 2,
        v_head_dim=3,
        kv_elems_per_token=4 + 2,
    )
    return ModelStructure("toy_mla", d, 10, 4, 1, 3 * d * 2, False, (layer,))


def sliding_toy(window: int = 4) -> ModelStructure:
    """Two MoE layers, layer 0 sliding window (w = 4), layer 1 full attention.

    d = 4, H = Hkv = 1, dh = 2: attn = 4·1·2 + 2·4·1·2 + 1·2·4 = 8 + 16 + 8 = 32; KV elems = 2·1·2 = 4.
    E = 2, k = 1, f_e = 1 → expert = 3·4·1 = 12; router = 4·2 = 8; no shared; V = 5.
    """
    d = 4
    layers = (
        gqa_layer(0, "moe", d=d, heads=1, kv_heads=1, head_dim=2, ffn=0, router=d * 2, window=window),
        gqa_layer(1, "moe", d=d, heads=1, kv_heads=1, head_dim=2, ffn=0, router=d * 2),
    )
    return ModelStructure("toy_sliding", d, 5, 2, 1, 3 * d * 1, False, layers)


# b_w = 2 (bf16), b_e = 0.5 (int4), b_emb = 4 (fp32), b_kv = 1 (fp8): all distinct, so a term read with the
# wrong width shows up in the golden numbers.
DISTINCT_WIDTHS = ByteWidths(weights=2, experts=0.5, embeddings=4, kv=1)
