"""The GPUs a sensor sees, each with the shipped hardware profile its name matches (for reports and traces)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from capbench.hardware.registry import match_gpu_name


def describe_gpus(devices: Iterable[Any]) -> list[dict[str, Any]]:
    """``devices`` (a power sensor's :meth:`devices`, :class:`~capbench.telemetry.GpuDevice`) with their matched
    profile: ``index``, ``name``, ``uuid``, ``driver``, ``memory_bytes``, ``power_limit_w``,
    ``energy_counter_supported`` and ``profile`` (the id of the shipped profile whose NVML alias matches the name,
    else ``None``)."""
    out: list[dict[str, Any]] = []
    for d in devices:
        profile = match_gpu_name(d.name)
        out.append(
            {
                "index": d.index,
                "name": d.name,
                "uuid": d.uuid,
                "driver": d.driver_version,
                "memory_bytes": d.memory_bytes,
                "power_limit_w": d.power_limit_w,
                "energy_counter_supported": d.energy_counter_supported,
                "profile": profile.id if profile is not None else None,
            }
        )
    return out


__all__ = ["describe_gpus"]
