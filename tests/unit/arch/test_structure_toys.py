"""Hand-computed toy configs: every count below is worked out in the test (docs/metrics.md §1)."""

from __future__ import annotations

from typing import Any

import pytest

from capbench.arch.families import model_structure


def qwen2_moe_toy(**overrides: Any) -> dict[str, Any]:
    """d=8, L=3, H=2, Hkv=1, dh=d/H=4, E=4, k=2, f_e=3, f_sh=5, f=6, V=10, layer 1 dense, tied."""
    config = {
        "model_type": "qwen2_moe",
        "hidden_size": 8,
        "num_hidden_layers": 3,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "intermediate_size": 6,
        "moe_intermediate_size": 3,
        "shared_expert_intermediate_size": 5,
        "num_experts": 4,
        "num_experts_per_tok": 2,
        "decoder_sparse_step": 1,
        "mlp_only_layers": [1],
        "vocab_size": 10,
        "tie_word_embeddings": True,
    }
    return config | overrides


def test_qwen2_moe_toy_with_dense_layer_and_shared_expert() -> None:
    attn = 8 * 2 * 4 + 2 * 8 * 1 * 4 + 2 * 4 * 8  # q 64 + k,v 64 + o 64 = 192
    expert = 3 * 8 * 3  # 72
    shared = 3 * 8 * 5  # 120
    router = 8 * 4  # 32
    dense = 3 * 8 * 6  # 144
    # layers 0 and 2 MoE, layer 1 dense; one tied V·d = 80 tensor
    total = 3 * attn + 2 * (4 * expert + shared + router) + dense + 10 * 8
    assert total == 576 + 880 + 144 + 80 == 1680
    active = total - 2 * (4 - 2) * expert
    assert active == 1392

    structure = model_structure(qwen2_moe_toy())
    assert [layer.kind for layer in structure.layers] == ["moe", "dense", "moe"]
    assert [layer.ffn_params for layer in structure.layers] == [shared, dense, shared]
    assert [layer.router_params for layer in structure.layers] == [router, 0, router]
    assert structure.expert_params == expert
    assert structure.total_params == total
    assert structure.active_params == active
    assert structure.dense_params == 3 * attn + 2 * (shared + router) + dense
    assert structure.linear_params_per_token == structure.dense_params + 2 * 2 * expert
    assert {layer.kv_elems_per_token for layer in structure.layers} == {2 * 1 * 4}


def test_qwen_decoder_sparse_step() -> None:
    # step 2: layer i is MoE iff (i+1) % 2 == 0 -> layers 1 and 3 of 4; mlp_only_layers empty.
    structure = model_structure(qwen2_moe_toy(num_hidden_layers=4, mlp_only_layers=[], decoder_sparse_step=2))
    assert [layer.kind for layer in structure.layers] == ["dense", "moe", "dense", "moe"]


def test_qwen_sliding_window_rules() -> None:
    # off unless use_sliding_window is true; transformers 5 saves sliding_window 0 when it is off
    off = model_structure(qwen2_moe_toy(sliding_window=4))
    assert {layer.sliding_window for layer in off.layers} == {None}
    saved_off = qwen2_moe_toy(sliding_window=0, use_sliding_window=False, layer_types=["full_attention"] * 3)
    assert {layer.sliding_window for layer in model_structure(saved_off).layers} == {None}
    # on: layers i >= max_window_layers slide
    on = qwen2_moe_toy(sliding_window=4, use_sliding_window=True, max_window_layers=1)
    assert [layer.sliding_window for layer in model_structure(on).layers] == [None, 4, 4]
    # an explicit layer_types list wins
    typed = on | {"layer_types": ["sliding_attention", "full_attention", "full_attention"]}
    assert [layer.sliding_window for layer in model_structure(typed).layers] == [4, None, None]
    # qwen3_moe without max_window_layers: every layer slides (transformers' Qwen3MoeConfig)
    qwen3 = qwen2_moe_toy(model_type="qwen3_moe", sliding_window=4, use_sliding_window=True)
    assert [layer.sliding_window for layer in model_structure(qwen3).layers] == [4, 4, 4]


def deepseek_v2_toy(q_lora_rank: int | None) -> dict[str, Any]:
    """d=16, L=3, H=2, nope=4, rope=2, v=3, r_kv=5, E=4, k=1, f_e=2, 2 shared, f=7, V=11, layer 0 dense."""
    return {
        "model_type": "deepseek_v2",
        "hidden_size": 16,
        "num_hidden_layers": 3,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "q_lora_rank": q_lora_rank,
        "kv_lora_rank": 5,
        "qk_nope_head_dim": 4,
        "qk_rope_head_dim": 2,
        "v_head_dim": 3,
        "n_routed_experts": 4,
        "num_experts_per_tok": 1,
        "moe_intermediate_size": 2,
        "n_shared_experts": 2,
        "intermediate_size": 7,
        "first_k_dense_replace": 1,
        "moe_layer_freq": 1,
        "vocab_size": 11,
        "tie_word_embeddings": False,
    }


