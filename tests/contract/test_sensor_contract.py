"""Every power sensor held to the same contract: the null sensor, the replay sensor and the NVML sensor (on the
fake NVML of capbench.testing.fake_nvml).

A sensor started, sampled and stopped: its samples (delivered through ``drain``) are power records the reader
accepts (integers ``gpu`` and ``t_ns``, ``power_w`` and ``energy_j`` finite and non-negative or null), in time
order per GPU, only for the GPUs it lists; ``stop``, ``close`` and ``drain`` may be repeated; ``info()`` is JSON
and says whether it is available, and why not.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from capbench.records.validate import check_power
from capbench.telemetry import NullSensor, NvmlSensor, ReplaySensor
from capbench.testing.fake_nvml import two_gpus

TRACE = [
    {"t_ns": i * 50_000_000, "gpu": g, "power_w": 100.0 + g, "energy_j": 5.0 * i} for i in range(6) for g in (0, 1)
]


def null() -> Any:
    return NullSensor("no GPU in this test")


def replay() -> Any:
    return ReplaySensor(TRACE, realtime=False)


def nvml() -> Any:
    return NvmlSensor.open(None, 50.0, nvml=two_gpus(), environ={})


@pytest.mark.parametrize("make", [null, replay, nvml], ids=["null", "replay", "nvml-fake"])
def test_sensor_contract(make: Any, tmp_path: Path) -> None:
    sensor = make()
    try:
        info = sensor.info()
        json.dumps(info)
        devices = {d.index for d in sensor.devices()}
        if isinstance(sensor, NullSensor):
            assert info["available"] is False and info["unavailable_reason"]
            assert devices == set()
        sensor.start()
        time.sleep(0.15)
        sensor.stop()
        samples = sensor.drain() + sensor.drain()
        sensor.stop()  # twice: harmless
        by_gpu: dict[int, list[int]] = defaultdict(list)
        for line, sample in enumerate(samples, 1):
            check_power(sample, tmp_path / "power.jsonl", line)
            assert sample["gpu"] in devices
            by_gpu[sample["gpu"]].append(sample["t_ns"])
        for times in by_gpu.values():
            assert times == sorted(times), "samples out of time order"
        if devices:
            assert samples, "an available sensor delivered no sample"
        json.dumps(sensor.info())
    finally:
        sensor.close()
        sensor.close()  # idempotent
