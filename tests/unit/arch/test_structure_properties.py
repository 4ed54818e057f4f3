"""Properties of model structures over random configs, and the errors bad configs raise."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capbench.arch.families import SUPPORTED_MODEL_TYPES, model_structure
from capbench.errors import CapbenchError
from tests.support.paths import DATA

MODELS = DATA / "models"


def load(name: str) -> dict[str, Any]:
    config: dict[str, Any] = json.loads((MODELS / name).read_text())
    return config


small = st.integers(min_value=1, max_value=64)


@st.composite
def moe_configs(draw: st.DrawFn) -> dict[str, Any]:
    """A random config of one of three shapes: uniform (mixtral/olmoe), qwen2_moe, deepseek_v2."""
    heads = draw(st.integers(1, 8))
    layers = draw(st.integers(1, 6))
    experts = draw(st.integers(1, 16))
    common = {
        "hidden_size": heads * draw(st.integers(1, 16)),
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_experts_per_tok": draw(st.integers(1, experts)),
        "vocab_size": draw(st.integers(1, 1000)),
        "tie_word_embeddings": draw(st.booleans()),
        "intermediate_size": draw(small),
    }
    family = draw(st.sampled_from(["mixtral", "olmoe", "qwen2_moe", "deepseek_v2"]))
    if family in ("mixtral", "olmoe"):
        return common | {"model_type": family, "num_key_value_heads": heads, "num_local_experts": experts}
    if family == "qwen2_moe":
        return common | {
            "model_type": family,
            "num_key_value_heads": draw(st.sampled_from([h for h in range(1, heads + 1) if heads % h == 0])),
            "num_experts": experts,
            "moe_intermediate_size": draw(small),
            "shared_expert_intermediate_size": draw(st.integers(0, 64)),
            "mlp_only_layers": draw(st.lists(st.integers(0, layers - 1), max_size=layers - 1, unique=True)),
            "decoder_sparse_step": 1,
        }
    return common | {
        "model_type": family,
        "n_routed_experts": experts,
        "moe_intermediate_size": draw(small),
        "n_shared_experts": draw(st.integers(0, 3)),
        "first_k_dense_replace": draw(st.integers(0, layers - 1)),
        "q_lora_rank": draw(st.none() | small),
        "kv_lora_rank": draw(small),
        "qk_nope_head_dim": draw(small),
        "qk_rope_head_dim": draw(small),
        "v_head_dim": draw(small),
    }


def experts_of(config: dict[str, Any]) -> int:
    return int(config.get("num_local_experts") or config.get("num_experts") or config["n_routed_experts"])


@settings(max_examples=200, deadline=None)
@given(moe_configs())
def test_active_never_exceeds_total(config: dict[str, Any]) -> None:
    structure = model_structure(config)
    assert 0 < structure.active_params <= structure.total_params
    assert structure.linear_params_per_token <= structure.active_params


@settings(max_examples=200, deadline=None)
@given(moe_configs())
def test_top_k_equal_to_experts_is_dense(config: dict[str, Any]) -> None:
    experts = experts_of(config)
    structure = model_structure(config | {"num_experts_per_tok": experts})
    assert structure.active_params == structure.total_params
    assert model_structure(config).with_top_k(experts).active_params == structure.total_params


@settings(max_examples=200, deadline=None)
@given(moe_configs())
def test_each_extra_expert_per_token_adds_one_expert_per_moe_layer(config: dict[str, Any]) -> None:
    structure = model_structure(config)
    if structure.top_k < structure.num_experts:
        more = structure.with_top_k(structure.top_k + 1)
        assert more.active_params - structure.active_params == structure.num_moe_layers * structure.expert_params


@settings(max_examples=200, deadline=None)
@given(moe_configs())
def test_tied_embeddings_counted_once(config: dict[str, Any]) -> None:
    tied = model_structure(config | {"tie_word_embeddings": True})
    untied = model_structure(config | {"tie_word_embeddings": False})
    vd = tied.vocab_size * tied.hidden_size
    assert untied.total_params - tied.total_params == vd
    assert untied.active_params - tied.active_params == vd


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("mixtral-8x7b.json", "num_local_experts"),
        ("mixtral-8x7b.json", "num_experts_per_tok"),
        ("qwen3-30b-a3b.json", "moe_intermediate_size"),
        ("qwen1.5-moe-a2.7b.json", "shared_expert_intermediate_size"),
        ("deepseek-v2-lite.json", "n_shared_experts"),
        ("deepseek-v2-lite.json", "kv_lora_rank"),
        ("deepseek-v2-lite.json", "q_lora_rank"),
        ("deepseek-v2-lite.json", "first_k_dense_replace"),
        ("olmoe-1b-7b.json", "hidden_size"),
        ("gpt-oss-20b.json", "vocab_size"),
    ],
)
def test_missing_field_names_field_and_model_type(name: str, field: str) -> None:
    config = load(name)
    del config[field]
    with pytest.raises(CapbenchError) as error:
        model_structure(config)
    message = str(error.value)
    assert repr(field) in message
    assert repr(config["model_type"]) in message


def test_missing_nested_dbrx_field() -> None:
    config = load("dbrx-instruct.json")
    del config["ffn_config"]["moe_top_k"]
    with pytest.raises(CapbenchError) as error:
        model_structure(config)
    assert "config.json ffn_config for model_type 'dbrx' is missing the required field 'moe_top_k'" in str(error.value)


@pytest.mark.parametrize("model_type", ["llama", "mixtral-8x7b", "Mixtral", 7])
def test_unknown_model_type_lists_supported_and_how_to_add(model_type: Any) -> None:
    with pytest.raises(CapbenchError) as error:
        model_structure(load("mixtral-8x7b.json") | {"model_type": model_type})
    message = str(error.value)
    assert all(name in message for name in SUPPORTED_MODEL_TYPES)
    assert "capbench/arch/families" in message and "FAMILIES" in message


def test_missing_model_type() -> None:
    config = load("mixtral-8x7b.json")
    del config["model_type"]
    with pytest.raises(CapbenchError, match="no 'model_type'"):
        model_structure(config)


def test_supported_model_types() -> None:
    assert set(SUPPORTED_MODEL_TYPES) == {
        "mixtral",
        "qwen2_moe",
        "qwen3_moe",
        "olmoe",
        "deepseek_v2",
        "deepseek_v3",
        "gpt_oss",
        "dbrx",
    }


@pytest.mark.parametrize(
    ("name", "change", "match"),
    [
        ("mixtral-8x7b.json", {"num_experts_per_tok": 9}, "exceeds"),
        ("mixtral-8x7b.json", {"hidden_size": 4096.5}, "must be an integer"),
        ("mixtral-8x7b.json", {"hidden_size": True}, "must be an integer"),
        ("mixtral-8x7b.json", {"num_attention_heads": 0}, "must be >= 1"),
        ("mixtral-8x7b.json", {"num_experts": 16}, "conflicting aliases"),
        ("qwen3-30b-a3b.json", {"mlp_only_layers": [48]}, "only 48 layers"),
        ("qwen3-30b-a3b.json", {"mlp_only_layers": list(range(48))}, "no MoE layer"),
        ("gpt-oss-20b.json", {"layer_types": ["full_attention"]}, "has 1 entries"),
        ("gpt-oss-20b.json", {"layer_types": ["chunked_attention"] * 24}, "unsupported 'layer_types'"),
        ("gpt-oss-20b.json", {"sliding_window": None}, "no 'sliding_window'"),
        ("dbrx-instruct.json", {"tie_word_embeddings": True}, "does not support"),
        ("mixtral-8x7b.json", {"tie_word_embeddings": "yes"}, "true or false"),
    ],
)
def test_bad_values(name: str, change: dict[str, Any], match: str) -> None:
    with pytest.raises(CapbenchError, match=match):
        model_structure(load(name) | change)


def test_key_aliases_across_transformers_versions() -> None:
    def renamed(name: str, old: str, new: str) -> dict[str, Any]:
        config = load(name)
        config[new] = config.pop(old)
        return config

    for name, old, new in [
        ("mixtral-8x7b.json", "num_local_experts", "num_experts"),
        ("qwen3-30b-a3b.json", "num_experts", "num_local_experts"),
        ("qwen1.5-moe-a2.7b.json", "num_experts", "num_local_experts"),
        ("olmoe-1b-7b.json", "num_experts", "num_local_experts"),
        ("deepseek-v2-lite.json", "n_routed_experts", "num_local_experts"),
        ("gpt-oss-20b.json", "num_local_experts", "num_experts"),
        ("dbrx-instruct.json", "d_model", "hidden_size"),
        ("dbrx-instruct.json", "n_heads", "num_attention_heads"),
        ("dbrx-instruct.json", "n_layers", "num_hidden_layers"),
    ]:
        assert model_structure(renamed(name, old, new)) == model_structure(load(name)), (name, new)
    gpt_oss = load("gpt-oss-20b.json")
    del gpt_oss["num_experts_per_tok"]  # the original gpt-oss key experts_per_token remains
    assert model_structure(gpt_oss) == model_structure(load("gpt-oss-20b.json"))
    olmoe = load("olmoe-1b-7b.json")
    del olmoe["num_key_value_heads"]  # OlmoeConfig: absent means H
    assert model_structure(olmoe) == model_structure(load("olmoe-1b-7b.json"))


def test_tie_word_embeddings_default_is_false() -> None:
    config = load("qwen3-30b-a3b.json")
    del config["tie_word_embeddings"]
    assert model_structure(config).tie_word_embeddings is False
