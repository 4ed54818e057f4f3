"""Client self-check: quantiles, the loop-lag ticker, CPU metering, and when the client counts as the bottleneck."""

from __future__ import annotations

import asyncio
import time

import pytest

from capbench.loadgen.selfcheck import CpuMeter, LoopLagMonitor, assess, quantile


def test_quantile_interpolates_between_order_statistics() -> None:
    assert quantile([], 0.5) is None
    assert quantile([3.0], 0.99) == 3.0
    assert quantile([4.0, 1.0, 3.0, 2.0], 0.5) == 2.5
    assert quantile([float(i) for i in range(101)], 0.99) == pytest.approx(99.0)
    assert quantile([1.0, 2.0], 1.0) == 2.0


def test_loop_lag_monitor_sees_a_blocked_loop() -> None:
    async def main() -> list[float]:
        monitor = LoopLagMonitor(0.005)
        monitor.start()
        await asyncio.sleep(0.03)
        time.sleep(0.05)  # block the loop: the next tick is ~50 ms late
        await asyncio.sleep(0.02)
        monitor.stop()
        return monitor.samples

    samples = asyncio.run(main())
    assert len(samples) >= 5 and min(samples) >= 0
    assert 0.04 < max(samples) < 0.2
    assert sorted(samples)[len(samples) // 2] < 0.005


def test_cpu_meter_counts_busy_time() -> None:
    meter = CpuMeter()
    meter.start()
    start = time.process_time()
    while time.process_time() - start < 0.03:  # burn 30 ms of CPU, however long that takes on a busy machine
        pass
    time.sleep(0.03)  # and idle for 30 ms
    meter.stop()
    assert meter.cpu_s is not None and meter.wall_s is not None
    assert 0.03 <= meter.cpu_s < meter.wall_s
    assert meter.utilisation is not None and 0 < meter.utilisation < 1


def test_assess_flags_each_signal() -> None:
    assert assess(0.5, 0.001, None) == (False, [])
    assert assess(None, None, None) == (False, [])
    bound, warnings = assess(0.97, 0.001, None)
    assert bound and "97% of one core" in warnings[0]
    bound, warnings = assess(0.2, 0.02, None)
    assert bound and "event-loop lag p99 20.0 ms" in warnings[0]
    bound, warnings = assess(0.2, 0.001, 0.03)
    assert bound and "open-loop submissions late" in warnings[0]
    assert len(assess(0.99, 0.02, 0.03)[1]) == 3
