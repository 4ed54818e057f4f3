"""Which power sensor a run uses, and on which GPUs.

- ``power: none``, or an in-process run on CPU: the null sensor (energy null, never 0).
- hf runner on CUDA: the one GPU it computes on (the first visible one) unless ``gpus`` names others.
- server runners: the ``gpus`` given, else every visible GPU (the server is assumed to run on this machine;
  for a remote server pass ``power: none`` or ``gpus``).
Samples are delivered on the run's own thread (``delivery="drain"``): the harness drains them into
``power.jsonl`` after every request, and ``stop()`` adds a final sample at the window's end.
"""

from __future__ import annotations

from capbench.config import RunSpec
from capbench.telemetry import NullSensor, PowerSensor, open_power_sensor


def open_run_sensor(spec: RunSpec, device: str) -> PowerSensor:
    """The power sensor for a run of ``spec`` on ``device`` (``cpu``, ``cuda`` or ``server``)."""
    if spec.power == "none":
        return NullSensor("power sampling turned off (power: none)")
    if device == "cpu":
        return NullSensor("the run computes on the CPU: no GPU power to sample")
    sensor = open_power_sensor(spec.power, gpus=spec.gpus, rate_hz=spec.power_rate_hz)
    if device == "cuda" and spec.gpus is None and len(sensor.devices()) > 1:
        first = sensor.devices()[0].index
        sensor.close()
        sensor = open_power_sensor(spec.power, gpus=[first], rate_hz=spec.power_rate_hz)
    return sensor
