"""The :class:`HardwareProfile`: one accelerator SKU (or one probed machine) and its peak figures.

Units are SI base units throughout: bytes, bytes/s, FLOP/s, W, USD. Peaks are DENSE (never 2:4-sparse)
and are keyed by the canonical dtype keys of :mod:`capbench.hardware.dtypes`. Unknown figures are ``None``;
a peak the hardware lacks is simply absent, and asking for it is an error, never a zero (docs/metrics.md §3).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from capbench.errors import CapbenchError
from capbench.hardware.dtypes import DTYPE_KEYS, canonical_dtype

#: Figures that are plain numbers on the profile (``peak_flops_per_s.<dtype>`` are the others).
SCALAR_FIGURES: tuple[str, ...] = (
    "memory_bytes",
    "memory_bandwidth_bytes_per_s",
    "tdp_w",
    "purchase_usd",
    "rental_usd_per_gpu_hour",
)
PEAK_PREFIX = "peak_flops_per_s."


def _frozen_mapping(values: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(values))


@dataclass(frozen=True)
class HardwareProfile:
    """Peak figures of one GPU SKU (or one probed machine), with a source for every figure.

    Attributes:
        id: short stable name, e.g. ``"h100-sxm"``; the data file is ``hardware_profiles/<id>.yaml``.
        name: human-readable product name.
        vendor: ``"NVIDIA"``, ``"AMD"``, ``"Intel"``, ...
        aliases: device names exactly as NVML / amd-smi / torch report them (matched case-insensitively).
        memory_bytes: device memory capacity, bytes.
        memory_bandwidth_bytes_per_s: peak (or, when ``measured``, achieved) memory bandwidth, bytes/s.
        peak_flops_per_s: dense peak FLOP/s (OP/s for int8) per canonical dtype key; absent = unsupported.
        tdp_w: board/module thermal design power, W; ``None`` when unknown.
        purchase_usd: purchase price of one device, USD; ``None`` when no citable price exists.
        rental_usd_per_gpu_hour: rental price, USD per device-hour; ``None`` when no citable price exists.
        sources: figure key (``"memory_bytes"``, ``"peak_flops_per_s.bf16"``, ...) -> where it comes from.
        measured: ``True`` for figures measured by ``capbench profiles probe``, ``False`` for datasheet data.
        version: data version of this profile; bumped whenever a figure changes.
        notes: free text (caveats, decisions).
    """

    id: str
    name: str
    vendor: str
    aliases: tuple[str, ...]
    memory_bytes: int
    memory_bandwidth_bytes_per_s: float
    peak_flops_per_s: Mapping[str, float]
    tdp_w: float | None
    purchase_usd: float | None
    rental_usd_per_gpu_hour: float | None
    sources: Mapping[str, str]
    measured: bool = False
    version: int = 1
    notes: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "aliases", tuple(self.aliases))
        unknown = sorted(set(self.peak_flops_per_s) - set(DTYPE_KEYS))
        if unknown:
            raise CapbenchError(f"profile {self.id!r}: unknown dtype keys {unknown}; use {', '.join(DTYPE_KEYS)}")
        ordered = {k: float(self.peak_flops_per_s[k]) for k in DTYPE_KEYS if k in self.peak_flops_per_s}
        positive = [self.memory_bytes, self.memory_bandwidth_bytes_per_s, *ordered.values()]
        if not all(math.isfinite(v) and v > 0 for v in positive):
            raise CapbenchError(f"profile {self.id!r}: memory, bandwidth and peaks must be finite and > 0")
        object.__setattr__(self, "peak_flops_per_s", _frozen_mapping(ordered))
        object.__setattr__(self, "sources", _frozen_mapping(self.sources))

    def __hash__(self) -> int:
        peaks = tuple(self.peak_flops_per_s.items())
        return hash((self.id, self.version, self.measured, self.memory_bandwidth_bytes_per_s, peaks))

    @property
    def dtypes(self) -> tuple[str, ...]:
        """Canonical dtype keys this profile has a dense peak for, in display order."""
        return tuple(self.peak_flops_per_s)

    def peak_flops(self, dtype: object) -> float:
        """Dense peak FLOP/s for ``dtype`` (any accepted spelling, e.g. ``"bfloat16"`` or ``torch.bfloat16``).

        Raises :class:`CapbenchError` naming the profile, the dtype and the dtypes it has when the profile has
        no peak for it. Never returns 0.
        """
        key = canonical_dtype(dtype)
        value = self.peak_flops_per_s.get(key)
        if value is None:
            have = ", ".join(self.dtypes) or "none"
            raise CapbenchError(
                f"hardware profile {self.id!r} has no dense peak FLOP/s for dtype {key!r} "
                f"(asked for {str(dtype)!r}); it has: {have}. Override it with "
                f"--set {PEAK_PREFIX}{key}=VALUE or use a profile file that lists it."
            )
        return value

    def peak_flops_or_none(self, dtype: object) -> float | None:
        """Dense peak FLOP/s for ``dtype``, or ``None`` when the profile has none for it (S-MFU is then null)."""
        return self.peak_flops_per_s.get(canonical_dtype(dtype))

    def figure(self, key: str) -> float | int | None:
        """The value of a figure key (``"tdp_w"``, ``"peak_flops_per_s.fp8"``, ...); ``None`` when absent."""
        if key.startswith(PEAK_PREFIX):
            return self.peak_flops_per_s.get(key.removeprefix(PEAK_PREFIX))
        if key in SCALAR_FIGURES:
            value: float | int | None = getattr(self, key)
            return value
        raise CapbenchError(f"unknown figure {key!r}")

    def figure_keys(self) -> tuple[str, ...]:
        """Keys of every figure that has a value (the keys ``sources`` must cover)."""
        scalars = tuple(k for k in SCALAR_FIGURES if getattr(self, k) is not None)
        return scalars + tuple(PEAK_PREFIX + k for k in self.dtypes)

    def to_dict(self) -> dict[str, Any]:
        """Plain data in the YAML schema's key order, SI units, full precision."""
        return {
            "id": self.id,
            "name": self.name,
            "vendor": self.vendor,
            "aliases": list(self.aliases),
            "memory_bytes": self.memory_bytes,
            "memory_bandwidth_bytes_per_s": self.memory_bandwidth_bytes_per_s,
            "peak_flops_per_s": dict(self.peak_flops_per_s),
            "tdp_w": self.tdp_w,
            "purchase_usd": self.purchase_usd,
            "rental_usd_per_gpu_hour": self.rental_usd_per_gpu_hour,
            "measured": self.measured,
            "version": self.version,
            "notes": self.notes,
            "sources": dict(self.sources),
        }
