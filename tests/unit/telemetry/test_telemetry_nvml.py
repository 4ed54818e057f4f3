"""The NVML sensor against a fake NVML: units, counter support, scheduling, errors, delivery, GPU selection."""

from __future__ import annotations

import itertools
import json
import threading
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from capbench.clock import now_ns
from capbench.errors import CapbenchError
from capbench.hardware.gpus import describe_gpus
from capbench.telemetry import NvmlSensor, open_power_sensor
from capbench.telemetry.sensor import PowerSensor, next_tick
from capbench.testing.fake_nvml import FUNCTION_NOT_FOUND, GPU_IS_LOST, FakeGpu, FakeNvml, two_gpus

NO_ENV: dict[str, str] = {}


def open_fake(fake: FakeNvml, gpus: list[int] | None = None, rate_hz: float = 10.0, **kw: Any) -> NvmlSensor:
    return NvmlSensor.open(gpus, rate_hz, nvml=fake, environ=kw.pop("environ", NO_ENV), **kw)


# -- units and devices ------------------------------------------------------------------------------------


def test_power_mw_to_w_and_energy_mj_to_j() -> None:
    fake = FakeNvml(gpus=[FakeGpu(power_mw=312_345, energy_mj=7_250_125)])
    with open_fake(fake) as sensor:
        before = now_ns()
        (sample,) = sensor.sample_now()
        after = now_ns()
    assert sample.gpu == 0
    assert sample.power_w == pytest.approx(312.345)
    assert sample.energy_j == pytest.approx(7250.125)
    assert before <= sample.t_ns <= after
    assert sample.to_record() == {"t_ns": sample.t_ns, "gpu": 0, "power_w": 312.345, "energy_j": 7250.125}


def test_devices_describe_each_gpu() -> None:
    fake = two_gpus(energy_mj=None, power_limit_mw=None)
    with open_fake(fake) as sensor:
        d0, d1 = sensor.devices()
    assert isinstance(sensor, PowerSensor)
    assert (d0.index, d0.name, d0.uuid) == (0, "NVIDIA H100 80GB HBM3", "GPU-aaaaaaaa-0000-0000-0000-000000000000")
    assert d0.memory_bytes == 80 * 2**30 and d0.driver_version == "550.54.15"
    assert d0.power_limit_w == pytest.approx(700.0)
    assert d0.energy_counter_supported and d0.power_supported
    assert d1.power_limit_w is None  # NVML could not say: None, never 0
    assert not d1.energy_counter_supported


def test_counter_supported_on_one_gpu_only() -> None:
    fake = two_gpus(energy_mj=None)
    with open_fake(fake) as sensor:
        records = [s.to_record() for s in sensor.sample_now()]
        notes = sensor.info()["notes"]
    assert records[0]["energy_j"] == pytest.approx(5_000_000.0)
    assert "energy_j" not in records[1] and records[1]["power_w"] == pytest.approx(90.5)
    assert any("GPU 1" in n and "no total-energy counter" in n for n in notes)
    # detected once at open: no further counter reads are attempted on GPU 1
    assert fake.gpus[1].energy_reads == 1


def test_counter_function_missing_from_an_old_driver_is_not_supported() -> None:
    fake = FakeNvml(gpus=[FakeGpu(fail_energy=1, fail_code=FUNCTION_NOT_FOUND)])
    with open_fake(fake) as sensor:
        assert not sensor.devices()[0].energy_counter_supported
        (sample,) = sensor.sample_now()
    assert sample.energy_j is None and sample.power_w == pytest.approx(250.0)
    assert fake.gpus[0].energy_reads == 1  # probed once at open, never read again


def test_counter_probe_failing_otherwise_keeps_the_counter_on() -> None:
    fake = FakeNvml(gpus=[FakeGpu(fail_energy=1, fail_code=GPU_IS_LOST)])
    with open_fake(fake) as sensor:
        assert sensor.devices()[0].energy_counter_supported
        assert sensor.sample_now()[0].energy_j == pytest.approx(5_000_000.0)


def test_describe_gpus_matches_profiles() -> None:
    with open_fake(two_gpus()) as sensor:
        described = describe_gpus(sensor.devices())
    assert described[0]["profile"] == "h100-sxm"
    assert described[0]["driver"] == "550.54.15" and described[0]["memory_bytes"] == 80 * 2**30
    assert described[1]["name"] == "NVIDIA Fake Board" and described[1]["profile"] is None


