"""``run_load``: drive an OpenAI-compatible server with a closed- or open-loop load and report every request.

Everything runs on the caller's event loop, callback-driven: a finished request frees its connection, is
reported through ``on_result``, and (closed loop) immediately makes room for the next submission; open-loop
arrivals fire from a chain of loop timers at precomputed times. No task is created per request (only per new
connection).
"""

from __future__ import annotations

import asyncio
import gc
import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict

from capbench.clock import now_ns
from capbench.loadgen.http import HttpClient, describe_loop
from capbench.loadgen.lagstats import LagSketch
from capbench.loadgen.schedule import iter_arrival_offsets_ns
from capbench.loadgen.selfcheck import CpuMeter, LoopLagMonitor, assess
from capbench.loadgen.types import HttpRequestSpec, LoadPattern, LoadReport, RequestResult, ServerUnavailable

OnResult = Callable[[RequestResult], None]
FollowUp = Callable[[RequestResult], "tuple[HttpRequestSpec, float] | None"]
"""Given a finished measured request, the request that must follow it and the delay before it (seconds), or None."""
SPIN_NS = 1_000_000
"""Open loop: how early the arrival timer is armed; the rest is waited cooperatively (:meth:`_Driver._arm`)."""


class _Driver:
    """Submission bookkeeping shared by the phases of one load."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        pattern: LoadPattern,
        on_result: OnResult,
        follow_up: FollowUp | None = None,
    ) -> None:
        self.loop = loop
        self.pattern = pattern
        self.on_result = on_result
        self.follow_up = follow_up
        # follow-ups waiting for their delay: each holds its session's closed-loop slot
        self.thinking: set[asyncio.TimerHandle | asyncio.Handle] = set()
        self.follow_ups = 0
        self.follow_ups_dropped = 0
        self.client: HttpClient | None = None
        self.stopped = False
        self.abort_reason: str | None = None
        self.callback_error: BaseException | None = None
        self.consecutive_connection_failures = 0
        self.in_flight = 0
        self.max_in_flight = 0
        # the current phase
        self.future: asyncio.Future[None] | None = None
        self.source: Iterator[HttpRequestSpec] = iter(())
        self.remaining: int | None = None
        self.deadline_ns: int | None = None
        self.limit = 1
        self.exhausted = False
        self.measuring = False
        self.submitted = 0
        self.completed = 0
        self.failed = 0
        self.output_events = 0
        self.last_done_ns = 0
        # open loop
        self.open_loop = False
        self.offsets: Iterator[int] = iter(())
        self.t0_ns = 0
        self.next_ns = 0
        self.timer: asyncio.TimerHandle | asyncio.Handle | None = None
        self.waiting: deque[tuple[HttpRequestSpec, int, int]] = deque()
        self.prefetched: HttpRequestSpec | None = None
        # bounded however long the load runs (one value per arrival would grow by ~32 bytes a request)
        self.schedule_lags = LagSketch()
        self.queue_waits = LagSketch()

    # -- phases ---------------------------------------------------------------------------------------------

    def _begin(self, source: Iterator[HttpRequestSpec], remaining: int | None, deadline_ns: int | None) -> None:
        self.future = self.loop.create_future()
        self.source = source
        self.remaining = remaining
        self.deadline_ns = deadline_ns
        self.exhausted = False
        self.submitted = self.completed = self.failed = self.output_events = 0
        self.last_done_ns = 0

    async def run_closed(
        self, source: Iterator[HttpRequestSpec], concurrency: int, remaining: int | None, deadline_ns: int | None
    ) -> None:
        self._begin(source, remaining, deadline_ns)
        self.open_loop = False
        self.limit = concurrency
        self._pump()
        assert self.future is not None
        await self.future

    async def run_open(
        self,
        source: Iterator[HttpRequestSpec],
        remaining: int | None,
        t0_ns: int,
        deadline_ns: int | None,
    ) -> None:
        self._begin(source, remaining, deadline_ns)
        pattern = self.pattern
        self.open_loop = True
        self.limit = pattern.max_concurrency or 0
        if pattern.arrival_offsets_ns is not None:
            self.offsets = iter(pattern.arrival_offsets_ns)
        else:
            assert pattern.request_rate is not None
            self.offsets = iter_arrival_offsets_ns(
                pattern.request_rate, pattern.arrival, pattern.burstiness, pattern.seed
            )
        self.t0_ns = t0_ns
        self._schedule_next()
        assert self.future is not None
        await self.future

    # -- taking and submitting ------------------------------------------------------------------------------

    def _take(self) -> HttpRequestSpec | None:
        if self.prefetched is not None:
            ready, self.prefetched = self.prefetched, None
            return ready
        if self.stopped or self.remaining == 0:
            return None
        spec = next(self.source, None)
        if spec is None:
            return None
        if self.remaining is not None:
            self.remaining -= 1
        return spec

    def _submit(self, spec: HttpRequestSpec, t_ns: int, t_scheduled_ns: int | None) -> None:
        self.in_flight += 1
        if self.in_flight > self.max_in_flight and self.measuring:
            self.max_in_flight = self.in_flight
        self.submitted += 1
        assert self.client is not None
        self.client.submit(spec, t_ns, t_scheduled_ns)

    def _pump(self) -> None:
        """Submit what the phase allows now, then resolve the phase when nothing is left to wait for.

        Runs inside loop callbacks (``on_done``), where an exception would only be logged by the loop and the
        phase would never end: an exception from ``measured`` or from submitting stops the load instead
        (:meth:`_abort_on`), and ``run_load`` re-raises it.
        """
        try:
            self._pump_unguarded()
        except BaseException as exc:
            self._abort_on(exc, "submitting the next request")

    def _pump_unguarded(self) -> None:
        if self.open_loop:
            waiting = self.waiting
            while waiting and not self.stopped and (not self.limit or self.in_flight < self.limit):
                spec, t_sched, t_arrived = waiting.popleft()
                t = now_ns()
                self.queue_waits.add((t - t_arrived) / 1e9)
                self._submit(spec, t, t_sched)
        else:
            while not self.exhausted and self.in_flight + len(self.thinking) < self.limit:
                if self.deadline_ns is not None and now_ns() >= self.deadline_ns:
                    self.exhausted = True
                    break
                taken = self._take()
                if taken is None:
                    self.exhausted = True
                    break
                self._submit(taken, now_ns(), None)
        self._maybe_finish()

    def _maybe_finish(self) -> None:
        if (
            self.in_flight == 0
            and not self.thinking
            and (self.exhausted or self.stopped)
            and not self.waiting
            and self.future is not None
            and not self.future.done()
        ):
            self.future.set_result(None)

    # -- open-loop arrivals ---------------------------------------------------------------------------------

    def _schedule_next(self) -> None:
        """Arm a timer for the next arrival, or mark the phase exhausted."""
        if self.stopped or self.remaining == 0:
            self.exhausted = True
            self._maybe_finish()
            return
        offset = next(self.offsets, None)
        if offset is None:  # a trace's last arrival has been submitted
            self.exhausted = True
            self._maybe_finish()
            return
        t_sched = self.t0_ns + offset
        if self.deadline_ns is not None and t_sched >= self.deadline_ns:
            self.exhausted = True
            self._maybe_finish()
            return
        self.next_ns = t_sched
        if t_sched > now_ns():
            self.prefetched = self._take()  # build the request while waiting, not once it is due
        self._arm(t_sched)

    def _arm(self, t_ns: int) -> None:
        """Call :meth:`_fire` at ``t_ns``. The selector's timeout has 1 ms granularity (epoll rounds it up), so
        the timer is set :data:`SPIN_NS` early and the last stretch is waited by re-queuing ``_fire`` with
        ``call_soon``: other callbacks and I/O still run in between, and an arrival is not up to 1 ms late."""
        wait_ns = t_ns - now_ns()
        if wait_ns <= SPIN_NS:
            self.timer = self.loop.call_soon(self._fire)
        else:
            self.timer = self.loop.call_at(self.loop.time() + (wait_ns - SPIN_NS) / 1e9, self._fire)

    def _fire(self) -> None:
        """Submit every arrival that is due (a late loop submits the backlog at once), then re-arm.

        A loop timer callback: an exception (from ``measured`` or from submitting) stops the load and is
        re-raised by ``run_load`` (:meth:`_abort_on`); otherwise the timer would never be re-armed.
        """
        self.timer = None
        try:
            self._fire_unguarded()
        except BaseException as exc:
            self._abort_on(exc, "submitting an open-loop arrival")

    def _fire_unguarded(self) -> None:
        while True:
            t = now_ns()
            if t < self.next_ns:  # armed early on purpose (or the loop clock rounded): wait again
                self._arm(self.next_ns)
                return
            taken = self._take()
            if taken is None:
                self.exhausted = True
                self._maybe_finish()
                return
            spec = taken
            t_sched = self.next_ns
            self.schedule_lags.add((t - t_sched) / 1e9)
            if self.limit and self.in_flight >= self.limit:
                self.waiting.append((spec, t_sched, t))
            else:
                self._submit(spec, t, t_sched)
            if self.stopped or self.remaining == 0:
                self.exhausted = True
                self._maybe_finish()
                return
            offset = next(self.offsets, None)
            if offset is None:
                self.exhausted = True
                self._maybe_finish()
                return
            t_next = self.t0_ns + offset
            if self.deadline_ns is not None and t_next >= self.deadline_ns:
                self.exhausted = True
                self._maybe_finish()
                return
            self.next_ns = t_next
            if t_next > now_ns():
                self.prefetched = self._take()  # build the next request while waiting for its time
                self._arm(t_next)
                return

    # -- results --------------------------------------------------------------------------------------------

    def on_done(self, result: RequestResult, connection_failure: bool) -> None:
        self.in_flight -= 1
        if connection_failure:
            self.consecutive_connection_failures += 1
            limit = self.pattern.abort_after_connection_errors
            if self.consecutive_connection_failures >= limit and not self.stopped:
                self.stop(
                    f"{self.consecutive_connection_failures} consecutive connection-level failures "
                    f"(last: {result.error})"
                )
        elif result.t_first_byte_ns is not None:
            self.consecutive_connection_failures = 0
        if result.error is None:
            self.completed += 1
        else:
            self.failed += 1
        self.output_events += len(result.token_times_ns)
        if result.t_done_ns > self.last_done_ns:
            self.last_done_ns = result.t_done_ns
        if self.callback_error is None:
            try:
                self.on_result(result)
            except BaseException as exc:  # re-raised by run_load after cleanup
                self._abort_on(exc, "on_result")
        if self.follow_up is not None and self.measuring and not self.stopped and self.callback_error is None:
            try:
                self._follow(result)
            except BaseException as exc:
                self._abort_on(exc, "building the next request of a session")
        self._pump()

    # -- sessions (follow-up requests) ----------------------------------------------------------------------

    def _follow(self, result: RequestResult) -> None:
        """Queue the request that follows ``result`` in its session (after its delay); it holds the session's
        slot meanwhile, so a closed loop's concurrency counts sessions."""
        assert self.follow_up is not None
        nxt = self.follow_up(result)
        if nxt is None:
            return
        spec, delay_s = nxt
        if delay_s <= 0:
            self._send_follow_up(spec, None)
            return
        handle: asyncio.TimerHandle | None = None

        def due() -> None:
            try:
                self._send_follow_up(spec, handle)
            except BaseException as exc:
                self._abort_on(exc, "submitting the next request of a session")
                return
            self._pump()

        handle = self.loop.call_later(delay_s, due)
        self.thinking.add(handle)

    def _send_follow_up(self, spec: HttpRequestSpec, handle: asyncio.TimerHandle | asyncio.Handle | None) -> None:
        """Submit a follow-up now, unless the load stopped or its duration ended (then the session ends)."""
        if handle is not None:
            self.thinking.discard(handle)
        if self.stopped or (self.deadline_ns is not None and now_ns() >= self.deadline_ns):
            self.follow_ups_dropped += 1
            return
        self.follow_ups += 1
        self._submit(spec, now_ns(), None)

    def _abort_on(self, exc: BaseException, where: str) -> None:
        """An exception in a loop callback: stop submitting, close the client (requests in flight are not
        reported), and resolve the phase; ``run_load`` re-raises the first such exception."""
        if self.callback_error is None:
            self.callback_error = exc
        self.stop(f"{where} raised {type(exc).__name__}: {exc}")
        if self.client is not None:
            self.client.close()
        self.in_flight = 0
        self.waiting.clear()
        self.exhausted = True
        self._drop_thinking()
        self._maybe_finish()

    def _drop_thinking(self) -> None:
        """Cancel the follow-ups still waiting for their delay (their sessions end here)."""
        for handle in self.thinking:
            handle.cancel()
        self.follow_ups_dropped += len(self.thinking)
        self.thinking.clear()

    def stop(self, reason: str) -> None:
        """Stop submitting; requests in flight still end and are reported."""
        self.stopped = True
        if self.abort_reason is None:
            self.abort_reason = reason
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.waiting.clear()
        self._drop_thinking()
        self._maybe_finish()


