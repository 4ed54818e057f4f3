"""Model structure from a Hugging Face ``config.json``, one module per family (docs/metrics.md §1).

:func:`model_structure` dispatches on ``config["model_type"]`` — never on a substring of the model name.

Adding a family: write ``capbench/arch/families/<family>.py`` with a ``build_<family>(config) -> ModelStructure``
(read fields through :class:`~._fields.ConfigReader`, build layers with the helpers in ``_common``), register
it in :data:`FAMILIES` below under its transformers ``model_type``, and add a golden test to
``tests/unit/arch/test_structure.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from capbench.arch.families.dbrx import build_dbrx
from capbench.arch.families.deepseek import build_deepseek_v2, build_deepseek_v3
from capbench.arch.families.gpt_oss import build_gpt_oss
from capbench.arch.families.qwen_moe import build_qwen2_moe, build_qwen3_moe
from capbench.arch.families.uniform import build_mixtral, build_olmoe
from capbench.arch.structure import ModelStructure
from capbench.errors import CapbenchError

Builder = Callable[[Mapping[str, Any]], ModelStructure]

#: transformers ``model_type`` -> the function that builds its :class:`ModelStructure`.
FAMILIES: Mapping[str, Builder] = MappingProxyType(
    {
        "dbrx": build_dbrx,
        "deepseek_v2": build_deepseek_v2,
        "deepseek_v3": build_deepseek_v3,
        "gpt_oss": build_gpt_oss,
        "mixtral": build_mixtral,
        "olmoe": build_olmoe,
        "qwen2_moe": build_qwen2_moe,
        "qwen3_moe": build_qwen3_moe,
    }
)

SUPPORTED_MODEL_TYPES: tuple[str, ...] = tuple(sorted(FAMILIES))

_HOW_TO_ADD = (
    "To add a family, write capbench/arch/families/<family>.py with a build function and register it in "
    "FAMILIES in capbench/arch/families/__init__.py (capbench.arch.families)."
)


def model_type_of(config: Mapping[str, Any]) -> str:
    """``config["model_type"]``, checked to be a supported family."""
    if not isinstance(config, Mapping):
        raise CapbenchError(f"a model config must be a JSON object, got {type(config).__name__}")
    model_type = config.get("model_type")
    supported = ", ".join(SUPPORTED_MODEL_TYPES)
    if model_type is None:
        raise CapbenchError(
            f"config.json has no 'model_type'; capbench needs it to know the architecture. "
            f"Supported model types: {supported}. {_HOW_TO_ADD}"
        )
    if not isinstance(model_type, str) or model_type not in FAMILIES:
        raise CapbenchError(f"unsupported model_type {model_type!r}. Supported: {supported}. {_HOW_TO_ADD}")
    return model_type


def model_structure(config: Mapping[str, Any]) -> ModelStructure:
    """The :class:`ModelStructure` of the model a ``config.json`` describes.

    Raises:
        CapbenchError: unknown or missing ``model_type`` (the message lists the supported ones), or a required
            field missing or malformed (the message names the field and the ``model_type``).
    """
    return FAMILIES[model_type_of(config)](config)


__all__ = ["FAMILIES", "SUPPORTED_MODEL_TYPES", "model_structure", "model_type_of"]