def test_info_is_json_ready() -> None:
    with open_fake(two_gpus()) as sensor:
        sensor.sample_now()
        info = sensor.info()
    json.dumps(info)
    assert info["kind"] == "nvml" and info["available"] and info["unavailable_reason"] is None
    assert info["rate_hz"] == 10.0 and info["period_s_target"] == pytest.approx(0.1)
    assert info["selection"] == "all" and len(info["gpus"]) == 2


# -- the sampling thread ----------------------------------------------------------------------------------


def test_rate_achieved_at_50_hz() -> None:
    fake = two_gpus()
    records: list[dict[str, Any]] = []
    with open_fake(fake, rate_hz=50.0) as sensor:
        sensor.start(records.append)
        time.sleep(0.5)
        sensor.stop()
        stats = sensor.stats()
    # 0.5 s at 50 Hz is ~25 rounds; generous bounds for a loaded CI machine
    assert 10 <= stats.rounds <= 30
    assert stats.period_s_measured is not None and 0.018 <= stats.period_s_measured <= 0.05
    assert stats.period_s_target == pytest.approx(0.02)
    assert len(records) == 2 * stats.rounds + 2  # two GPUs per round, plus the final sample of each
    assert stats.samples == len(records)
    for gpu in (0, 1):
        times = [r["t_ns"] for r in records if r["gpu"] == gpu]
        assert times == sorted(times)


def test_schedule_does_not_drift_when_rounds_are_slow() -> None:
    """Rounds taking 70% of the period keep the period; rounds longer than it skip ticks, never burst."""
    slow = 0.014

    def slow_power() -> int:
        time.sleep(slow)
        return 100_000

    fake = FakeNvml(gpus=[FakeGpu(power_mw=slow_power, energy_mj=None)])
    with open_fake(fake, rate_hz=50.0) as sensor:
        sensor.start()
        time.sleep(0.5)
        sensor.stop()
        stats = sensor.stats()
    assert stats.period_s_measured is not None
    assert stats.period_s_measured == pytest.approx(0.02, rel=0.5)
    assert stats.rounds <= 30

    def slower_power() -> int:
        time.sleep(0.05)
        return 100_000

    fake = FakeNvml(gpus=[FakeGpu(power_mw=slower_power, energy_mj=None)])
    with open_fake(fake, rate_hz=50.0) as sensor:
        sensor.start()
        time.sleep(0.5)
        sensor.stop()
        stats = sensor.stats()
    assert stats.missed_ticks > 0
    assert stats.rounds <= 12  # ~0.5 s / 0.06 s; a burst of make-up rounds would exceed it
    assert stats.max_gap_ns is not None and stats.max_gap_ns >= 0.05e9


def test_restarting_resets_the_schedule_statistics_and_keeps_the_cumulative_counters() -> None:
    """A pause between stop() and a new start() is no sampling gap: period and max gap describe the session."""
    fake = FakeNvml(gpus=[FakeGpu(fail_power=3)])  # power reads fail at first (the counter still gives samples)
    with open_fake(fake, rate_hz=50.0) as sensor:
        sensor.start()
        time.sleep(0.3)
        sensor.stop()
        first = sensor.stats()
        time.sleep(0.5)  # the pause
        sensor.start()
        time.sleep(0.3)
        sensor.stop()
        second = sensor.stats()
    assert first.rounds >= 5 and second.rounds >= 5
    assert second.rounds <= 20  # this session's rounds only (~15), not both sessions'
    assert second.period_s_measured is not None and 0.018 <= second.period_s_measured <= 0.05
    assert second.max_gap_ns is not None and second.max_gap_ns < 0.25e9  # the 0.5 s pause is not a gap
    assert second.first_round_ns is not None and first.last_round_ns is not None
    assert second.first_round_ns > first.last_round_ns + 0.4e9
    # cumulative over the sensor's life
    assert first.read_errors and second.read_errors == first.read_errors  # not reset, none new
    assert second.samples == first.samples + second.rounds + 1  # this session's rounds and final sample


