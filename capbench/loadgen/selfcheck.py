"""Client self-check: is the load generator itself the bottleneck?

Three signals, gathered over the measured phase:

- **CPU**: the process's CPU time (user + system, :func:`time.process_time`) over the phase, divided by the
  phase's wall time: 1.0 means one core fully busy. A single asyncio event loop cannot use more than one
  core, so near 1.0 the client, not the server, sets the pace and its timestamps queue behind its own work.
- **Event-loop lag**: a ticker scheduled every ``interval_s`` records how late it ran. Every timestamp the
  client takes is late by at most about the lag of the iteration that took it. The stdlib loop waits in
  ``epoll`` with millisecond granularity (rounded up), and uvloop's timers have millisecond resolution, so an
  idle loop shows up to ~1 ms of lag; the warning threshold sits above that.
- **Schedule lag** (open loop): how late each arrival was submitted against its precomputed time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from capbench.clock import now_ns

CPU_UTIL_WARN = 0.9
LOOP_LAG_P99_WARN_S = 0.005
SCHEDULE_LAG_P99_WARN_S = 0.005


def quantile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of ``values`` by linear interpolation between order statistics; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    frac = pos - lo
    return ordered[lo] + (ordered[hi] - ordered[lo]) * frac


class LoopLagMonitor:
    """Samples event-loop lag: a callback re-armed every ``interval_s`` records how late it ran (seconds)."""

    def __init__(self, interval_s: float = 0.01) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self.interval_s = interval_s
        self.samples: list[float] = []
        self._handle: asyncio.TimerHandle | None = None
        self._expected_ns = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._arm(now_ns())

    def _arm(self, from_ns: int) -> None:
        assert self._loop is not None
        self._expected_ns = from_ns + round(self.interval_s * 1e9)
        self._handle = self._loop.call_later(self.interval_s, self._tick)

    def _tick(self) -> None:
        t = now_ns()
        self.samples.append(max(0, t - self._expected_ns) / 1e9)
        self._arm(t)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class CpuMeter:
    """Process CPU seconds and wall seconds between :meth:`start` and :meth:`stop`."""

    def __init__(self) -> None:
        self._cpu0 = 0.0
        self._wall0 = 0
        self.cpu_s: float | None = None
        self.wall_s: float | None = None

    def start(self) -> None:
        self._cpu0 = time.process_time()
        self._wall0 = now_ns()

    def stop(self) -> None:
        self.cpu_s = time.process_time() - self._cpu0
        self.wall_s = (now_ns() - self._wall0) / 1e9

    @property
    def utilisation(self) -> float | None:
        if self.cpu_s is None or not self.wall_s:
            return None
        return self.cpu_s / self.wall_s


def assess(
    cpu_util: float | None,
    loop_lag_p99_s: float | None,
    schedule_lag_p99_s: float | None,
) -> tuple[bool, list[str]]:
    """``(client_bound, warnings)`` from the three signals (thresholds are this module's constants)."""
    warnings: list[str] = []
    bound = False
    if cpu_util is not None and cpu_util > CPU_UTIL_WARN:
        bound = True
        warnings.append(
            f"client CPU at {cpu_util:.0%} of one core over the measured phase: the client itself may have been "
            "the bottleneck (throughput capped, timestamps late)"
        )
    if loop_lag_p99_s is not None and loop_lag_p99_s > LOOP_LAG_P99_WARN_S:
        bound = True
        warnings.append(
            f"client event-loop lag p99 {loop_lag_p99_s * 1e3:.1f} ms (> {LOOP_LAG_P99_WARN_S * 1e3:g} ms): "
            "client timestamps may be late by about that much"
        )
    if schedule_lag_p99_s is not None and schedule_lag_p99_s > SCHEDULE_LAG_P99_WARN_S:
        bound = True
        warnings.append(
            f"open-loop submissions late against their schedule: p99 {schedule_lag_p99_s * 1e3:.1f} ms "
            f"(> {SCHEDULE_LAG_P99_WARN_S * 1e3:g} ms); the offered rate was lower than asked"
        )
    return bound, warnings
