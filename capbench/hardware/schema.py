"""Validate plain data (a parsed YAML file) into a :class:`HardwareProfile`, and write one back as YAML.

Checks (each failure is a :class:`CapbenchError` that names the file and the offending key):
unknown keys are rejected; required keys must be present; numbers must be finite and > 0 (a bool is not a
number); ``peak_flops_per_s`` keys must be canonical dtype keys; every figure that has a value needs a
non-empty source; ``sources`` may only name figures of the schema. Numbers may be written as YAML numbers or
as strings such as ``"3.35e12"`` (YAML 1.1 reads ``3.35e12`` without a sign in the exponent as a string).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from typing import Any

import yaml

from capbench.errors import CapbenchError
from capbench.hardware.dtypes import DTYPE_KEYS
from capbench.hardware.profile import PEAK_PREFIX, SCALAR_FIGURES, HardwareProfile

REQUIRED_KEYS: tuple[str, ...] = (
    "id",
    "name",
    "vendor",
    "memory_bytes",
    "memory_bandwidth_bytes_per_s",
    "peak_flops_per_s",
    "sources",
)
OPTIONAL_KEYS: tuple[str, ...] = (
    "aliases",
    "tdp_w",
    "purchase_usd",
    "rental_usd_per_gpu_hour",
    "measured",
    "version",
    "notes",
)
ALL_KEYS: tuple[str, ...] = REQUIRED_KEYS + OPTIONAL_KEYS
_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def _fail(origin: str, message: str) -> CapbenchError:
    return CapbenchError(f"hardware profile {origin}: {message}")


def parse_positive_number(value: object, key: str, origin: str) -> float:
    """``value`` as a finite float > 0; accepts ints, floats and numeric strings, rejects bools."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _fail(origin, f"{key} must be a positive number, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise _fail(origin, f"{key} must be a positive number, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise _fail(origin, f"{key} must be a finite number > 0, got {value!r}")
    return number


def _optional_number(data: Mapping[str, Any], key: str, origin: str) -> float | None:
    value = data.get(key)
    return None if value is None else parse_positive_number(value, key, origin)


def _text(data: Mapping[str, Any], key: str, origin: str, *, required: bool = True) -> str:
    value = data.get(key, None if required else "")
    if not isinstance(value, str) or (required and not value.strip()):
        raise _fail(origin, f"{key} must be a non-empty string, got {value!r}")
    return value


def _peaks(value: object, origin: str) -> dict[str, float]:
    if not isinstance(value, Mapping) or not value:
        raise _fail(origin, "peak_flops_per_s must be a non-empty mapping of dtype -> FLOP/s")
    peaks: dict[str, float] = {}
    for dtype, number in value.items():
        if dtype not in DTYPE_KEYS:
            raise _fail(origin, f"unknown dtype key {dtype!r} in peak_flops_per_s; valid keys: {', '.join(DTYPE_KEYS)}")
        peaks[dtype] = parse_positive_number(number, f"{PEAK_PREFIX}{dtype}", origin)
    return peaks


def _sources(value: object, figures: tuple[str, ...], origin: str) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise _fail(origin, "sources must be a mapping of figure key -> source text")
    allowed = set(SCALAR_FIGURES) | {PEAK_PREFIX + k for k in DTYPE_KEYS}
    sources: dict[str, str] = {}
    for key, text in value.items():
        if key not in allowed:
            raise _fail(origin, f"unknown key {key!r} in sources; valid keys: {', '.join(sorted(allowed))}")
        if not isinstance(text, str) or not text.strip():
            raise _fail(origin, f"sources.{key} must be a non-empty string")
        sources[key] = text
    for key in figures:
        if key not in sources:
            raise _fail(origin, f"figure {key!r} has no entry in sources (cite a datasheet, date or URL)")
    for key in sources:
        if key.startswith(PEAK_PREFIX) and key not in figures:
            raise _fail(origin, f"sources names {key!r} but peak_flops_per_s has no such dtype")
    return sources


def profile_from_dict(data: object, origin: str = "<data>") -> HardwareProfile:
    """Validate ``data`` (e.g. a parsed YAML document) and build a :class:`HardwareProfile`."""
    if not isinstance(data, Mapping):
        raise _fail(origin, f"expected a mapping at the top level, got {type(data).__name__}")
    for key in data:
        if key not in ALL_KEYS:
            raise _fail(origin, f"unknown key {key!r}; valid keys: {', '.join(ALL_KEYS)}")
    for key in REQUIRED_KEYS:
        if key not in data:
            raise _fail(origin, f"missing required key {key!r}")
    profile_id = _text(data, "id", origin)
    if not _ID_PATTERN.match(profile_id):
        raise _fail(origin, f"id {profile_id!r} must match {_ID_PATTERN.pattern}")
    aliases = data.get("aliases") or []
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a.strip() for a in aliases):
        raise _fail(origin, "aliases must be a list of non-empty strings")
    memory = parse_positive_number(data["memory_bytes"], "memory_bytes", origin)
    if not memory.is_integer():
        raise _fail(origin, f"memory_bytes must be a whole number of bytes, got {data['memory_bytes']!r}")
    measured, version = data.get("measured", False), data.get("version", 1)
    if not isinstance(measured, bool):
        raise _fail(origin, f"measured must be true or false, got {measured!r}")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _fail(origin, f"version must be an integer >= 1, got {version!r}")
    peaks = _peaks(data["peak_flops_per_s"], origin)
    profile = HardwareProfile(
        id=profile_id,
        name=_text(data, "name", origin),
        vendor=_text(data, "vendor", origin),
        aliases=tuple(aliases),
        memory_bytes=int(memory),
        memory_bandwidth_bytes_per_s=parse_positive_number(
            data["memory_bandwidth_bytes_per_s"], "memory_bandwidth_bytes_per_s", origin
        ),
        peak_flops_per_s=peaks,
        tdp_w=_optional_number(data, "tdp_w", origin),
        purchase_usd=_optional_number(data, "purchase_usd", origin),
        rental_usd_per_gpu_hour=_optional_number(data, "rental_usd_per_gpu_hour", origin),
        sources={},
        measured=measured,
        version=version,
        notes=_text(data, "notes", origin, required=False),
    )
    sources = _sources(data["sources"], profile.figure_keys(), origin)
    return dataclasses.replace(profile, sources=sources)


def profile_to_yaml(profile: HardwareProfile) -> str:
    """The profile as a YAML document in the schema :func:`profile_from_dict` reads (full precision).

    Non-ASCII characters are written escaped: PyYAML's unicode output writes some (e.g. U+0085, NEL) raw,
    and reads them back as line breaks, so escaping is what makes every profile round-trip exactly.
    """
    return yaml.safe_dump(profile.to_dict(), sort_keys=False, allow_unicode=False, width=110)
