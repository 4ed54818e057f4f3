"""Bytes per stored element for each tensor group of a model (docs/metrics.md §2, "Byte widths").

b_w: the other transformer weights (attention, dense FFN, shared experts, router); b_e: routed-expert weights;
b_emb: embedding and lm_head; b_kv: the KV cache. Widths are bytes per element and may be fractional
(int4 with group scales, MXFP4, NVFP4).

Dtype names (:func:`canonical_dtype` normalizes spellings; :func:`dtype_bytes` gives bytes per element,
scale overhead included). Canonical name: accepted spellings -> bytes per element.

- ``float32``: fp32, f32, float, torch.float32 -> 4
- ``bfloat16``: bf16, torch.bfloat16 -> 2
- ``float16``: fp16, f16, half, torch.float16 -> 2
- ``float8_e4m3fn``: fp8, fp8_e4m3, fp8_e4m3fn, float8_e4m3, e4m3 -> 1
- ``float8_e5m2``: fp8_e5m2, e5m2 -> 1
- ``int8`` -> 1; ``int4``, ``int3``, ``int2`` -> b/8 (per-output-channel scales not counted)
- ``int{b}_g{G}``: b-bit integers with one fp16 scale per G weights -> (b + 16/G)/8;
  ``int4_g128`` = 4.125 bits = 0.515625 bytes
- ``int{b}_g{G}_zp``: the same plus a b-bit zero point per group (asymmetric: AWQ, GPTQ sym=false)
  -> (b + (16 + b)/G)/8
- ``mxfp4``: OCP MX FP4, e2m1 values with one e8m0 scale per 32 -> (4 + 8/32)/8 (4.25 bits)
- ``nvfp4``: NVIDIA FP4, e2m1 values with one fp8 e4m3 scale per 16 -> (4 + 8/16)/8 (4.5 bits)
- ``bnb_nf4``, ``bnb_fp4`` (nf4): bitsandbytes 4-bit, one fp32 absmax per 64 -> (4 + 32/64)/8 (4.5 bits)
- ``bnb_nf4_dq``, ``bnb_fp4_dq``: double-quantized absmax, 8 bits per 64 plus one fp32 per 256 blocks
  -> (4 + 8/64 + 32/(64·256))/8

Scales that are per tensor, per output channel or per 128×128 block (fp8 block scales) add less than 0.03%
and are not counted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from capbench.arch.checkpoint import FLOAT_DTYPES, float_overrides
from capbench.arch.families import model_structure
from capbench.arch.quantization import WEIGHT_GROUPS, GroupDtypes, group_dtypes
from capbench.arch.structure import ModelStructure
from capbench.errors import CapbenchError


@dataclass(frozen=True)
class ByteWidths:
    """Bytes per element: ``weights`` (b_w), ``experts`` (b_e), ``embeddings`` (b_emb), ``kv`` (b_kv).

    ``router`` (b_r) is the routers' width when it differs from b_w (quantized checkpoints keep routers in
    bf16 next to fp8 attention); ``None`` means the routers are stored like the other weights (b_r = b_w).
    """

    weights: float
    experts: float
    embeddings: float
    kv: float
    router: float | None = None

    @property
    def router_or_weights(self) -> float:
        """b_r: the routers' bytes per element."""
        return self.weights if self.router is None else self.router


#: Bits per element of every fixed-width canonical name.
_BITS: Mapping[str, float] = {
    "float32": 32,
    "bfloat16": 16,
    "float16": 16,
    "float8_e4m3fn": 8,
    "float8_e5m2": 8,
    "int8": 8,
    "int4": 4,
    "int3": 3,
    "int2": 2,
    "mxfp4": 4 + 8 / 32,
    "nvfp4": 4 + 8 / 16,
    "bnb_nf4": 4 + 32 / 64,
    "bnb_fp4": 4 + 32 / 64,
    "bnb_nf4_dq": 4 + 8 / 64 + 32 / (64 * 256),
    "bnb_fp4_dq": 4 + 8 / 64 + 32 / (64 * 256),
}

_ALIASES: Mapping[str, str] = {
    "fp32": "float32",
    "f32": "float32",
    "float": "float32",
    "bf16": "bfloat16",
    "fp16": "float16",
    "f16": "float16",
    "half": "float16",
    "fp8": "float8_e4m3fn",
    "fp8_e4m3": "float8_e4m3fn",
    "fp8_e4m3fn": "float8_e4m3fn",
    "float8_e4m3": "float8_e4m3fn",
    "e4m3": "float8_e4m3fn",
    "fp8_e5m2": "float8_e5m2",
    "e5m2": "float8_e5m2",
    "nf4": "bnb_nf4",
}

_GROUPED_INT = re.compile(r"^int(?P<bits>[2348])_g(?P<group>[1-9][0-9]*)(?P<zp>_zp)?$")

