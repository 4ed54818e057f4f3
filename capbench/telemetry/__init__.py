"""GPU power and energy telemetry: a :class:`PowerSensor` that samples in a background thread and yields
``power.jsonl`` records (``t_ns``, ``gpu``, ``power_w``, ``energy_j`` where the GPU has a counter).

Open one with :func:`open_power_sensor`:

- ``"auto"`` (default): NVML when it initializes and finds at least one selected GPU, else a
  :class:`NullSensor` carrying the reason (the run completes; energy is null, never 0);
- ``"nvml"``: NVML or a :class:`SensorUnavailableError` that says why and how to fix it;
- ``"none"``: the null sensor.

Typical use by a run (thread model: :mod:`capbench.telemetry.sensor`)::

    sensor = open_power_sensor("auto", gpus=None)
    sensor.start(writer.append_power)      # sink runs only on threads that call drain()/stop()
    ...                                     # after each pass: sensor.drain()
    sensor.stop(); sensor.close()           # final sample, delivered; NVML shut down

Importing this package is light: ``pynvml`` is imported when an NVML sensor is opened. See docs/telemetry.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from capbench.errors import CapbenchError
from capbench.telemetry.errors import (
    FeatureNotSupportedError,
    NvmlOutcome,
    SensorUnavailableError,
    classify_nvml_error,
    map_nvml_error,
    unavailable_with_fix,
)
from capbench.telemetry.null import NullSensor
from capbench.telemetry.nvml import NvmlSensor, check_rate, nvml_inventory, parse_cuda_visible_devices, select_gpus
from capbench.telemetry.replay import ReplaySensor
from capbench.telemetry.sensor import (
    Delivery,
    GpuDevice,
    PowerSample,
    PowerSensor,
    SensorStats,
    Sink,
)

SensorKind = Literal["auto", "nvml", "none"]
SENSOR_KINDS: tuple[SensorKind, ...] = ("auto", "nvml", "none")
DEFAULT_RATE_HZ = 10.0


def open_power_sensor(
    kind: SensorKind = "auto",
    gpus: Sequence[int] | None = None,
    rate_hz: float = DEFAULT_RATE_HZ,
    *,
    nvml: Any = None,
    environ: Mapping[str, str] | None = None,
) -> PowerSensor:
    """Open the power sensor of ``kind`` for ``gpus`` (NVML indices; ``None``: ``CUDA_VISIBLE_DEVICES``, else
    every GPU) sampling at ``rate_hz``.

    ``"auto"`` never fails for want of a sensor (it returns a :class:`NullSensor` with the reason); an
    invalid explicit GPU index or rate is still a :class:`CapbenchError`. ``nvml`` and ``environ`` replace
    the ``pynvml`` module and ``os.environ`` (tests).
    """
    if kind not in SENSOR_KINDS:
        raise CapbenchError(f"unknown power sensor {kind!r}; choose one of: {', '.join(SENSOR_KINDS)}")
    check_rate(rate_hz)
    if kind == "none":
        return NullSensor("power telemetry is off (power sensor 'none')")
    try:
        return NvmlSensor.open(gpus, rate_hz, nvml=nvml, environ=environ)
    except SensorUnavailableError as exc:
        if kind == "nvml":
            raise unavailable_with_fix(exc.reason) from exc
        return NullSensor(exc.reason)


__all__ = [
    "DEFAULT_RATE_HZ",
    "SENSOR_KINDS",
    "Delivery",
    "FeatureNotSupportedError",
    "GpuDevice",
    "NullSensor",
    "NvmlOutcome",
    "NvmlSensor",
    "PowerSample",
    "PowerSensor",
    "ReplaySensor",
    "SensorKind",
    "SensorStats",
    "SensorUnavailableError",
    "Sink",
    "classify_nvml_error",
    "map_nvml_error",
    "nvml_inventory",
    "open_power_sensor",
    "parse_cuda_visible_devices",
    "select_gpus",
]