def test_stop_takes_a_final_sample_and_is_idempotent() -> None:
    fake = two_gpus()
    records: list[dict[str, Any]] = []
    sensor = open_fake(fake, rate_hz=1.0)  # one round at start, the next only after 1 s
    sensor.start(records.append)
    time.sleep(0.1)
    before_stop = now_ns()
    sensor.stop()
    assert {r["gpu"] for r in records if r["t_ns"] >= before_stop} == {0, 1}
    n, reads = len(records), fake.gpus[0].power_reads
    sensor.stop()
    assert len(records) == n and fake.gpus[0].power_reads == reads
    sensor.close()
    sensor.close()
    sensor.stop()
    assert fake.shutdowns == 1 and fake.inits == 1
    with pytest.raises(CapbenchError, match="closed"):
        sensor.start()


def test_start_twice_is_an_error_and_restart_after_stop_works() -> None:
    with open_fake(FakeNvml(), rate_hz=20.0) as sensor:
        sensor.start()
        with pytest.raises(CapbenchError, match="already sampling"):
            sensor.start()
        sensor.stop()
        first = len(sensor.drain())
        sensor.start()
        sensor.stop()
        assert first >= 2 and len(sensor.drain()) >= 2
        with pytest.raises(CapbenchError, match="delivery"):
            sensor.start(delivery="later")  # type: ignore[arg-type]


def test_read_error_on_one_gpu_is_counted_not_fatal() -> None:
    fake = two_gpus(fail_code=GPU_IS_LOST, energy_mj=None)
    with open_fake(fake) as sensor:
        fake.gpus[1].fail_power = 3
        batches = [sensor.sample_now() for _ in range(5)]
        stats = sensor.stats()
    assert [len(b) for b in batches] == [1, 1, 1, 2, 2]  # GPU 0 always; GPU 1 once its reads work again
    assert stats.read_errors == {1: 3}
    assert "GPU is lost" in stats.last_errors[1] and "power" in stats.last_errors[1]


def test_failing_gpu_in_the_thread_keeps_the_others_sampled() -> None:
    fake = two_gpus(power_exception=RuntimeError("driver hiccup"), energy_mj=None)
    with open_fake(fake, rate_hz=50.0) as sensor:
        sensor.start()
        time.sleep(0.2)
        sensor.stop()
        records = sensor.drain()
        stats = sensor.stats()
    assert stats.thread_error is None
    assert {r["gpu"] for r in records} == {0}
    assert stats.read_errors[1] == stats.rounds + 1  # every round, and the final sample
    assert "RuntimeError: driver hiccup" in stats.last_errors[1]


def test_a_failed_counter_read_keeps_the_power_reading() -> None:
    fake = FakeNvml(gpus=[FakeGpu()])
    with open_fake(fake) as sensor:
        fake.gpus[0].fail_energy = 1
        (first,) = sensor.sample_now()
        (second,) = sensor.sample_now()
    assert first.energy_j is None and first.power_w == pytest.approx(250.0)
    assert "energy_j" not in first.to_record()
    assert second.energy_j is not None


def test_energy_counter_is_monotone_through_the_sensor() -> None:
    fake = FakeNvml(gpus=[FakeGpu(energy_step_mj=2_500)])
    with open_fake(fake, rate_hz=100.0) as sensor:
        sensor.start()
        time.sleep(0.1)
        sensor.stop()
        energies = [r["energy_j"] for r in sensor.drain()]
    assert len(energies) >= 3
    assert all(b - a == pytest.approx(2.5) for a, b in itertools.pairwise(energies))


# -- delivery and thread safety ---------------------------------------------------------------------------


def test_drain_delivery_calls_the_sink_only_on_the_draining_thread() -> None:
    threads: set[int] = set()
    records: list[dict[str, Any]] = []

    def sink(record: dict[str, Any]) -> None:
        threads.add(threading.get_ident())
        records.append(record)

    with open_fake(two_gpus(), rate_hz=100.0) as sensor:
        sensor.start(sink)
        time.sleep(0.1)
        assert records == []  # nothing delivered until this thread drains
        drained = sensor.drain()
        assert drained == records and len(records) >= 4
        sensor.stop()
    assert threads == {threading.get_ident()}


