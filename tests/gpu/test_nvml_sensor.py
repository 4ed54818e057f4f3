"""The NVML sensor on a real GPU under a torch matmul load (skipped where NVML finds no GPU)."""

from __future__ import annotations

import itertools
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from capbench.clock import now_ns
from capbench.hardware.gpus import describe_gpus
from capbench.metrics.energy import build_traces
from capbench.telemetry import NvmlSensor, ReplaySensor, open_power_sensor
from tests.support.paths import REPO

pytestmark = pytest.mark.gpu


def _norm(uuid: object) -> str:
    text = str(uuid).lower()
    return text[4:] if text.startswith("gpu-") else text


@pytest.fixture
def torch_cuda() -> Any:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    return torch


def _sensor_for_cuda0(torch: Any) -> NvmlSensor:
    """An NVML sensor on the GPU that torch calls cuda:0 (matched by UUID when torch reports one)."""
    probe = open_power_sensor("nvml", None, 20.0)
    try:
        uuid = getattr(torch.cuda.get_device_properties(0), "uuid", None)
        index = next((d.index for d in probe.devices() if uuid and _norm(d.uuid) == _norm(uuid)), None)
        index = probe.devices()[0].index if index is None else index
    finally:
        probe.close()
    sensor = open_power_sensor("nvml", [index], 20.0)
    assert isinstance(sensor, NvmlSensor)
    return sensor


def test_power_rises_under_matmul_and_the_counter_is_monotone(torch_cuda: Any) -> None:
    torch = torch_cuda
    records: list[dict[str, Any]] = []
    with _sensor_for_cuda0(torch) as sensor:
        (device,) = sensor.devices()
        assert device.name and device.driver_version and device.memory_bytes
        described = describe_gpus(sensor.devices())[0]
        assert described["name"] == device.name  # profile may be None for a GPU capbench has no profile for
        sensor.start(records.append)
        time.sleep(1.5)
        sensor.drain()
        t_load = now_ns()
        a = torch.randn(8192, 8192, device="cuda:0", dtype=torch.bfloat16)
        b = torch.randn(8192, 8192, device="cuda:0", dtype=torch.bfloat16)
        end = time.monotonic() + 4.0
        while time.monotonic() < end:
            for _ in range(8):
                torch.matmul(a, b)
            torch.cuda.synchronize()
            sensor.drain()
        t_load_end = now_ns()
        sensor.stop()
        stats = sensor.stats()

    assert stats.read_errors == {} and stats.thread_error is None
    assert stats.period_s_measured is not None and 0.04 <= stats.period_s_measured <= 0.1
    idle = [r["power_w"] for r in records if r["t_ns"] < t_load and r["power_w"] is not None]
    # NVML's power reading may average over ~1 s: judge the second half of the load
    late = t_load + (t_load_end - t_load) // 2
    busy = [r["power_w"] for r in records if late <= r["t_ns"] <= t_load_end and r["power_w"] is not None]
    assert idle and busy
    limit = device.power_limit_w or 2000.0
    assert all(0 < p <= 1.2 * limit for p in idle + busy)
    assert statistics.median(busy) > statistics.median(idle) + 30.0
    if device.energy_counter_supported:
        energies = [r["energy_j"] for r in records]
        assert all(b >= a for a, b in itertools.pairwise(energies))
        traces, _ = build_traces(records)
        assert traces[0].source == "counter"
        counter_j = float(traces[0].energy_between(t_load, t_load_end))
        sampled = [dict(r) for r in records]
        for r in sampled:
            r.pop("energy_j", None)
        (trapezoid,), _ = build_traces(sampled)
        sampled_j = float(trapezoid.energy_between(t_load, t_load_end))
        assert counter_j > 0 and 0.5 < sampled_j / counter_j < 1.5


def test_record_script_writes_a_replayable_trace(torch_cuda: Any, tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "record_power_trace.py"),
            "--idle-s",
            "0.5",
            "--load-s",
            "1.5",
            "--size",
            "4096",
            "--out-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    (trace,) = tmp_path.glob("*.jsonl")
    assert trace.with_suffix(".meta.json").is_file()
    sensor = ReplaySensor(trace, realtime=False)
    assert sensor.devices()[0].driver_version
    sensor.start()
    sensor.stop()
    assert len(sensor.drain()) >= 20
