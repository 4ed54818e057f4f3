"""Client self-check: is the load generator itself the bottleneck?

Three signals, gathered over the measured phase:

- **CPU**: the process's CPU time (user + system, :func:`time.process_time`) over the phase, divided by the
  phase's wall time: 1.0 means one core fully busy. A single asyncio event loop cannot use more than one
  core, so near 1.0 the client, not the server, sets the pace and its timestamps queue behind its own work.
- **Event-loop lag**: a ticker scheduled every ``interval_s`` records how late it ran. Every timestamp the
  client takes is late by at most about the lag of the iteration that took it. The stdlib loop waits in
  ``epoll`` with millisecond granularity (rounded up), and uvloop's timers have millisecond resolution, so an
  idle loop shows up to ~1 ms of lag (:data:`LOOP_LAG_IDLE_S`); the warning thresholds sit above that. Three
  views of the samples are checked: the p99 (a loop that is often late), the maximum (one long stall: every
  timestamp taken while it lasted, e.g. the tokens of every stream that was being read, is late by up to
  that much, however rare it was), and the *stall time*, the lag summed over the ticks beyond the idle
  allowance, as a fraction of the measured phase (many shorter stalls).
- **Schedule lag** (open loop): how late each arrival was submitted against its precomputed time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from capbench.clock import now_ns
from capbench.loadgen.lagstats import LagSketch

CPU_UTIL_WARN = 0.9
LOOP_LAG_P99_WARN_S = 0.005
LOOP_LAG_MAX_WARN_S = 0.05
"""One tick later than this is a stall that made the timestamps taken during it late (TTFT, inter-token times)."""
LOOP_LAG_IDLE_S = 0.001
"""The lag an idle loop shows per tick (timer granularity); only lag beyond it counts as stall time."""
LOOP_STALL_FRACTION_WARN = 0.02
"""Stall time (summed lag beyond :data:`LOOP_LAG_IDLE_S` per tick) above this fraction of the measured phase."""
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
    """Samples event-loop lag: a callback re-armed every ``interval_s`` records how late it ran (seconds).

    Memory stays bounded however long it runs: the lags go into a :class:`~capbench.loadgen.lagstats.LagSketch`
    (``lags``: count, maximum, quantiles) and the stall time (:func:`stall_s`) is summed as they come
    (``stall_s``).
    """

    def __init__(self, interval_s: float = 0.01, idle_s: float = LOOP_LAG_IDLE_S) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self.interval_s = interval_s
        self.idle_s = idle_s
        self.lags = LagSketch()
        self.stall_s = 0.0
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

    def _record(self, lag_s: float) -> None:
        self.lags.add(lag_s)
        if lag_s > self.idle_s:
            self.stall_s += lag_s - self.idle_s

    def _tick(self) -> None:
        t = now_ns()
        self._record(max(0, t - self._expected_ns) / 1e9)
        self._arm(t)

    def stop(self) -> None:
        """Stop ticking. A tick that is already overdue counts as a last sample (a stall right before stop())."""
        if self._handle is not None:
            late = now_ns() - self._expected_ns
            if late > 0:
                self._record(late / 1e9)
            self._handle.cancel()
            self._handle = None


def stall_s(samples: Sequence[float], idle_s: float = LOOP_LAG_IDLE_S) -> float:
    """Summed loop lag beyond ``idle_s`` per tick: about how long the loop was blocked in all, in seconds."""
    return sum(x - idle_s for x in samples if x > idle_s)


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
    def utilization(self) -> float | None:
        if self.cpu_s is None or not self.wall_s:
            return None
        return self.cpu_s / self.wall_s


def assess(
    cpu_util: float | None,
    loop_lag_p99_s: float | None,
    schedule_lag_p99_s: float | None,
    *,
    loop_lag_max_s: float | None = None,
    loop_stall_s: float | None = None,
    phase_s: float | None = None,
) -> tuple[bool, list[str]]:
    """``(client_bound, warnings)`` from the signals (thresholds are this module's constants).

    ``loop_lag_max_s`` is the longest tick lag, ``loop_stall_s`` the stall time (:func:`stall_s`) and
    ``phase_s`` the wall time the samples span (the stall check needs both).
    """
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
    if loop_lag_max_s is not None and loop_lag_max_s > LOOP_LAG_MAX_WARN_S:
        bound = True
        warnings.append(
            f"client event loop stalled for {loop_lag_max_s * 1e3:.0f} ms at once (max loop lag > "
            f"{LOOP_LAG_MAX_WARN_S * 1e3:g} ms): timestamps taken during the stall (first tokens, inter-token "
            "times of the streams being read) are late by up to that much"
        )
    if loop_stall_s is not None and phase_s and loop_stall_s > LOOP_STALL_FRACTION_WARN * phase_s:
        bound = True
        warnings.append(
            f"client event loop stalls added up to {loop_stall_s * 1e3:.0f} ms, {loop_stall_s / phase_s:.1%} of "
            f"the measured phase (> {LOOP_STALL_FRACTION_WARN:.0%}): timestamps taken during the stalls are late"
        )
    if schedule_lag_p99_s is not None and schedule_lag_p99_s > SCHEDULE_LAG_P99_WARN_S:
        bound = True
        warnings.append(
            f"open-loop submissions late against their schedule: p99 {schedule_lag_p99_s * 1e3:.1f} ms "
            f"(> {SCHEDULE_LAG_P99_WARN_S * 1e3:g} ms); the offered rate was lower than asked"
        )
    return bound, warnings