def test_sampler_delivery_runs_on_the_sampling_thread_never_concurrently() -> None:
    threads: set[int] = set()
    records: list[dict[str, Any]] = []
    inside = threading.Lock()
    overlaps = 0

    def sink(record: dict[str, Any]) -> None:
        nonlocal overlaps
        if not inside.acquire(blocking=False):
            overlaps += 1
            return
        try:
            threads.add(threading.get_ident())
            records.append(record)
            time.sleep(0.0005)
        finally:
            inside.release()

    with open_fake(two_gpus(), rate_hz=100.0) as sensor:
        sensor.start(sink, delivery="sampler")
        deadline = time.monotonic() + 2.0
        while len(records) < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(records) >= 6  # delivered while this thread only sleeps
        for _ in range(20):
            sensor.drain()  # a drain racing the sampler: serialized, never concurrent
        sensor.stop()
        assert sensor.drain() == []
    assert overlaps == 0
    assert any(t != threading.get_ident() for t in threads)


def test_sink_error_in_drain_propagates_and_keeps_the_records() -> None:
    failing = True
    kept: list[dict[str, Any]] = []

    def sink(record: dict[str, Any]) -> None:
        if failing and len(kept) == 1:
            raise OSError("disk full")
        kept.append(record)

    with open_fake(FakeNvml(gpus=[FakeGpu(energy_step_mj=1000)]), rate_hz=1.0) as sensor:
        sensor.start(sink)
        with pytest.raises(OSError, match="disk full"):
            sensor.stop()  # delivers the thread's first round, then fails on the final sample
        sensor.stop()  # stopped all the same: idempotent
        for _ in range(2):
            sensor.sample_now()
        with pytest.raises(OSError, match="disk full"):
            sensor.drain()
        assert len(kept) == 1
        failing = False
        delivered = sensor.drain()
    assert len(delivered) == 3 and kept[1:] == delivered
    energies = [r["energy_j"] for r in kept]
    assert energies == sorted(energies) and len(set(energies)) == 4  # each record delivered once, in order


def test_sink_error_on_the_sampling_thread_is_counted() -> None:
    def broken(record: dict[str, Any]) -> None:
        raise ValueError("power.jsonl is closed")

    with open_fake(FakeNvml(), rate_hz=100.0) as sensor:
        sensor.start(broken, delivery="sampler")
        time.sleep(0.1)
        sensor._sink = None  # let stop() deliver without the broken sink
        sensor.stop()
        stats = sensor.stats()
    assert stats.sink_errors >= 1 and stats.thread_error is None
    assert stats.last_sink_error == "ValueError: power.jsonl is closed"


def test_buffer_is_bounded_and_drops_the_oldest() -> None:
    with open_fake(FakeNvml(gpus=[FakeGpu(energy_step_mj=1000)]), max_buffered=5) as sensor:
        for _ in range(8):
            sensor.sample_now()
        records = sensor.drain()
        assert sensor.stats().dropped_samples == 3
    assert len(records) == 5 and records[0]["energy_j"] == pytest.approx(5_000_000.0 + 3.0)


def test_sample_now_without_record_is_not_buffered_and_read_energy() -> None:
    with open_fake(two_gpus(energy_mj=None)) as sensor:
        sensor.sample_now(record=False)
        assert sensor.drain() == []
        assert sensor.read_energy_j() == {0: pytest.approx(5_000_000.0), 1: None}


# -- the schedule -----------------------------------------------------------------------------------------


def test_next_tick_examples() -> None:
    assert next_tick(0, 100, 1, 50) == (1, 0)  # on time: wait for tick 1 at 100
    assert next_tick(0, 100, 1, 100) == (2, 1)  # exactly at tick 1's time after it ran late: skip it
    assert next_tick(0, 100, 1, 350) == (4, 3)  # ticks 1, 2, 3 are past: skip them, next is 4 at 400
    with pytest.raises(ValueError):
        next_tick(0, 0, 1, 0)


@given(
    t0=st.integers(0, 10**12),
    period=st.integers(1, 10**9),
    done=st.integers(0, 10**4),
    late=st.integers(-(10**9), 10**10),
)
def test_next_tick_is_on_the_grid_in_the_future_and_skips_only_past_ticks(
    t0: int, period: int, done: int, late: int
) -> None:
    now = t0 + done * period + late
    k, skipped = next_tick(t0, period, done, now)
    due = t0 + k * period
    assert k >= done and skipped == k - done
    if late < 0:
        assert (k, skipped) == (done, 0)
    else:
        assert now < due <= now + period  # the next tick after now, never one already past