#: Every accepted name, for error messages (grouped integers are a pattern).
KNOWN_DTYPES: tuple[str, ...] = (*sorted(_BITS), *sorted(_ALIASES), "int{2,3,4,8}_g{G}[_zp]")


def canonical_dtype(name: str) -> str:
    """The canonical spelling of a dtype name (see the module table); unknown names raise CapbenchError."""
    if not isinstance(name, str):
        raise CapbenchError(f"a dtype name must be a string, got {name!r}")
    key = name.strip().lower().removeprefix("torch.")
    key = _ALIASES.get(key, key)
    if key in _BITS or _GROUPED_INT.match(key):
        return key
    raise CapbenchError(f"unknown dtype {name!r}. Known dtypes: {', '.join(KNOWN_DTYPES)}")


def dtype_bytes(name: str) -> float:
    """Bytes per stored element of dtype ``name``, scale overhead included (formulas in the module table).

    ``int{b}_g{G}`` = (b + 16/G)/8 bytes (one fp16 scale per group of G), e.g. ``int4_g128`` = 4.125 bits;
    ``int{b}_g{G}_zp`` adds a b-bit zero point per group: (b + (16 + b)/G)/8.
    """
    key = canonical_dtype(name)
    grouped = _GROUPED_INT.match(key)
    if grouped:
        bits, group = int(grouped["bits"]), int(grouped["group"])
        overhead = 16 + (bits if grouped["zp"] else 0)
        return (bits + overhead / group) / 8
    return _BITS[key] / 8


def base_dtype(config: Mapping[str, Any]) -> str:
    """The checkpoint's float dtype: ``dtype`` (transformers 5) or ``torch_dtype``, canonicalised.

    An MXFP4 checkpoint without either key is ``bfloat16``: gpt-oss's published configs name no dtype, and
    its model card and the MXFP4 kernels keep every non-expert tensor and the activations in bf16. Any
    other config without a dtype is an error (the widths would be a guess).
    """
    for key in ("dtype", "torch_dtype"):
        value = config.get(key)
        if value is not None:
            return canonical_dtype(value)
    qc = config.get("quantization_config")
    if isinstance(qc, Mapping) and str(qc.get("quant_method", "")).lower() == "mxfp4":
        return "bfloat16"
    raise CapbenchError(
        "config.json has neither 'dtype' nor 'torch_dtype', so the weight dtype is unknown; add it "
        '(e.g. "torch_dtype": "bfloat16").'
    )


def _structure_or_none(config: Mapping[str, Any]) -> ModelStructure | None:
    """The model's structure, or ``None`` when the config does not describe a supported family."""
    try:
        return model_structure(config)
    except CapbenchError:
        return None


def _group_params(structure: ModelStructure) -> dict[str, int]:
    """Weight count per group: Σ attn, Σ_MoE router, Σ_MoE shared, Σ_dense FFN, routed, embedding, lm_head."""
    layers = structure.layers
    return {
        "attention": sum(item.attn_params for item in layers),
        "router": sum(item.router_params for item in layers),
        "shared_experts": sum(item.ffn_params for item in layers if item.is_moe),
        "dense_ffn": sum(item.ffn_params for item in layers if not item.is_moe),
        "experts": structure.routed_expert_params_total,
        "embeddings": structure.embedding_params,
        "lm_head": 0 if structure.tie_word_embeddings else structure.lm_head_params,
    }


def _storage(groups: GroupDtypes, stored: Mapping[str, str] | None) -> dict[str, str]:
    """Each group's stored dtype: the config's (quantization scope, float dtype), except that a group the config
    leaves in float takes the float dtype its tensors really have when ``stored`` gives it
    (:func:`capbench.arch.checkpoint.group_dtypes_from_tensors`)."""
    storage = {g: canonical_dtype(n) for g, n in groups.storage.items()}
    if stored:
        in_float = [g for g, name in storage.items() if name in FLOAT_DTYPES]
        storage.update({g: canonical_dtype(n) for g, n in float_overrides(stored, in_float).items()})
    return storage


def weight_group_dtypes(config: Mapping[str, Any], stored: Mapping[str, str] | None = None) -> dict[str, str]:
    """Canonical stored dtype of each weight group, from ``quantization_config`` and the float dtype, corrected
    by ``stored`` (the tensors' own dtypes, where they could be read) for groups left in float.

    Groups: ``attention``, ``router``, ``shared_experts``, ``dense_ffn``, ``experts``, ``embeddings``,
    ``lm_head`` (see :mod:`capbench.arch.quantization` for which groups each method converts).
    """
    groups = group_dtypes(config, base_dtype(config), _structure_or_none(config))
    storage = _storage(groups, stored)
    return {group: storage[group] for group in WEIGHT_GROUPS}


