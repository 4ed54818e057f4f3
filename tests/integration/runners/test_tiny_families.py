"""Tiny models of three MoE families (Qwen3-MoE, Mixtral, DeepSeek-V2 with MLA), built offline for vLLM tests.

The offline checks here (config fields, parameter counts against capbench's own structure model, dtype on disk,
determinism) run everywhere. Each family is served by a launched vLLM in
``tests/integration/runners/test_vllm_runner.py``, whose step records hold one routing entry per MoE layer vLLM
routes, checked against capbench's layer count on every step.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from capbench.arch.checkpoint import group_elements, tensor_group
from capbench.arch.families import model_structure
from capbench.cli.model_info import model_info
from capbench.errors import CapbenchError
from capbench.models.checkpoint import stored_group_dtypes
from capbench.models.tiny import TINY_FAMILIES, TINY_FAMILY_DTYPES, TinyFamilySpec, build_tiny_family, build_tiny_moe

pytestmark = pytest.mark.integration

STORED_BYTES = {"float32": 4, "bfloat16": 2}
EXPERT_WEIGHT = re.compile(r"model\.layers\.(?P<layer>\d+)\.\w+\.experts\.(?P<expert>\d+)\..+")


@pytest.fixture(scope="module")
def family_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every tiny family, built once for this module into one private root."""
    root = tmp_path_factory.mktemp("tiny-families")
    return {family: build_tiny_family(family, root=root) for family in TINY_FAMILIES}


def read_config(model_dir: Path) -> dict[str, Any]:
    return dict(json.loads((model_dir / "config.json").read_text()))


def tensor_shapes_and_dtypes(model_dir: Path) -> dict[str, tuple[list[int], str]]:
    """``name -> (shape, safetensors dtype)`` for every tensor in ``model.safetensors`` (nothing loaded)."""
    from safetensors import safe_open

    with safe_open(str(model_dir / "model.safetensors"), framework="pt") as handle:
        names = list(handle.keys())
        return {name: (handle.get_slice(name).get_shape(), handle.get_slice(name).get_dtype()) for name in names}


def digest(model_dir: Path) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(model_dir.iterdir())}


def test_qwen3_moe_family_is_the_embedded_default(family_dirs: dict[str, Path]) -> None:
    root = family_dirs["qwen3_moe"].parent
    assert build_tiny_family("qwen3_moe", root=root) == build_tiny_moe(root=root) == family_dirs["qwen3_moe"]


def test_names_hold_family_and_dtype(family_dirs: dict[str, Path]) -> None:
    assert family_dirs["mixtral"].name.startswith("capbench-tiny-mixtral-fp32-e8k2-s0-")
    assert family_dirs["deepseek_v2"].name.startswith("capbench-tiny-deepseekv2-bf16-e8k2-s0-")
    assert len({path.name for path in family_dirs.values()}) == len(TINY_FAMILIES)


