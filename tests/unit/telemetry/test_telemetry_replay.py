"""The replay sensor on a small hand-written trace: shifting onto now, pace, interpolation, metadata."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from capbench.clock import now_ns
from capbench.errors import CapbenchError
from capbench.hardware.gpus import describe_gpus
from capbench.metrics.energy import build_traces
from capbench.records import RecordWarning
from capbench.telemetry import GpuDevice, ReplaySensor
from capbench.telemetry.sensor import PowerSensor

MS = 1_000_000
# GPU 0 has a counter (J); GPU 1 only power. Recorded on some other clock (t starts at 5 s).
TRACE = [
    {"t_ns": 5_000 * MS, "gpu": 0, "power_w": 100.0, "energy_j": 1000.0},
    {"t_ns": 5_000 * MS + 1, "gpu": 1, "power_w": 60.0},
    {"t_ns": 5_100 * MS, "gpu": 0, "power_w": 300.0, "energy_j": 1020.0},
    {"t_ns": 5_100 * MS + 1, "gpu": 1, "power_w": 80.0},
    {"t_ns": 5_200 * MS, "gpu": 0, "power_w": 200.0, "energy_j": 1045.0},
    {"t_ns": 5_200 * MS + 1, "gpu": 1, "power_w": 70.0},
]


def write_trace(path: Path, records: list[dict[str, Any]], tail: str = "") -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail)
    return path


def test_instant_replay_shifts_the_trace_onto_now(tmp_path: Path) -> None:
    sensor = ReplaySensor(write_trace(tmp_path / "t.jsonl", TRACE), realtime=False)
    assert isinstance(sensor, PowerSensor) and sensor.duration_s == pytest.approx(0.2, abs=1e-6)
    before = now_ns()
    sensor.start()
    after = now_ns()
    time.sleep(0.05)
    sensor.stop()
    records = sensor.drain()
    assert len(records) == len(TRACE)
    offset = records[0]["t_ns"] - TRACE[0]["t_ns"]
    assert before - TRACE[0]["t_ns"] <= offset <= after - TRACE[0]["t_ns"]
    for got, want in zip(records, TRACE, strict=True):
        assert got == {**want, "t_ns": want["t_ns"] + offset}  # values unchanged, energy_j only where recorded
    sensor.close()


def test_realtime_replay_keeps_the_recorded_pace() -> None:
    delivered: list[tuple[int, dict[str, Any]]] = []
    sensor = ReplaySensor(TRACE, realtime=True)
    sensor.start(lambda r: delivered.append((now_ns(), r)), delivery="sampler")
    time.sleep(0.05)
    assert [r["t_ns"] for _, r in delivered] == [delivered[0][1]["t_ns"], delivered[0][1]["t_ns"] + 1]
    time.sleep(0.3)
    sensor.stop()
    assert len(delivered) == len(TRACE)  # the trace ended before stop(): no final sample
    start = delivered[0][1]["t_ns"]
    for at, record in delivered:
        assert at >= record["t_ns"]  # never released before its (shifted) time
        assert at - record["t_ns"] < 0.05e9
    assert delivered[-1][1]["t_ns"] - start == 200 * MS + 1


def test_sample_now_interpolates_and_stop_covers_the_window_end() -> None:
    slow = [dict(r, t_ns=r["t_ns"] * 20) for r in TRACE]  # the same trace over 4 s
    sensor = ReplaySensor(slow, realtime=True)
    assert sensor.sample_now() == []  # not started: no time on the trace yet
    sensor.start()
    time.sleep(0.2)
    (s0, s1) = sensor.sample_now(record=False)
    # on GPU 0, between the first two samples: power and counter interpolate with the same fraction
    f = (s0.power_w - 100.0) / 200.0  # type: ignore[operator]
    assert 0 < f < 1
    assert s0.energy_j == pytest.approx(1000.0 + 20.0 * f, rel=1e-6)
    assert s1.energy_j is None and 60.0 < s1.power_w < 80.0  # type: ignore[operator]
    energies = sensor.read_energy_j()
    assert energies[1] is None and energies[0] is not None and energies[0] >= s0.energy_j  # type: ignore[operator]
    before_stop = now_ns()
    sensor.stop()
    finals = [r for r in sensor.drain() if r["t_ns"] >= before_stop]
    assert {r["gpu"] for r in finals} == {0, 1}
    sensor.stop()
    sensor.close()


def test_replayed_trace_feeds_the_energy_metrics() -> None:
    sensor = ReplaySensor(TRACE, realtime=False)
    sensor.start()
    sensor.stop()
    traces, notes = build_traces(sensor.drain())
    by_gpu = {t.gpu: t for t in traces}
    assert notes == []
    assert by_gpu[0].source == "counter" and by_gpu[0].cumulative_j[-1] == pytest.approx(45.0)
    # GPU 1, trapezoid: (60+80)/2*0.1 + (80+70)/2*0.1 = 14.5 J
    assert by_gpu[1].source == "sampled" and by_gpu[1].cumulative_j[-1] == pytest.approx(14.5)


def test_devices_from_the_metadata_sidecar(tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "nvidia-h100-80gb-hbm3.jsonl", TRACE[::2])
    meta = {
        "devices": [
            GpuDevice(0, "NVIDIA H100 80GB HBM3", "GPU-x", 80 * 2**30, "550.54.15", 700.0, True, True).to_dict()
            | {"future_field": 1}
        ]
    }
    (tmp_path / "nvidia-h100-80gb-hbm3.meta.json").write_text(json.dumps(meta))
    sensor = ReplaySensor(trace)
    (device,) = sensor.devices()
    assert device.name == "NVIDIA H100 80GB HBM3" and device.power_limit_w == 700.0
    assert describe_gpus(sensor.devices())[0]["profile"] == "h100-sxm"
    assert sensor.info()["source"] == str(trace)


def test_generic_devices_without_metadata() -> None:
    d0, d1 = ReplaySensor(TRACE).devices()
    assert (d0.name, d0.energy_counter_supported) == ("replay GPU 0", True)
    assert (d1.name, d1.energy_counter_supported) == ("replay GPU 1", False)


def test_a_torn_last_line_is_skipped_with_a_warning(tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "t.jsonl", TRACE, tail='{"t_ns": 9')
    with pytest.warns(RecordWarning, match="torn"):
        sensor = ReplaySensor(trace, realtime=False)
    sensor.start()
    sensor.stop()
    assert len(sensor.drain()) == len(TRACE)


@pytest.mark.parametrize(
    ("records", "match"),
    [
        ([], "no samples"),
        ([{"t_ns": 1.5, "gpu": 0, "power_w": 1.0}], "integer 't_ns'"),
        ([{"t_ns": 1, "power_w": 1.0}], "integer 't_ns' and 'gpu'"),
        ([{"t_ns": 1, "gpu": 0, "power_w": "high"}], "power_w must be a number"),
        ([{"t_ns": 1, "gpu": 0}], "neither power_w nor energy_j"),
        ([{"t_ns": 1, "gpu": 0, "power_w": -5.0}], "power_w must be a finite number ≥ 0, got -5.0"),
        ([{"t_ns": 1, "gpu": 0, "energy_j": float("nan")}], "energy_j must be a finite number ≥ 0"),
    ],
)
def test_bad_traces(records: list[dict[str, Any]], match: str) -> None:
    with pytest.raises(CapbenchError, match=match):
        ReplaySensor(records)


def test_missing_trace_file(tmp_path: Path) -> None:
    with pytest.raises(CapbenchError, match="does not exist"):
        ReplaySensor(tmp_path / "nope.jsonl")
