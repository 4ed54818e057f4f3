"""Who this machine is: CPU model, logical CPUs, RAM, CUDA device, torch version, and a short identity hash.

The identity keys the probe cache: a probe result is reused only on a machine with the same CPU model,
logical CPU count and torch version (CPU), or the same device name, CUDA/HIP version and torch version (CUDA).
"""

from __future__ import annotations

import hashlib
import os
import platform
from dataclasses import dataclass
from pathlib import Path

from capbench.errors import CapbenchError

DEVICES: tuple[str, ...] = ("cpu", "cuda")


@dataclass(frozen=True)
class MachineIdentity:
    """What a probe result depends on. ``key`` is a 12-hex-digit hash of all fields."""

    device: str
    device_name: str
    vendor: str
    logical_cpus: int
    torch_version: str
    accelerator_runtime: str = ""

    @property
    def key(self) -> str:
        text = "|".join(
            (self.device, self.device_name, str(self.logical_cpus), self.torch_version, self.accelerator_runtime)
        )
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def _cpuinfo_field(*names: str) -> str | None:
    try:
        lines = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip().lower() in names and value.strip():
            return value.strip()
    return None


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, else what :mod:`platform` reports."""
    return _cpuinfo_field("model name", "hardware", "cpu model") or platform.processor() or platform.machine()


def cpu_vendor() -> str:
    """``"AMD"``, ``"Intel"`` or the raw vendor id; ``"unknown"`` when not reported."""
    raw = _cpuinfo_field("vendor_id") or ""
    return {"AuthenticAMD": "AMD", "GenuineIntel": "Intel"}.get(raw, raw or "unknown")


def cpu_flags() -> frozenset[str]:
    """The CPU feature flags (x86 ``flags`` or ARM ``Features``); empty when unknown."""
    return frozenset((_cpuinfo_field("flags", "features") or "").split())


def host_memory_bytes() -> int:
    """Total RAM in bytes: /proc/meminfo ``MemTotal`` (kB × 1024), else page size × physical pages."""
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))


def last_level_cache_bytes() -> int | None:
    """Largest cache reported under /sys/devices/system/cpu/cpu0/cache (bytes), or ``None``."""
    sizes: list[int] = []
    for entry in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        text = entry.read_text(encoding="utf-8").strip().upper()
        scale = {"K": 1024, "M": 1024**2, "G": 1024**3}.get(text[-1:], 1)
        digits = text.rstrip("KMG")
        if digits.isdigit():
            sizes.append(int(digits) * scale)
    return max(sizes) if sizes else None


def machine_identity(device: str) -> MachineIdentity:
    """Identity of ``device`` (``"cpu"`` or ``"cuda"``) on this machine; imports torch."""
    if device not in DEVICES:
        raise CapbenchError(f"unknown probe device {device!r}; valid devices: {', '.join(DEVICES)}")
    import torch

    logical_cpus = os.cpu_count() or 1
    if device == "cpu":
        return MachineIdentity("cpu", cpu_model(), cpu_vendor(), logical_cpus, torch.__version__)
    if not torch.cuda.is_available():
        raise CapbenchError("--device cuda: torch sees no CUDA/ROCm device on this machine; use --device cpu")
    hip = getattr(torch.version, "hip", None)
    runtime = f"hip {hip}" if hip else f"cuda {torch.version.cuda}"
    vendor = "AMD" if hip else "NVIDIA"
    name = torch.cuda.get_device_name(0)
    return MachineIdentity("cuda", name, vendor, logical_cpus, torch.__version__, runtime)


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
