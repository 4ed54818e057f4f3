"""What machine a run is on: CPU model and core count, and the GPUs as NVML reports them.

NVML (module ``pynvml`` from the ``nvidia-ml-py`` distribution) is optional: without it, or without an NVIDIA
driver, :func:`gpu_inventory` returns an empty inventory with the reason, and the run goes on.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from pathlib import Path


def cpu_name() -> str:
    """The CPU model name from /proc/cpuinfo, else what ``platform`` reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_count() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass
class GpuInventory:
    """NVIDIA GPUs visible through NVML (``names`` empty when none or when NVML is unavailable)."""

    names: list[str] = field(default_factory=list)
    driver: str | None = None
    nvml_version: str | None = None
    unavailable_reason: str | None = None


def gpu_inventory() -> GpuInventory:
    """Query NVML for every GPU's name (all of them, whatever ``CUDA_VISIBLE_DEVICES`` says) and the driver.

    Built on :func:`capbench.telemetry.nvml_inventory`, so NVML failures read the same here as in the power
    sensor (:mod:`capbench.telemetry.errors`).
    """
    from capbench.errors import CapbenchError
    from capbench.telemetry import SensorUnavailableError, nvml_inventory

    try:
        inventory = nvml_inventory()
    except SensorUnavailableError as exc:
        return GpuInventory(unavailable_reason=exc.reason)
    except CapbenchError as exc:
        return GpuInventory(unavailable_reason=f"NVML query failed: {exc}")
    return GpuInventory(
        names=[d.name for d in inventory.devices],
        driver=inventory.driver,
        nvml_version=inventory.nvml_version,
    )