async def run_load(
    base_url: str,
    warmup: Sequence[HttpRequestSpec],
    measured: Iterable[HttpRequestSpec],
    pattern: LoadPattern,
    on_result: OnResult,
    *,
    headers: Mapping[str, str] | None = None,
    loop_lag_interval_s: float = 0.01,
    on_measured_start: Callable[[], None] | None = None,
    follow_up: FollowUp | None = None,
) -> LoadReport:
    """Run ``warmup`` then ``measured`` against ``base_url`` under ``pattern``; report each request as it ends.

    ``on_result`` is called synchronously on the event loop once per request, warm-up included (check
    ``result.warmup``); keep it cheap. ``measured`` may be infinite (with ``duration_s`` or ``num_requests``);
    it is read only as requests are submitted. ``headers`` are added to every request (e.g.
    ``{"Authorization": "Bearer ..."}``). ``len(warmup)`` must equal ``pattern.warmup``. ``on_measured_start``
    is called once, after the warm-up and before the first measured request (e.g. to snapshot server metrics);
    it runs on the event loop, before the measured clock starts.

    ``follow_up`` (closed loop only) makes sessions: after each measured request ends (and ``on_result`` ran),
    it may return the request that continues the session and a delay in seconds (a user's think time); that
    request is submitted after the delay, and the session keeps its slot meanwhile, so ``concurrency`` counts
    sessions and ``measured`` gives only their first requests (``num_requests`` then counts sessions). A
    follow-up that falls due after the duration ended or the load stopped is dropped (the report counts both).

    Returns the :class:`LoadReport`. Raises :class:`ServerUnavailable` (carrying the report) after the abort
    rule fired and every finished result was delivered. Re-raises an exception that ``on_result``, the
    ``measured`` iterator or a submission raised: the load is stopped and connections closed first; results
    delivered before it stay delivered, requests still in flight are not reported.
    """
    if len(warmup) != pattern.warmup:
        raise ValueError(f"pattern.warmup is {pattern.warmup} but {len(warmup)} warm-up requests were given")
    if follow_up is not None and not pattern.closed_loop:
        raise ValueError("sessions (follow_up) run in a closed loop: the pattern needs concurrency")
    loop = asyncio.get_running_loop()
    described = asdict(pattern)
    if pattern.arrival_offsets_ns is not None:  # the schedule itself is the trace's; the report keeps its size
        described["arrival_offsets_ns"] = f"{len(pattern.arrival_offsets_ns)} offsets"
    report = LoadReport(pattern=described, loop=describe_loop(loop), loop_lag_interval_s=loop_lag_interval_s)
    driver = _Driver(loop, pattern, on_result, follow_up)
    client = HttpClient(base_url, driver.on_done, timeout_s=pattern.timeout_s, headers=headers)
    driver.client = client
    lag = LoopLagMonitor(loop_lag_interval_s)
    cpu = CpuMeter()
    try:
        if warmup:
            await driver.run_closed(iter(warmup), pattern.concurrency or 1, None, None)
            report.warmup_submitted = driver.submitted
            report.warmup_failed = driver.failed
        if driver.callback_error is not None:
            raise driver.callback_error
        driver.measuring = True
        source = iter(measured)
        # Everything alive now (the model's tokenizer, imported libraries, the run's state) is moved out of the
        # collector's sight: a full collection then walks only what the load itself allocates, so it pauses the
        # loop for microseconds, not the tens of milliseconds a large process's heap takes.
        gc.collect()
        gc.freeze()
        if not driver.stopped:
            if on_measured_start is not None:
                on_measured_start()
            lag.start()
            cpu.start()
            t_start = now_ns()
            report.t_start_ns = t_start
            deadline = t_start + round(pattern.duration_s * 1e9) if pattern.duration_s is not None else None
            if pattern.concurrency is not None:
                await driver.run_closed(source, pattern.concurrency, pattern.num_requests, deadline)
            else:
                await driver.run_open(source, pattern.num_requests, t_start, deadline)
            cpu.stop()
            lag.stop()
            report.t_end_ns = max(driver.last_done_ns, t_start) if driver.submitted else now_ns()
            report.submitted = driver.submitted
            report.completed = driver.completed
            report.failed = driver.failed
            report.output_events = driver.output_events
        else:
            report.t_start_ns = report.t_end_ns = now_ns()
    finally:
        lag.stop()
        client.close()
        gc.unfreeze()
    if driver.callback_error is not None:
        raise driver.callback_error
    _fill_selfcheck(report, driver, cpu, lag)
    if driver.stopped:
        report.aborted = True
        report.abort_reason = driver.abort_reason
        raise ServerUnavailable(f"server unavailable at {base_url}: {driver.abort_reason}", report)
    return report


