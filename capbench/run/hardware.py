"""The ``hardware`` section of ``run.json``: what the run ran on, and which profile gives its ceilings.

GPUs: the ones the power sensor samples (see :mod:`capbench.run.power`: the hf runner's GPU, or the GPUs a
local server uses), as NVML names them; without NVML, torch's name for an in-process CUDA run.

Profile choice, first that applies: the run's ``hardware`` setting (a shipped id or a YAML file); with GPUs,
the shipped profile whose NVML alias matches the first GPU's name; an in-process run on CPU (``probe:
true``), a measured profile of this machine (:func:`capbench.hardware.cached_probe_profile`, probed once
and cached). A shipped profile is recorded by id (scoring uses its current figures, so a corrected
datasheet value needs no re-run); any other profile (a user file, a probe) is also stored inline as
``profile_data`` so the run scores anywhere.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console

from capbench.config import RunSpec
from capbench.hardware import (
    HardwareProfile,
    apply_overrides,
    cached_probe_profile,
    list_profiles,
    match_gpu_name,
    resolve_profile,
)
from capbench.hardware.machine import cpu_count, cpu_name
from capbench.telemetry import PowerSensor


def is_shipped(profile: HardwareProfile) -> bool:
    """True when ``profile`` is exactly one of the profiles shipped with capbench."""
    return any(p == profile for p in list_profiles())


def _gpus(spec: RunSpec, device: str, sensor: PowerSensor) -> tuple[list[str], str | None]:
    """(names of the run's GPUs, driver version)."""
    devices = sensor.devices() if sensor.available else []
    if devices:
        return [d.name for d in devices], devices[0].driver_version
    if device == "cuda":
        import torch

        return [torch.cuda.get_device_name(0)], None
    if device == "server" and spec.gpus:
        return ["unknown"] * len(spec.gpus), None
    return [], None


def resolve_run_hardware(
    spec: RunSpec, device: str, sensor: PowerSensor, console: Console | None = None
) -> dict[str, Any]:
    """The ``hardware`` mapping for ``run.json`` (docs/records.md)."""
    names, driver = _gpus(spec, device, sensor)
    profile: HardwareProfile | None = None
    how = "none"
    if spec.hardware:
        profile, how = resolve_profile(spec.hardware), "given"
    elif names and names[0] != "unknown":
        profile = match_gpu_name(names[0])
        how = "matched_gpu_name" if profile else "none"
    elif device == "cpu" and spec.probe:

        def announce() -> None:
            if console is not None:
                console.print("[dim]measuring this machine's bandwidth and FLOP/s (cached after the first run)[/]")

        profile, how = cached_probe_profile("cpu", on_measure=announce), "probed"
    if profile is not None and spec.hardware_overrides:
        apply_overrides(profile, spec.hardware_overrides)  # validates the keys now, before the run
    # GPU count: known for in-process runs (0 on CPU) and for servers whose GPUs were found; else unknown.
    num_gpus: int | None = len(names) if (names or device != "server") else None
    return {
        "device": device,
        "num_gpus": num_gpus,
        "gpu_name": names[0] if names else None,
        "gpu_names": names,
        "driver": driver,
        "cpu_name": cpu_name(),
        "cpu_count": cpu_count(),
        "profile": profile.id if profile else None,
        "profile_version": profile.version if profile else None,
        "profile_selected_by": how,
        "profile_data": profile.to_dict() if profile is not None and not is_shipped(profile) else None,
        "overrides": dict(spec.hardware_overrides),
    }
