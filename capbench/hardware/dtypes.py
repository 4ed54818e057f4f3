"""Canonical dtype keys for peak FLOP/s, and the spellings each one accepts.

A hardware profile keys its dense peaks by one of :data:`DTYPE_KEYS`. Callers name dtypes in many ways
(``"bfloat16"``, ``torch.bfloat16``, ``"float8_e4m3fn"``, ``"nvfp4"``); :func:`canonical_dtype` maps every
accepted spelling to its key and rejects anything else with an error that lists what is accepted.
"""

from __future__ import annotations

from capbench.errors import CapbenchError

#: Canonical keys, in display order. ``fp32`` is the non-tensor (CUDA-core / vector) rate; ``tf32`` is the
#: tensor-core rate for fp32 inputs.
DTYPE_KEYS: tuple[str, ...] = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8", "fp4")

_SPELLINGS: dict[str, tuple[str, ...]] = {
    "fp32": ("fp32", "float32", "float", "f32", "single"),
    "tf32": ("tf32", "tensorfloat32", "tensorfloat_32"),
    "bf16": ("bf16", "bfloat16"),
    "fp16": ("fp16", "float16", "half", "f16"),
    "fp8": (
        "fp8",
        "float8",
        "fp8_e4m3",
        "fp8_e5m2",
        "e4m3",
        "e5m2",
        "float8_e4m3fn",
        "float8_e4m3fnuz",
        "float8_e5m2",
        "float8_e5m2fnuz",
    ),
    "int8": ("int8", "i8"),
    "fp4": ("fp4", "nvfp4", "mxfp4", "float4", "e2m1", "float4_e2m1fn_x2"),
}

_LOOKUP: dict[str, str] = {spelling: key for key, names in _SPELLINGS.items() for spelling in names}


def normalize_spelling(dtype: object) -> str:
    """Lower-case ``str(dtype)``, drop a ``torch.`` prefix and turn ``-`` into ``_``."""
    text = str(dtype).strip().lower().replace("-", "_")
    return text.removeprefix("torch.")


def canonical_dtype(dtype: object) -> str:
    """Return the canonical key (one of :data:`DTYPE_KEYS`) for ``dtype``.

    ``dtype`` may be a string or any object whose ``str()`` names a dtype (a ``torch.dtype``).
    Raises :class:`CapbenchError` listing the accepted spellings when it is not recognized.
    """
    key = _LOOKUP.get(normalize_spelling(dtype))
    if key is None:
        accepted = "; ".join(f"{k}: {', '.join(v)}" for k, v in _SPELLINGS.items())
        raise CapbenchError(f"unknown dtype {str(dtype)!r}. Accepted spellings — {accepted}")
    return key
