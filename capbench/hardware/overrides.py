"""Override figures of a profile from the command line or a config: ``--set peak_flops_per_s.bf16=1.2e15``.

Valid keys are the scalar figures (``memory_bytes``, ``memory_bandwidth_bytes_per_s``, ``tdp_w``,
``purchase_usd``, ``rental_usd_per_gpu_hour``) and ``peak_flops_per_s.<dtype>`` with any accepted dtype
spelling (it is stored under its canonical key; a dtype the profile lacked is added). Values are numbers > 0,
as floats or strings (``"3.35e12"``). Each overridden figure's source becomes
``"override (<origin>); was <old value> (<old source>)"`` so the result shows what changed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from capbench.errors import CapbenchError
from capbench.hardware.dtypes import DTYPE_KEYS, canonical_dtype
from capbench.hardware.profile import PEAK_PREFIX, SCALAR_FIGURES, HardwareProfile
from capbench.hardware.schema import parse_positive_number

OVERRIDE_KEYS: tuple[str, ...] = SCALAR_FIGURES + tuple(PEAK_PREFIX + k for k in DTYPE_KEYS)
DEFAULT_ORIGIN = "command line"


def _canonical_key(key: str) -> str:
    key = key.strip()
    if key.startswith(PEAK_PREFIX):
        try:
            return PEAK_PREFIX + canonical_dtype(key.removeprefix(PEAK_PREFIX))
        except CapbenchError:
            pass
    elif key in SCALAR_FIGURES:
        return key
    raise CapbenchError(f"unknown override key {key!r}; valid keys: {', '.join(OVERRIDE_KEYS)}")


def parse_overrides(items: Iterable[str]) -> dict[str, str]:
    """``["key=value", ...]`` -> ``{key: value}``; a malformed or repeated item is a :class:`CapbenchError`."""
    parsed: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise CapbenchError(f"override {item!r} must look like KEY=VALUE, e.g. tdp_w=700")
        if key in parsed:
            raise CapbenchError(f"override key {key!r} given more than once")
        parsed[key] = value
    return parsed


def apply_overrides(
    profile: HardwareProfile,
    overrides: Mapping[str, str | float],
    origin: str = DEFAULT_ORIGIN,
) -> HardwareProfile:
    """A copy of ``profile`` with the figures in ``overrides`` replaced and their sources marked."""
    if not overrides:
        return profile
    changes: dict[str, Any] = {}
    peaks = dict(profile.peak_flops_per_s)
    sources = dict(profile.sources)
    for raw_key, raw_value in overrides.items():
        key = _canonical_key(raw_key)
        value = parse_positive_number(raw_value, key, f"override ({origin})")
        old = profile.figure(key)
        was = "absent" if old is None else f"{old:.6g} ({profile.sources.get(key, 'no source')})"
        sources[key] = f"override ({origin}); was {was}"
        if key.startswith(PEAK_PREFIX):
            peaks[key.removeprefix(PEAK_PREFIX)] = value
        elif key == "memory_bytes":
            if not value.is_integer():
                raise CapbenchError(f"override memory_bytes must be a whole number of bytes, got {raw_value!r}")
            changes[key] = int(value)
        else:
            changes[key] = value
    return dataclasses.replace(profile, peak_flops_per_s=peaks, sources=sources, **changes)


def overridden_keys(profile: HardwareProfile) -> tuple[str, ...]:
    """Figure keys whose source records an override."""
    return tuple(k for k, text in profile.sources.items() if text.startswith("override ("))
