"""Which dtype each weight group of a checkpoint is stored in, read from ``quantization_config``.

Weight groups: ``attention``, ``router``, ``shared_experts``, ``dense_ffn``, ``experts`` (routed),
``embeddings``, ``lm_head``. A quantization method converts a fixed set of groups (its *scope*), minus the
modules its skip list names (``modules_to_not_convert``, ``ignored_layers``, compressed-tensors ``ignore``,
bitsandbytes ``llm_int8_skip_modules``); everything else keeps the checkpoint's float dtype (``dtype`` /
``torch_dtype``). Scopes:

- ``mxfp4`` (gpt-oss): routed experts only.
- ``fp8`` (fine-grained / block fp8, W8A8), ``fbgemm_fp8`` (W8A8), ``gptq`` / ``awq`` (weight-only int),
  ``bitsandbytes``: attention, shared experts, dense FFN and routed experts. The lm_head stays in float
  (transformers skips the output embedding; GPTQ only with ``"lm_head": true``).
- ``compressed-tensors``: the modules each ``config_groups`` entry targets (``Linear`` = every linear
  layer, lm_head included unless ignored).

Routers always keep the float dtype (engines build MoE routers unquantized, e.g. vLLM with
``quant_config=None``) and embeddings are never quantized (not linear layers).

Skip-list matching (:func:`module_matches`): a ``re:`` pattern is a regular expression matched at the start
of the module name (compressed-tensors); any other pattern matches when it occurs in the name as a run of
whole dotted components (``mlp.gate`` matches ``model.layers.3.mlp.gate`` but not ``…mlp.gate_proj``;
``self_attn`` matches every module inside an attention block, as the substring rules of transformers 4.x
and AutoAWQ do), or as a regular expression anchored at the start and ending at a module boundary
(transformers 5's ``should_convert_module``, e.g. gpt-oss's ``model.layers.*.self_attn``).

Each group is probed with the module names the supported families use, on every layer of the right kind;
a group skipped on some layers but not others takes the majority and raises a warning.

Names returned here are dtype names in :mod:`capbench.arch.dtypes` spellings (canonicalised there).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from capbench.arch.structure import ModelStructure
from capbench.errors import CapbenchError

WEIGHT_GROUPS: tuple[str, ...] = (
    "attention",
    "router",
    "shared_experts",
    "dense_ffn",
    "experts",
    "embeddings",
    "lm_head",
)
_LINEAR_NO_HEAD = frozenset({"attention", "shared_experts", "dense_ffn", "experts"})
_MOE_GROUPS = frozenset({"router", "shared_experts", "experts"})

#: Module names each group has in the supported families ({i} = layer index).
_PROBES: Mapping[str, tuple[str, ...]] = {
    "attention": (
        "model.layers.{i}.self_attn.q_proj",
        "model.layers.{i}.self_attn.q_a_proj",
        "model.layers.{i}.self_attn.kv_a_proj_with_mqa",
        "model.layers.{i}.self_attn.o_proj",
        "transformer.blocks.{i}.norm_attn_norm.attn.Wqkv",
        "transformer.blocks.{i}.norm_attn_norm.attn.out_proj",
    ),
    "router": (
        "model.layers.{i}.mlp.gate",
        "model.layers.{i}.block_sparse_moe.gate",
        "model.layers.{i}.mlp.router",
        "transformer.blocks.{i}.ffn.router.layer",
    ),
    "shared_experts": (
        "model.layers.{i}.mlp.shared_expert.gate_proj",
        "model.layers.{i}.mlp.shared_expert.down_proj",
        "model.layers.{i}.mlp.shared_experts.gate_proj",
        "model.layers.{i}.mlp.shared_experts.down_proj",
    ),
    "dense_ffn": ("model.layers.{i}.mlp.gate_proj", "model.layers.{i}.mlp.down_proj"),
    "experts": (
        "model.layers.{i}.mlp.experts",
        "model.layers.{i}.mlp.experts.0.gate_proj",
        "model.layers.{i}.mlp.experts.0.down_proj",
        "model.layers.{i}.mlp.experts.gate_up_proj",
        "model.layers.{i}.block_sparse_moe.experts.0.w1",
        "model.layers.{i}.block_sparse_moe.experts.0.w2",
        "transformer.blocks.{i}.ffn.experts.mlp",
    ),
    "embeddings": ("model.embed_tokens", "transformer.wte"),
    "lm_head": ("lm_head",),
}

SUPPORTED_QUANT_METHODS: tuple[str, ...] = (
    "awq",
    "bitsandbytes",
    "compressed-tensors",
    "fbgemm_fp8",
    "fp8",
    "gptq",
    "mxfp4",
)


@dataclass(frozen=True)
class GroupDtypes:
    """The stored dtype of every weight group and the dtype its GEMMs execute in.

    Attributes:
        storage: group -> dtype name (every name in :data:`WEIGHT_GROUPS`).
        compute: group -> dtype the group's matrix multiplications run in (embeddings: the float dtype).
        method: the ``quant_method``, or ``None`` for an unquantized checkpoint.
    """

    storage: Mapping[str, str]
    compute: Mapping[str, str]
    method: str | None


def module_matches(name: str, pattern: str) -> bool:
    """Whether skip-list ``pattern`` selects module ``name`` (see the module docstring for the rules)."""
    if pattern.startswith("re:"):
        return re.match(pattern[3:], name) is not None
    if f".{pattern}." in f".{name}.":  # whole dotted components: the module, a parent or a suffix
        return True
    try:
        return re.match(rf"(?:{pattern})(?:\.|$)", name) is not None
    except re.error:
        return False


def _layer_indices(group: str, structure: ModelStructure | None, num_layers: int) -> Sequence[int | None]:
    if group in ("embeddings", "lm_head"):
        return (None,)
    if structure is None:
        return tuple(range(num_layers)) or (0,)
    if group in _MOE_GROUPS:
        return tuple(item.index for item in structure.layers if item.is_moe)
    if group == "dense_ffn":
        return tuple(item.index for item in structure.layers if not item.is_moe)
    return tuple(range(structure.num_layers))


def _selected_fraction(group: str, patterns: Iterable[str], structure: ModelStructure | None, num_layers: int) -> float:
    """Fraction of the group's layers on which one of its probe module names matches a pattern."""
    patterns = tuple(patterns)
    indices = _layer_indices(group, structure, num_layers)
    if not patterns or not indices:
        return 0.0
    hits = sum(any(module_matches(probe.format(i=i), p) for probe in _PROBES[group] for p in patterns) for i in indices)
    return hits / len(indices)


