"""Dtype names, byte widths and quantization configs (docs/metrics.md §2, "Byte widths")."""

from __future__ import annotations

import json
import warnings
from typing import Any

import pytest

from capbench.arch.dtypes import (
    ByteWidths,
    byte_widths,
    canonical_dtype,
    dtype_bytes,
    dtypes_from_config,
    weight_bytes,
    weight_group_dtypes,
)
from capbench.arch.families import model_structure
from capbench.arch.quantization import module_matches
from capbench.errors import CapbenchError
from tests.support.paths import DATA

MODELS = DATA / "models"


def load(name: str) -> dict[str, Any]:
    config: dict[str, Any] = json.loads((MODELS / name).read_text())
    return config


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("float32", 4),
        ("fp32", 4),
        ("torch.float32", 4),
        ("bfloat16", 2),
        ("bf16", 2),
        ("torch.bfloat16", 2),
        ("float16", 2),
        ("fp16", 2),
        ("half", 2),
        ("FP16", 2),
        ("fp8", 1),
        ("fp8_e4m3", 1),
        ("float8_e4m3fn", 1),
        ("fp8_e5m2", 1),
        ("int8", 1),
        ("int4", 0.5),
        ("int4_g128", (4 + 16 / 128) / 8),  # 4.125 bits = 0.515625 bytes
        ("int4_g32", (4 + 16 / 32) / 8),  # 4.5 bits
        ("int4_g128_zp", (4 + (16 + 4) / 128) / 8),  # 4.15625 bits with 4-bit zero points
        ("int8_g128", (8 + 16 / 128) / 8),
        ("mxfp4", 4.25 / 8),
        ("nvfp4", 4.5 / 8),
        ("nf4", 4.5 / 8),
        ("bnb_nf4_dq", (4 + 8 / 64 + 32 / (64 * 256)) / 8),
    ],
)
def test_dtype_bytes(name: str, expected: float) -> None:
    assert dtype_bytes(name) == expected


def test_int4_g128_is_4_125_bits() -> None:
    assert dtype_bytes("int4_g128") * 8 == 4.125


def test_canonical_names() -> None:
    assert canonical_dtype("torch.bfloat16") == "bfloat16"
    assert canonical_dtype("fp8") == "float8_e4m3fn"
    assert canonical_dtype(" Half ") == "float16"
    assert canonical_dtype("int4_g64_zp") == "int4_g64_zp"


@pytest.mark.parametrize("name", ["float64", "int4_g0", "int5_g128", "fp6", "", "int4-g128"])
def test_unknown_dtype_lists_known_names(name: str) -> None:
    with pytest.raises(CapbenchError) as error:
        dtype_bytes(name)
    message = str(error.value)
    assert "unknown dtype" in message
    assert "bfloat16" in message and "mxfp4" in message and "int{2,3,4,8}_g{G}" in message


def test_unquantized_config() -> None:
    config = load("mixtral-8x7b.json")
    expected = dict.fromkeys(("weights", "experts", "embeddings", "kv", "compute"), "bfloat16")
    assert dtypes_from_config(config) == expected
    assert dtypes_from_config(config, kv_dtype="auto") == expected
    assert dtypes_from_config(config, kv_dtype="fp8")["kv"] == "float8_e4m3fn"
    assert byte_widths(dtypes_from_config(config, kv_dtype="fp8")) == ByteWidths(2, 2, 2, 1)


def test_transformers_5_dtype_key() -> None:
    config = load("qwen3-30b-a3b.json")
    config["dtype"] = config.pop("torch_dtype")
    assert dtypes_from_config(config)["weights"] == "bfloat16"


def test_missing_dtype_is_an_error() -> None:
    config = load("olmoe-1b-7b.json")
    del config["torch_dtype"]
    with pytest.raises(CapbenchError, match="neither 'dtype' nor 'torch_dtype'"):
        dtypes_from_config(config)


def test_deepseek_v3_fp8() -> None:
    """Block fp8 (W8A8): linear layers fp8, embeddings/lm_head and router bf16, KV in the float dtype."""
    config = load("deepseek-v3.json")
    assert dtypes_from_config(config) == {
        "weights": "float8_e4m3fn",
        "experts": "float8_e4m3fn",
        "embeddings": "bfloat16",
        "kv": "bfloat16",
        "compute": "float8_e4m3fn",
        "router": "bfloat16",  # routers stay in bf16: their own width b_r
    }
    groups = weight_group_dtypes(config)
    assert groups["router"] == "bfloat16"
    assert groups["lm_head"] == "bfloat16"
    assert byte_widths(dtypes_from_config(config)) == ByteWidths(weights=1, experts=1, embeddings=2, kv=2, router=2)