@pytest.mark.parametrize(
    ("q_lora_rank", "q_params"),
    [
        (None, 16 * 2 * (4 + 2)),  # d·H·(nope+rope) = 192
        (6, 16 * 6 + 6 * 2 * (4 + 2)),  # d·r_q + r_q·H·(nope+rope) = 96 + 72 = 168
    ],
)
def test_deepseek_v2_mla_toy(q_lora_rank: int | None, q_params: int) -> None:
    kv = 16 * (5 + 2) + 5 * 2 * (4 + 3)  # d·(r_kv+rope) + r_kv·H·(nope+v) = 112 + 70 = 182
    o = 2 * 3 * 16  # H·v·d = 96
    attn = q_params + kv + o  # 470 without q_lora_rank, 446 with r_q = 6
    expert = 3 * 16 * 2  # 96
    shared = 3 * 16 * (2 * 2)  # n_shared_experts·f_e = 4 wide: 192
    router = 16 * 4  # 64
    dense = 3 * 16 * 7  # 336
    total = 3 * attn + 2 * (4 * expert + shared + router) + dense + 2 * 11 * 16
    active = total - 2 * (4 - 1) * expert
    assert (total, active) == ((3378, 2802) if q_lora_rank is None else (3306, 2730))

    structure = model_structure(deepseek_v2_toy(q_lora_rank))
    assert [layer.kind for layer in structure.layers] == ["dense", "moe", "moe"]
    assert {layer.attn_params for layer in structure.layers} == {attn}
    assert structure.total_params == total
    assert structure.active_params == active
    layer = structure.layers[1]
    assert (layer.attention, layer.qk_head_dim, layer.v_head_dim, layer.kv_elems_per_token) == (
        "mla",
        6,
        3,
        7,
    )
    assert layer.ffn_params == shared


def test_deepseek_moe_layer_freq_and_shared_experts_read_from_config() -> None:
    config = deepseek_v2_toy(None) | {"num_hidden_layers": 5, "moe_layer_freq": 2, "n_shared_experts": 1}
    structure = model_structure(config)
    # i >= 1 and i % 2 == 0 -> layers 2 and 4
    assert [layer.kind for layer in structure.layers] == ["dense", "dense", "moe", "dense", "moe"]
    assert structure.moe_layers[0].ffn_params == 3 * 16 * 2  # one shared expert, not an assumed two
    no_shared = model_structure(config | {"n_shared_experts": None})
    assert no_shared.moe_layers[0].ffn_params == 0


def gpt_oss_toy(**overrides: Any) -> dict[str, Any]:
    """d=6, H=3, dh=4 (explicit), Hkv=1, L=4, window 5, E=3, k=2, f_e=2, V=7."""
    config = {
        "model_type": "gpt_oss",
        "hidden_size": 6,
        "num_hidden_layers": 4,
        "num_attention_heads": 3,
        "num_key_value_heads": 1,
        "head_dim": 4,
        "intermediate_size": 2,
        "num_local_experts": 3,
        "num_experts_per_tok": 2,
        "layer_types": ["sliding_attention", "full_attention", "full_attention", "sliding_attention"],
        "sliding_window": 5,
        "vocab_size": 7,
        "tie_word_embeddings": False,
    }
    return config | overrides


def test_gpt_oss_sliding_toy() -> None:
    attn = 6 * 3 * 4 + 2 * 6 * 1 * 4 + 3 * 4 * 6  # 72 + 48 + 72 = 192
    expert = 3 * 6 * 2  # 36
    router = 6 * 3  # 18
    total = 4 * (attn + 3 * expert + router) + 2 * 7 * 6  # 768 + 504 + 84
    assert total == 1356
    structure = model_structure(gpt_oss_toy())
    assert structure.total_params == total
    assert structure.active_params == total - 4 * (3 - 2) * expert == 1212
    assert [layer.sliding_window for layer in structure.layers] == [5, None, None, 5]
    assert {layer.kv_elems_per_token for layer in structure.layers} == {2 * 1 * 4}


def test_gpt_oss_default_layer_types_alternate() -> None:
    config = {k: v for k, v in gpt_oss_toy().items() if k != "layer_types"}
    assert [layer.sliding_window for layer in model_structure(config).layers] == [5, None, 5, None]


def test_mixtral_sliding_window_applies_to_every_layer() -> None:
    config = {
        "model_type": "mixtral",
        "hidden_size": 8,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "intermediate_size": 4,
        "num_local_experts": 2,
        "num_experts_per_tok": 1,
        "vocab_size": 5,
        "sliding_window": 16,
    }
    assert [layer.sliding_window for layer in model_structure(config).layers] == [16, 16]
    # null key/value heads means MHA, as transformers' MixtralConfig does
    mha = model_structure(config | {"num_key_value_heads": None})
    assert mha.layers[0].kv_elems_per_token == 2 * 2 * 4