# -- GPU selection ----------------------------------------------------------------------------------------


def four_gpus() -> FakeNvml:
    """Four GPUs with UUIDs GPU-aaaa0000-..., GPU-bbbb0000-..., ... and power 100.000, 100.001, ... W."""
    uuids = [f"GPU-{c * 4}0000-0000-0000-0000-000000000000" for c in "abcd"]
    return FakeNvml(gpus=[FakeGpu(uuid=u, power_mw=100_000 + i) for i, u in enumerate(uuids)])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2", [2]),
        ("3,1", [3, 1]),
        (" 1 , 0 ", [1, 0]),
        ("GPU-cccc", [2]),  # a unique UUID prefix
        ("GPU-dddd0000-0000-0000-0000-000000000000,0", [3, 0]),
        ("bbbb0000", [1]),  # without the GPU- prefix
        ("GPU-", []),  # a prefix every GPU shares: ambiguous
        ("0,7,1", [0]),  # 7 does not exist: it and everything after it are ignored, as in CUDA
        ("-1", []),
        ("", []),
        ("1,1,2", [1, 2]),
        ("MIG-abcd,0", []),
    ],
)
def test_cuda_visible_devices_mapping(value: str, expected: list[int]) -> None:
    fake = four_gpus()
    env = {"CUDA_VISIBLE_DEVICES": value}
    if not expected:
        with pytest.raises(CapbenchError, match="no GPU selected"):
            open_fake(fake, environ=env)
        assert fake.shutdowns == fake.inits == 1
        return
    with open_fake(fake, environ=env) as sensor:
        assert [d.index for d in sensor.devices()] == expected
        assert [s.gpu for s in sensor.sample_now()] == expected
        assert [s.power_w for s in sensor.sample_now()] == [pytest.approx(100 + i / 1000) for i in expected]
        assert sensor.info()["selection"] == "CUDA_VISIBLE_DEVICES"


def test_cuda_visible_devices_notes() -> None:
    with open_fake(four_gpus(), environ={"CUDA_VISIBLE_DEVICES": "0,9,1"}) as sensor:
        assert any("'9' names no GPU" in n for n in sensor.info()["notes"])
    fake = four_gpus()
    fake.gpus[1].name = "NVIDIA L40S"
    with open_fake(fake, environ={"CUDA_VISIBLE_DEVICES": "1"}) as sensor:
        assert any("CUDA_DEVICE_ORDER=PCI_BUS_ID" in n for n in sensor.info()["notes"])
    with open_fake(four_gpus(), environ={"CUDA_VISIBLE_DEVICES": "1", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}) as sensor:
        assert sensor.info()["notes"] == []


def test_no_cuda_visible_devices_selects_every_gpu() -> None:
    with open_fake(four_gpus()) as sensor:
        assert [d.index for d in sensor.devices()] == [0, 1, 2, 3]
        assert sensor.info()["selection"] == "all"


def test_explicit_gpus_override_the_environment() -> None:
    with open_fake(four_gpus(), gpus=[3, 0], environ={"CUDA_VISIBLE_DEVICES": "1"}) as sensor:
        assert [d.index for d in sensor.devices()] == [3, 0]
        assert sensor.info()["selection"] == "explicit"


@pytest.mark.parametrize(("gpus", "match"), [([4], "does not exist"), ([-1], "does not exist"), ([1, 1], "twice")])
def test_invalid_explicit_gpus_are_an_error_even_in_auto(gpus: list[int], match: str) -> None:
    fake = four_gpus()
    with pytest.raises(CapbenchError, match=match):
        open_power_sensor("auto", gpus, nvml=fake, environ=NO_ENV)
    assert fake.shutdowns == fake.inits == 1  # NVML shut down again after the failed open


@pytest.mark.parametrize("rate", [0, -1.0, 1001.0, float("nan")])
def test_invalid_rate(rate: float) -> None:
    with pytest.raises(CapbenchError, match="sampling rate"):
        open_power_sensor("auto", None, rate, nvml=FakeNvml(), environ=NO_ENV)