def _selected(group: str, patterns: Iterable[str], structure: ModelStructure | None, num_layers: int) -> bool:
    fraction = _selected_fraction(group, patterns, structure, num_layers)
    if 0.0 < fraction < 1.0:
        warnings.warn(
            f"the quantization config selects the {group} weights on {fraction:.0%} of their layers; "
            "capbench uses one dtype per group and takes the majority",
            stacklevel=3,
        )
    return fraction > 0.5


def _str_list(qc: Mapping[str, Any], *keys: str) -> tuple[str, ...]:
    for key in keys:
        value = qc.get(key)
        if value is not None:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise CapbenchError(f"quantization_config.{key} must be a list of module names, got {value!r}")
            return tuple(value)
    return ()


def _int_scheme(bits: Any, group_size: Any, zero_point: bool, method: str) -> str:
    """``int{bits}_g{G}`` (``_zp`` with stored zero points), or ``int{bits}`` for per-channel scales."""
    if bits not in (2, 3, 4, 8):
        raise CapbenchError(f"quantization_config ({method}): unsupported bits {bits!r}; supported 2, 3, 4, 8")
    if group_size is None or group_size == -1 or group_size == 0:
        return f"int{bits}"
    if not isinstance(group_size, int) or group_size < 1:
        raise CapbenchError(f"quantization_config ({method}): bad group_size {group_size!r}")
    return f"int{bits}_g{group_size}" + ("_zp" if zero_point else "")


def _ct_weight_dtype(scheme: Mapping[str, Any]) -> str:
    """compressed-tensors ``weights`` args -> dtype name."""
    bits, kind, group = scheme.get("num_bits"), scheme.get("type", "int"), scheme.get("group_size")
    if kind == "float" and bits == 8:
        return "float8_e4m3fn"
    if kind == "float" and bits == 4:
        return "mxfp4" if group == 32 else "nvfp4"
    if kind == "int":
        zero_point = not scheme.get("symmetric", True)
        size = group if scheme.get("strategy") in ("group", "tensor_group") else None
        return _int_scheme(bits, size, zero_point, "compressed-tensors")
    raise CapbenchError(f"quantization_config (compressed-tensors): unsupported weight scheme {dict(scheme)!r}")


def _ct_compute_dtype(activations: Mapping[str, Any] | None, base: str) -> str:
    """compressed-tensors ``input_activations`` args -> GEMM dtype (``base`` when weight-only)."""
    if not activations:
        return base
    bits, kind = activations.get("num_bits"), activations.get("type", "int")
    if kind == "float" and bits == 8:
        return "float8_e4m3fn"
    if kind == "float" and bits == 4:
        return "mxfp4" if activations.get("group_size") == 32 else "nvfp4"
    if kind == "int" and bits == 8:
        return "int8"
    return base


