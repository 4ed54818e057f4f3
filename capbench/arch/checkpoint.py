"""The weight group and stored dtype of each tensor of a checkpoint (or of a loaded model's parameters).

A config names one float dtype (``dtype`` / ``torch_dtype``), but checkpoints and runtimes keep some tensors in
another: transformers 5.2x builds and saves DeepSeek-V2/V3 routers (``mlp.gate.weight``, and V3's
``e_score_correction_bias``) in float32 inside a bfloat16 model (``_keep_in_fp32_modules_strict``), while
DeepSeek's published checkpoints store the same gate in bfloat16. Where the tensors themselves can be read,
they decide: :func:`group_dtypes_from_tensors` gives each weight group's dtype as the dtype holding most of the
group's matrix elements, which :func:`capbench.arch.dtypes.dtypes_from_config` then uses for the groups the
quantization config leaves in float.

Tensor names -> groups (:func:`tensor_group`; the families of :mod:`capbench.arch.families`):

- ``lm_head``: ``lm_head.*``; ``embeddings``: ``*.embed_tokens.*``, ``*.wte.*``;
- ``shared_experts``: ``*.shared_expert.*``, ``*.shared_experts.*``, ``*.shared_expert_gate.*``;
- ``experts``: ``*.experts.*`` (per-expert and fused layouts, ``block_sparse_moe``, DBRX's ``ffn.experts``);
- ``router``: ``*.mlp.gate.*``, ``*.block_sparse_moe.gate.*``, ``*.mlp.router.*``, ``*.ffn.router.*``;
- ``attention``: ``*.self_attn.*``, ``*.attn.*``, ``*.norm_attn_norm.attn.*``;
- ``dense_ffn``: ``*.mlp.{gate,up,down}_proj.*`` and ``*.mlp.{fc1,fc2,w1,w2,w3}.*`` of a dense layer;
- anything else (norms, rotary buffers, ...) has no group.

Only tensors with two or more dimensions count (the structure model counts weight matrices; 1-D norms and
biases are not in it).

Dtype names: safetensors spellings (``F32``, ``BF16``, ``F16``, ``F8_E4M3``, ``F8_E5M2``, ``I8``, ...) and torch
spellings (``torch.float32``) both map to capbench's canonical names (:data:`SAFETENSORS_DTYPES`); packed
integer storage (``I32``, ``U8`` of 4-bit formats) has no float meaning and maps to ``None``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence

from capbench.arch.quantization import WEIGHT_GROUPS

SAFETENSORS_DTYPES: Mapping[str, str] = {
    "F64": "float64",
    "F32": "float32",
    "BF16": "bfloat16",
    "F16": "float16",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
    "I8": "int8",
}
"""safetensors dtype -> capbench dtype name (float64 has no byte width in capbench and is reported as is)."""

FLOAT_DTYPES = frozenset({"float32", "bfloat16", "float16"})

_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("lm_head", re.compile(r"(^|\.)lm_head\.")),
    ("embeddings", re.compile(r"(^|\.)(embed_tokens|wte)\.")),
    ("shared_experts", re.compile(r"\.(shared_experts?|shared_expert_gate)\.")),
    ("experts", re.compile(r"\.experts\.")),
    ("router", re.compile(r"\.(mlp\.gate|block_sparse_moe\.gate|mlp\.router|ffn\.router)\.")),
    ("attention", re.compile(r"\.(self_attn|attn|attention)\.")),
    ("dense_ffn", re.compile(r"\.mlp\.(gate_proj|up_proj|down_proj|fc1|fc2|w1|w2|w3)\.")),
)


def canonical_tensor_dtype(name: str) -> str | None:
    """capbench's name for a tensor dtype written by safetensors (``BF16``) or torch (``torch.bfloat16``)."""
    key = name.strip()
    if key in SAFETENSORS_DTYPES:
        return SAFETENSORS_DTYPES[key]
    key = key.lower().removeprefix("torch.")
    if key in SAFETENSORS_DTYPES.values():
        return key
    return {"float8_e4m3fn": "float8_e4m3fn", "half": "float16", "float": "float32"}.get(key)


def tensor_group(name: str) -> str | None:
    """The weight group (:data:`~capbench.arch.quantization.WEIGHT_GROUPS`) of tensor ``name``, or None."""
    for group, pattern in _RULES:
        if pattern.search(name):
            return group
    return None


def group_elements(tensors: Mapping[str, tuple[Sequence[int], str]]) -> dict[str, dict[str, int]]:
    """``{group: {dtype: elements}}`` over the matrices (ndim ≥ 2) of ``tensors`` (``name -> (shape, dtype)``).

    A dtype that has no capbench name is kept under its raw spelling, so nothing is dropped silently.
    """
    out: dict[str, dict[str, int]] = {}
    for name, (shape, dtype) in tensors.items():
        group = tensor_group(name)
        if group is None or len(shape) < 2:
            continue
        key = canonical_tensor_dtype(dtype) or dtype
        per_dtype = out.setdefault(group, {})
        per_dtype[key] = per_dtype.get(key, 0) + math.prod(int(s) for s in shape)
    return out


def group_dtypes_from_tensors(tensors: Mapping[str, tuple[Sequence[int], str]]) -> dict[str, str]:
    """Each group's stored dtype: the one holding most of its matrix elements (only groups with tensors)."""
    return {
        group: max(per_dtype, key=lambda dtype: per_dtype[dtype])
        for group, per_dtype in group_elements(tensors).items()
        if group in WEIGHT_GROUPS
    }


def float_overrides(stored: Mapping[str, str], groups: Iterable[str]) -> dict[str, str]:
    """The stored dtypes that may replace config-derived ones: plain floats, for ``groups`` only."""
    wanted = set(groups)
    return {group: dtype for group, dtype in stored.items() if group in wanted and dtype in FLOAT_DTYPES}