def _fill_selfcheck(report: LoadReport, driver: _Driver, cpu: CpuMeter, lag: LoopLagMonitor) -> None:
    report.max_in_flight = driver.max_in_flight
    report.follow_ups = driver.follow_ups
    report.follow_ups_dropped = driver.follow_ups_dropped
    report.cpu_s = cpu.cpu_s
    report.cpu_util = cpu.utilization
    lags = lag.lags
    report.loop_lag_samples = lags.count
    report.loop_lag_p50_s = lags.quantile(0.5)
    report.loop_lag_p99_s = lags.quantile(0.99)
    report.loop_lag_max_s = lags.max_s
    report.loop_stall_s = lag.stall_s if lags.count else None
    if driver.open_loop:
        schedule = driver.schedule_lags
        report.schedule_lag_p50_s = schedule.quantile(0.5)
        report.schedule_lag_p99_s = schedule.quantile(0.99)
        report.schedule_lag_max_s = schedule.max_s
        waits = driver.queue_waits
        report.queued = waits.count
        report.queue_wait_max_s = waits.max_s if waits.count else 0.0
        report.queue_wait_total_s = waits.sum_s
    bound, warnings = assess(
        report.cpu_util,
        report.loop_lag_p99_s,
        report.schedule_lag_p99_s,
        loop_lag_max_s=report.loop_lag_max_s,
        loop_stall_s=report.loop_stall_s,
        phase_s=cpu.wall_s,
    )
    if report.queued:
        warnings.append(
            f"{report.queued} open-loop arrivals waited for max_concurrency={driver.pattern.max_concurrency} "
            f"(longest {report.queue_wait_max_s:.3f} s): the offered load was capped"
        )
    report.client_bound = bound
    report.warnings = warnings


def iter_specs(
    path: str, bodies: Iterable[bytes], prefix: str = "r", warmup: bool = False, start: int = 0
) -> Iterator[HttpRequestSpec]:
    """Specs ``<prefix>0000, <prefix>0001, ...`` for ``bodies`` (a convenience for tests and scripts)."""
    for i, body in zip(itertools.count(start), bodies, strict=False):
        yield HttpRequestSpec(id=f"{prefix}{i:04d}", warmup=warmup, path=path, body=body)