def test_gpt_oss_mxfp4_with_modules_to_not_convert() -> None:
    config = load("gpt-oss-20b.json")  # no torch_dtype in the published config: bf16 for MXFP4 checkpoints
    dtypes = dtypes_from_config(config)
    assert dtypes == {
        "weights": "bfloat16",
        "experts": "mxfp4",
        "embeddings": "bfloat16",
        "kv": "bfloat16",
        "compute": "bfloat16",
    }
    assert byte_widths(dtypes) == ByteWidths(weights=2, experts=4.25 / 8, embeddings=2, kv=2)
    groups = weight_group_dtypes(config)
    assert groups["attention"] == groups["router"] == groups["embeddings"] == groups["lm_head"] == "bfloat16"
    # keeping the experts out of the conversion leaves everything bf16
    skipped = config | {
        "quantization_config": {
            "quant_method": "mxfp4",
            "modules_to_not_convert": ["model.layers.*.mlp.experts"],
        }
    }
    assert dtypes_from_config(skipped)["experts"] == "bfloat16"


@pytest.mark.parametrize(("name", "card_gib"), [("gpt-oss-20b.json", 12.8), ("gpt-oss-120b.json", 60.8)])
def test_gpt_oss_checkpoint_bytes_match_model_card(name: str, card_gib: float) -> None:
    """Model card "Checkpoint Size": 12.8 GiB and 60.8 GiB (rounded); ours 12.80 and 60.69 GiB.

    Ours leaves out the bf16 biases, norms and sinks: for 120b the expert biases alone are
    (2·2880 + 2880)·128·36 = 39.8 M values = 0.074 GiB, which is most of the 0.11 GiB gap.
    """
    config = load(name)
    total = weight_bytes(model_structure(config), weight_group_dtypes(config))["total"]
    assert abs(card_gib - total / 2**30) < 0.15


def gptq(**qc: Any) -> dict[str, Any]:
    config = load("qwen3-30b-a3b.json") | {"torch_dtype": "float16"}
    config["quantization_config"] = {"quant_method": "gptq", "bits": 4, "group_size": 128, "sym": True} | qc
    return config


def test_gptq_int4_g128() -> None:
    dtypes = dtypes_from_config(gptq())
    assert dtypes == {
        "weights": "int4_g128",
        "experts": "int4_g128",
        "embeddings": "float16",
        "kv": "float16",
        "compute": "float16",  # W4A16: the GEMMs run in the activation dtype
        "router": "float16",  # the router is not quantized: its own width b_r
    }
    assert byte_widths(dtypes).experts * 8 == 4.125
    assert weight_group_dtypes(gptq())["router"] == "float16"
    assert dtypes_from_config(gptq(sym=False))["experts"] == "int4_g128_zp"
    assert dtypes_from_config(gptq(group_size=-1))["experts"] == "int4"
    assert dtypes_from_config(gptq(lm_head=True))["embeddings"] == "int4_g128"
    with pytest.raises(CapbenchError, match="unsupported bits"):
        dtypes_from_config(gptq(bits=5))


def test_awq_has_zero_points() -> None:
    config = gptq()
    config["quantization_config"] = {
        "quant_method": "awq",
        "bits": 4,
        "group_size": 128,
        "zero_point": True,
        "modules_to_not_convert": ["gate"],
    }
    dtypes = dtypes_from_config(config)
    assert dtypes["experts"] == dtypes["weights"] == "int4_g128_zp"
    assert dtype_bytes(dtypes["experts"]) == (4 + 20 / 128) / 8


def compressed_tensors(groups: dict[str, Any], ignore: list[str]) -> dict[str, Any]:
    config = load("qwen1.5-moe-a2.7b.json")
    config["quantization_config"] = {
        "quant_method": "compressed-tensors",
        "format": "float-quantized",
        "config_groups": groups,
        "ignore": ignore,
    }
    return config


def test_compressed_tensors_fp8_w8a8() -> None:
    groups = {
        "group_0": {
            "targets": ["Linear"],
            "weights": {"num_bits": 8, "type": "float", "strategy": "channel", "symmetric": True},
            "input_activations": {"num_bits": 8, "type": "float", "strategy": "token", "dynamic": True},
        }
    }
    config = compressed_tensors(groups, ["lm_head", "re:.*mlp.gate$", "re:.*shared_expert_gate$"])
    assert dtypes_from_config(config) == {
        "weights": "float8_e4m3fn",
        "experts": "float8_e4m3fn",
        "embeddings": "bfloat16",
        "kv": "bfloat16",
        "compute": "float8_e4m3fn",
        "router": "bfloat16",  # the routers are in the ignore list: their own width b_r
    }
    # lm_head is a Linear: without the ignore entry it is quantized too
    assert dtypes_from_config(compressed_tensors(groups, []))["embeddings"] == "float8_e4m3fn"


def test_compressed_tensors_w4a16_experts_only() -> None:
    groups = {
        "group_0": {
            "targets": ["re:.*mlp.experts.*"],
            "weights": {
                "num_bits": 4,
                "type": "int",
                "strategy": "group",
                "group_size": 128,
                "symmetric": True,
            },
            "input_activations": None,
        }
    }
    dtypes = dtypes_from_config(compressed_tensors(groups, ["lm_head"]))
    assert (dtypes["experts"], dtypes["weights"], dtypes["compute"]) == ("int4_g128", "bfloat16", "bfloat16")