def _compressed_tensors(
    qc: Mapping[str, Any], base: str, structure: ModelStructure | None, num_layers: int
) -> tuple[dict[str, str], dict[str, str]]:
    storage: dict[str, str] = {}
    compute: dict[str, str] = {}
    ignore = _str_list(qc, "ignore")
    groups = qc.get("config_groups") or {}
    for group in WEIGHT_GROUPS:
        if group in ("router", "embeddings") or _selected(group, ignore, structure, num_layers):
            continue
        for scheme in groups.values():
            targets = tuple(scheme.get("targets") or ())
            linear = "Linear" in targets
            if linear or _selected(group, [t for t in targets if t != "Linear"], structure, num_layers):
                storage[group] = _ct_weight_dtype(scheme.get("weights") or {})
                compute[group] = _ct_compute_dtype(scheme.get("input_activations"), base)
                break
    return storage, compute


def _scheme(qc: Mapping[str, Any], method: str, base: str) -> tuple[str, str, frozenset[str], tuple[str, ...]]:
    """(stored dtype, GEMM dtype, groups in scope, skip patterns) of a single-scheme method."""
    if method == "mxfp4":
        return "mxfp4", base, frozenset({"experts"}), _str_list(qc, "modules_to_not_convert")
    if method in ("fp8", "fbgemm_fp8"):
        stored = "float8_e5m2" if str(qc.get("fmt", "e4m3")).lower() == "e5m2" else "float8_e4m3fn"
        skip = _str_list(qc, "modules_to_not_convert", "ignored_layers")
        return stored, stored, _LINEAR_NO_HEAD, skip
    if method in ("gptq", "awq"):
        bits = qc.get("bits", qc.get("w_bit"))
        group_size = qc.get("group_size", qc.get("q_group_size", 128))
        zero_point = bool(qc.get("zero_point", True)) if method == "awq" else not qc.get("sym", True)
        scope = _LINEAR_NO_HEAD | ({"lm_head"} if qc.get("lm_head") else set())
        return (
            _int_scheme(bits, group_size, zero_point, method),
            base,
            scope,
            _str_list(qc, "modules_to_not_convert"),
        )
    if method == "bitsandbytes":
        skip = _str_list(qc, "llm_int8_skip_modules", "modules_to_not_convert")
        if qc.get("load_in_4bit"):
            kind = str(qc.get("bnb_4bit_quant_type", "fp4")).lower()
            stored = f"bnb_{kind}" + ("_dq" if qc.get("bnb_4bit_use_double_quant") else "")
            return stored, str(qc.get("bnb_4bit_compute_dtype") or "float32"), _LINEAR_NO_HEAD, skip
        if qc.get("load_in_8bit"):
            return "int8", "int8", _LINEAR_NO_HEAD, skip
        raise CapbenchError("quantization_config (bitsandbytes) sets neither load_in_4bit nor load_in_8bit")
    raise CapbenchError(
        f"unsupported quantization_config quant_method {method!r}. Supported: "
        f"{', '.join(SUPPORTED_QUANT_METHODS)}. Add one in capbench/arch/quantization.py "
        "(capbench.arch.quantization)."
    )


def group_dtypes(config: Mapping[str, Any], base_dtype: str, structure: ModelStructure | None = None) -> GroupDtypes:
    """Stored and compute dtype of every weight group.

    Args:
        config: the model's ``config.json``.
        base_dtype: the checkpoint's float dtype (its ``dtype`` / ``torch_dtype``), for unquantized groups.
        structure: the model's structure, to probe each group only on the layers that have it (dense FFN on
            dense layers, experts on MoE layers); without it every layer is probed.
    """
    storage = dict.fromkeys(WEIGHT_GROUPS, base_dtype)
    compute = dict.fromkeys(WEIGHT_GROUPS, base_dtype)
    qc = config.get("quantization_config")
    if qc is None:
        return GroupDtypes(storage, compute, None)
    if not isinstance(qc, Mapping) or not isinstance(qc.get("quant_method"), str):
        raise CapbenchError("config.json quantization_config must be an object with a 'quant_method' string")
    method = qc["quant_method"].lower()
    num_layers = next((v for k in ("num_hidden_layers", "n_layers") if isinstance(v := config.get(k), int)), 1)
    if method == "compressed-tensors":
        quantized, quantized_compute = _compressed_tensors(qc, base_dtype, structure, num_layers)
        storage.update(quantized)
        compute.update(quantized_compute)
    else:
        stored, gemm, scope, skip = _scheme(qc, method, base_dtype)
        for group in scope:
            if not _selected(group, skip, structure, num_layers):
                storage[group], compute[group] = stored, gemm
    return GroupDtypes(storage, compute, method)