def _majority(names: Mapping[str, str], weights: Mapping[str, int] | None, order: tuple[str, ...]) -> str:
    """The name covering the most parameters (ties and unknown sizes: first group in ``order``)."""
    totals: dict[str, int] = {}
    for group in order:
        totals[names[group]] = totals.get(names[group], 0) + (weights[group] if weights else 0)
    if not weights or not any(totals.values()):
        return names[order[0]]
    return max(totals, key=lambda name: totals[name])  # max keeps the first of equal totals


def dtypes_from_config(
    config: Mapping[str, Any], kv_dtype: str | None = None, stored: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Dtype names for ``weights``, ``experts``, ``embeddings``, ``kv`` and ``compute``.

    ``stored``: each weight group's dtype as its tensors hold it (a checkpoint's safetensors headers, or a loaded
    model's parameters), which wins over the config for the groups the config leaves in float (e.g. a float32
    router in a bfloat16 checkpoint); see :mod:`capbench.arch.checkpoint`.

    - ``experts``: the routed experts' stored dtype.
    - ``weights``: the stored dtype of the b_w groups (attention, dense FFN, shared experts); when they
      differ, the dtype holding most of their parameters.
    - ``router`` (only when it differs from ``weights``): the routers' stored dtype (fp8 checkpoints keep
      routers in bf16).
    - ``embeddings``: the lm_head's dtype (the embedding's when tied); quantized checkpoints keep both in
      float.
    - ``kv``: ``kv_dtype`` (the engine's KV-cache setting) when given and not ``"auto"``, else the
      checkpoint's non-quantized float dtype (``dtype`` / ``torch_dtype``), never the quantized weight dtype.
    - ``compute``: the dtype the GEMMs execute in: the float dtype for weight-only schemes (W4A16 GPTQ/AWQ,
      MXFP4 on bf16), fp8 for W8A8-fp8, int8 for W8A8-int8; when groups differ, the one carrying the most
      per-token linear weights (attention + dense + shared + router + k·expert).
    """
    float_dtype = base_dtype(config)
    structure = _structure_or_none(config)
    groups = group_dtypes(config, float_dtype, structure)
    storage = _storage(groups, stored)
    compute = {g: canonical_dtype(n) for g, n in groups.compute.items()}
    sizes = per_token = None
    if structure is not None:
        sizes = _group_params(structure)
        per_token = {**sizes, "experts": structure.num_moe_layers * structure.top_k * structure.expert_params}
    tied = structure.tie_word_embeddings if structure else bool(config.get("tie_word_embeddings"))
    kv = float_dtype if kv_dtype is None or kv_dtype.strip().lower() == "auto" else canonical_dtype(kv_dtype)
    weights = _majority(storage, sizes, ("attention", "dense_ffn", "shared_experts"))
    out = {
        "weights": weights,
        "experts": storage["experts"],
        "embeddings": storage["embeddings" if tied else "lm_head"],
        "kv": kv,
        "compute": _majority(compute, per_token, ("experts", "attention", "dense_ffn", "shared_experts", "router")),
    }
    if storage["router"] != weights:
        out["router"] = storage["router"]
    return out


def byte_widths(dtypes: Mapping[str, str]) -> ByteWidths:
    """:class:`ByteWidths` from dtype names (as :func:`dtypes_from_config` returns them).

    b_w = dtype_bytes(weights), b_e = dtype_bytes(experts), b_emb = dtype_bytes(embeddings) — the weights'
    width when ``embeddings`` is absent —, b_kv = dtype_bytes(kv), and b_r = dtype_bytes(router) when a
    ``router`` name is given (else b_r = b_w); all in bytes per element.
    """
    missing = [key for key in ("weights", "experts", "kv") if not dtypes.get(key)]
    if missing:
        raise CapbenchError(f"byte widths need dtype names for {missing}; got {dict(dtypes)!r}")
    return ByteWidths(
        weights=dtype_bytes(dtypes["weights"]),
        experts=dtype_bytes(dtypes["experts"]),
        embeddings=dtype_bytes(dtypes.get("embeddings") or dtypes["weights"]),
        kv=dtype_bytes(dtypes["kv"]),
        router=dtype_bytes(dtypes["router"]) if dtypes.get("router") else None,
    )


def weight_bytes(structure: ModelStructure, dtypes_by_group: Mapping[str, str]) -> dict[str, float]:
    """Stored bytes of each weight group: params_g · dtype_bytes(dtype_g), with the group sums.

    Keys: the seven groups of :func:`weight_group_dtypes`, ``dense_weights`` (attention + router + shared
    experts + dense FFN, the b_w groups), ``routed_experts`` (= ``experts``) and ``total`` (all groups; the
    lm_head is 0 when tied to the embedding).
    """
    sizes = _group_params(structure)
    out = {group: sizes[group] * dtype_bytes(dtypes_by_group[group]) for group in WEIGHT_GROUPS}
    out["dense_weights"] = out["attention"] + out["router"] + out["shared_experts"] + out["dense_ffn"]
    out["routed_experts"] = out["experts"]
    out["total"] = sum(out[group] for group in WEIGHT_GROUPS)
    return out