def test_unknown_family_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CapbenchError, match="no tiny model for model_type 'olmoe'"):
        build_tiny_family("olmoe", root=tmp_path)
    with pytest.raises(CapbenchError, match="no tiny spec"):
        TinyFamilySpec("qwen2_moe")


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_config_fields(family_dirs: dict[str, Path], family: str) -> None:
    config = read_config(family_dirs[family])
    structure = model_structure(config)
    assert config["model_type"] == family
    assert config["dtype"] == TINY_FAMILY_DTYPES[family]
    assert config["vocab_size"] == 512
    assert 128 <= config["hidden_size"] <= 256 and 2 <= config["num_hidden_layers"] <= 4
    assert (structure.num_experts, structure.top_k) == (8, 2)
    assert config["eos_token_id"] == 0  # "<|endoftext|>", the tokenizer's first special token
    if family == "deepseek_v2":
        assert config["n_routed_experts"] == 8 and config["n_shared_experts"] == 1
        assert config["kv_lora_rank"] == 512 and config["qk_rope_head_dim"] == 64
        assert config["num_key_value_heads"] == config["num_attention_heads"]
        assert config["topk_method"] == "greedy" and config["first_k_dense_replace"] == 1
        assert [layer.kind for layer in structure.layers] == ["dense", "moe", "moe"]
        assert {layer.attention for layer in structure.layers} == {"mla"}
        assert structure.layers[0].kv_elems_per_token == 512 + 64
    else:
        assert all(layer.kind == "moe" for layer in structure.layers)
        assert {layer.attention for layer in structure.layers} == {"mha"}
    if family == "mixtral":
        assert config["num_local_experts"] == 8 and config["sliding_window"] is None


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_weights_match_structure_model_and_dtype(family_dirs: dict[str, Path], family: str) -> None:
    """Weight matrices on disk add up to capbench's total_params, group by group, and model-info counts every
    group in the dtype its tensors are stored in (read here with the safetensors library, not capbench's header
    reader). Norm vectors are 1-D and not counted."""
    model_dir = family_dirs[family]
    config = read_config(model_dir)
    structure = model_structure(config)
    tensors = tensor_shapes_and_dtypes(model_dir)
    matrices = sum(math.prod(shape) for shape, _ in tensors.values() if len(shape) >= 2)
    assert matrices == structure.total_params
    per_group = group_elements(tensors)
    assert sum(sum(per_dtype.values()) for per_dtype in per_group.values()) == matrices  # every matrix has a group
    info = model_info(config, stored=stored_group_dtypes(model_dir))
    assert info["dtype_source"].startswith("checkpoint tensors")
    sizes = {
        "attention": sum(layer.attn_params for layer in structure.layers),
        "router": structure.router_params_total,
        "shared_experts": sum(layer.ffn_params for layer in structure.layers if layer.is_moe),
        "dense_ffn": sum(layer.ffn_params for layer in structure.layers if not layer.is_moe),
        "experts": structure.routed_expert_params_total,
        "embeddings": structure.embedding_params,
        "lm_head": structure.lm_head_params,
    }
    info_bytes_key = {"experts": "routed_experts", "embeddings": "embedding"}
    for group, per_dtype in per_group.items():
        assert sum(per_dtype.values()) == sizes[group], group
        assert len(per_dtype) == 1, f"{group} is stored in several dtypes: {per_dtype}"
        (stored,) = per_dtype
        assert info["weight_dtypes"][group] == stored, group
        on_disk = sum(per_dtype.values()) * STORED_BYTES[stored]
        assert info["weight_bytes"][info_bytes_key.get(group, group)] == on_disk, group
    assert set(per_group) >= {"attention", "router", "experts", "embeddings", "lm_head"}
    # byte widths follow the tensors: the router's width is its own dtype's wherever that differs
    router = info["weight_dtypes"]["router"]
    assert info["byte_widths"]["router"] == (None if router == info["dtypes"]["weights"] else STORED_BYTES[router])
    # The checkpoint's MoE layers (those with routed experts, ``mlp`` or Mixtral's ``block_sparse_moe``) are the
    # ones the structure model says, each with E experts.
    experts: dict[int, set[int]] = {}
    for name in tensors:
        if match := EXPERT_WEIGHT.fullmatch(name):
            experts.setdefault(int(match["layer"]), set()).add(int(match["expert"]))
    assert sorted(experts) == [layer.index for layer in structure.moe_layers]
    assert all(found == set(range(structure.num_experts)) for found in experts.values())
    size = sum(f.stat().st_size for f in model_dir.iterdir())
    assert size < 10 * 2**20


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_hf_runner_dtypes_are_the_loaded_tensors(family_dirs: dict[str, Path], family: str) -> None:
    """What the hf runner writes into run.json ``dtypes`` is, tensor by tensor, the dtype of the loaded model's
    weights (transformers may keep routers in float32 inside a bfloat16 model), so scoring counts those bytes."""
    from capbench.config import RunSpec
    from capbench.runners.hf.runner import HFRunner

    model_dir = family_dirs[family]
    dtype = TINY_FAMILY_DTYPES[family]
    spec = RunSpec(model=str(model_dir), dtype=dtype, device="cpu", record_experts=False)  # no DeepSeek hooks in hf
    runner = HFRunner(spec, model_dir)
    try:
        dtypes = runner.dtypes()
        key = {"experts": "experts", "embeddings": "embeddings", "lm_head": "embeddings"}
        checked = 0
        for name, param in runner.model.named_parameters():
            group = tensor_group(name)
            if group is None or param.ndim < 2:
                continue
            expected = (
                dtypes.get("router", dtypes["weights"]) if group == "router" else dtypes[key.get(group, "weights")]
            )
            assert str(param.dtype) == f"torch.{expected}", (name, dtypes)
            checked += 1
        assert checked > 0
        assert dtypes["compute"] == dtypes["kv"] == dtype
    finally:
        runner.close()


@pytest.mark.parametrize("family", ["mixtral", "deepseek_v2"])
def test_deterministic_across_roots(tmp_path: Path, family: str) -> None:
    a = build_tiny_family(family, root=tmp_path / "a")
    b = build_tiny_family(family, root=tmp_path / "b")
    c = build_tiny_family(family, root=tmp_path / "c", seed=1)
    assert a.name == b.name and digest(a) == digest(b)
    assert digest(a)["model.safetensors"] != digest(c)["model.safetensors"]
    assert digest(a)["tokenizer.json"] == digest(c)["tokenizer.json"]
    mtime = (a / "model.safetensors").stat().st_mtime_ns
    assert build_tiny_family(family, root=tmp_path / "a") == a  # cached
    assert (a / "model.safetensors").stat().st_mtime_ns == mtime
    assert [p.name for p in (tmp_path / "a").iterdir()] == [a.name]  # no leftover temporary directory


def test_families_share_the_default_tokenizer(family_dirs: dict[str, Path]) -> None:
    tokenizers = {digest(path)["tokenizer.json"] for path in family_dirs.values()}
    assert len(tokenizers) == 1