def test_compressed_tensors_nvfp4_w4a4() -> None:
    groups = {
        "group_0": {
            "targets": ["Linear"],
            "weights": {"num_bits": 4, "type": "float", "strategy": "tensor_group", "group_size": 16},
            "input_activations": {
                "num_bits": 4,
                "type": "float",
                "strategy": "tensor_group",
                "group_size": 16,
            },
        }
    }
    dtypes = dtypes_from_config(compressed_tensors(groups, ["lm_head"]))
    assert (dtypes["experts"], dtypes["compute"]) == ("nvfp4", "nvfp4")
    assert byte_widths(dtypes).experts * 8 == 4.5


def test_fp8_skipping_attention_keeps_it_in_bf16() -> None:
    config = load("qwen3-30b-a3b.json") | {
        "quantization_config": {"quant_method": "fp8", "modules_to_not_convert": ["self_attn", "lm_head"]}
    }
    groups = weight_group_dtypes(config)
    assert (groups["attention"], groups["experts"]) == ("bfloat16", "float8_e4m3fn")
    assert dtypes_from_config(config)["weights"] == "bfloat16"  # qwen3 has no shared expert or dense FFN


def test_partial_per_layer_skip_takes_majority_and_warns() -> None:
    config = load("mixtral-8x7b.json") | {
        "quantization_config": {"quant_method": "fp8", "ignored_layers": ["model.layers.0.self_attn"]}
    }
    with pytest.warns(UserWarning, match="attention weights on 3% of their layers"):
        groups = weight_group_dtypes(config)
    assert groups["attention"] == "float8_e4m3fn"


def test_bitsandbytes_nf4() -> None:
    config = load("mixtral-8x7b.json") | {
        "quantization_config": {
            "quant_method": "bitsandbytes",
            "load_in_4bit": True,
            "bnb_4bit_quant_type": "nf4",
            "bnb_4bit_use_double_quant": True,
            "bnb_4bit_compute_dtype": "bfloat16",
        }
    }
    dtypes = dtypes_from_config(config)
    assert (dtypes["experts"], dtypes["embeddings"], dtypes["compute"]) == (
        "bnb_nf4_dq",
        "bfloat16",
        "bfloat16",
    )


def test_unknown_quant_method() -> None:
    config = load("mixtral-8x7b.json") | {"quantization_config": {"quant_method": "hqq"}}
    with pytest.raises(CapbenchError) as error:
        dtypes_from_config(config)
    message = str(error.value)
    assert "'hqq'" in message and "gptq" in message and "mxfp4" in message and "compressed-tensors" in message


def test_byte_widths_embeddings_default_to_weights() -> None:
    widths = byte_widths({"weights": "fp8", "experts": "int4_g128", "kv": "bf16"})
    assert widths == ByteWidths(weights=1, experts=0.515625, embeddings=1, kv=2)
    with pytest.raises(CapbenchError, match="weights"):
        byte_widths({"experts": "bf16", "kv": "bf16"})


def test_weight_bytes_of_bf16_model_is_two_bytes_per_param() -> None:
    config = load("qwen1.5-moe-a2.7b.json")
    structure = model_structure(config)
    totals = weight_bytes(structure, weight_group_dtypes(config))
    assert totals["total"] == 2 * structure.total_params
    assert totals["dense_weights"] == 2 * structure.dense_params
    assert totals["routed_experts"] == 2 * structure.routed_expert_params_total


def test_dtypes_survive_warnings_as_errors() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dtypes = dtypes_from_config(load("gpt-oss-120b.json"))
    assert dtypes["experts"] == "mxfp4" and dtypes["weights"] == dtypes["kv"] == "bfloat16"


@pytest.mark.parametrize(
    ("name", "pattern", "expected"),
    [
        ("model.layers.3.mlp.gate", "mlp.gate", True),
        ("model.layers.3.mlp.gate_proj", "mlp.gate", False),
        ("model.layers.3.self_attn.q_proj", "model.layers.*.self_attn", True),
        ("model.layers.3.mlp.router", "model.layers.*.self_attn", False),
        ("model.layers.3.self_attn.q_proj", "re:.*self_attn.*", True),
        ("model.layers.13.self_attn.q_proj", "model.layers.1", False),
        ("model.layers.1.self_attn.q_proj", "model.layers.1", True),
        ("lm_head", "lm_head", True),
        ("model.layers.3.block_sparse_moe.gate", "gate", True),
        ("model.layers.3.mlp.shared_expert_gate", "gate", False),
        ("model.layers.3.self_attn.q_proj", "self_attn", True),
        ("model.layers.3.self_attn.q_proj", "q_proj", True),
    ],
)
def test_module_matches(name: str, pattern: str, expected: bool) -> None:
    assert module_matches(name, pattern) is expected
