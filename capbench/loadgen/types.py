"""The load generator's data types: what to send, how to send it, what came back, how the client coped."""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from capbench.loadgen.schedule import validate_arrival


@dataclass(frozen=True)
class LoadPattern:
    """How requests are submitted.

    Exactly one of ``concurrency`` (closed loop: keep this many requests in flight, submitting the next one
    the moment one ends) and ``request_rate`` (open loop: arrivals at a mean rate, whatever the server does)
    is set.

    The measured phase ends after ``num_requests`` submissions, or once ``duration_s`` has passed since it
    started (no submission at or after that time; requests in flight then are allowed to finish, within
    their timeout), or when the ``measured`` iterator is exhausted, whichever comes first. With neither
    ``num_requests`` nor ``duration_s`` the iterator must be finite.

    Warm-up requests (``warmup`` of them, taken from the ``warmup`` sequence given to ``run_load``) run before
    the measured phase, closed loop at ``concurrency`` (at 1 for an open-loop pattern), and all end before the
    measured phase starts.

    ``arrival`` and ``burstiness`` shape open-loop gaps (see :mod:`capbench.loadgen.schedule`): ``gamma``
    uses shape ``burstiness`` and scale ``1/(request_rate·burstiness)``, so the mean rate is kept and the
    coefficient of variation of the gaps is ``1/sqrt(burstiness)``; ``poisson`` is gamma with burstiness 1.
    ``arrival_offsets_ns`` (trace replay) replaces the rate: measured request ``i`` is due ``arrival_offsets_ns[i]``
    ns after the measured phase starts (non-decreasing, from 0); the phase ends after the last one.
    ``max_concurrency`` caps open-loop requests in flight: an arrival that finds the cap reached waits (in
    arrival order) and both times are recorded (``t_scheduled_ns``, ``t_submit_ns``).

    ``timeout_s`` runs from submission to the last byte of the response. After
    ``abort_after_connection_errors`` consecutive connection-level failures (connection refused, or closed or
    reset before any response byte) the load stops: nothing more is submitted, requests in flight end, every
    result is delivered, then ``run_load`` raises :class:`~capbench.loadgen.ServerUnavailable`.
    """

    concurrency: int | None = None
    request_rate: float | None = None
    arrival: Literal["poisson", "gamma", "constant"] = "poisson"
    burstiness: float = 1.0
    max_concurrency: int | None = None
    num_requests: int | None = None
    duration_s: float | None = None
    warmup: int = 0
    seed: int = 0
    timeout_s: float = 600.0
    abort_after_connection_errors: int = 10
    arrival_offsets_ns: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        loops = [self.concurrency is not None, self.request_rate is not None, self.arrival_offsets_ns is not None]
        if sum(loops) != 1:
            raise ValueError(
                "set exactly one of concurrency (closed loop), request_rate (open loop) and arrival_offsets_ns "
                "(trace replay)"
            )
        if self.arrival_offsets_ns is not None:
            offsets = self.arrival_offsets_ns
            if any(not isinstance(t, int) or t < 0 for t in offsets) or any(
                b < a for a, b in itertools.pairwise(offsets)
            ):
                raise ValueError("arrival_offsets_ns must be non-decreasing integers >= 0")
            if self.arrival != "poisson" or self.burstiness != 1.0:
                raise ValueError("arrival and burstiness shape a request_rate schedule, not a trace's own times")
        if self.concurrency is not None:
            if not isinstance(self.concurrency, int) or self.concurrency < 1:
                raise ValueError(f"concurrency must be an integer >= 1, got {self.concurrency!r}")
            if self.max_concurrency is not None:
                raise ValueError("max_concurrency applies to an open-loop pattern (request_rate), not to concurrency")
            if self.arrival != "poisson" or self.burstiness != 1.0:
                raise ValueError("arrival and burstiness apply to an open-loop pattern (request_rate)")
        elif self.request_rate is not None:
            validate_arrival(self.request_rate, self.arrival, self.burstiness)
            if self.max_concurrency is not None and (
                not isinstance(self.max_concurrency, int) or self.max_concurrency < 1
            ):
                raise ValueError(f"max_concurrency must be an integer >= 1, got {self.max_concurrency!r}")
        if self.num_requests is not None and (not isinstance(self.num_requests, int) or self.num_requests < 0):
            raise ValueError(f"num_requests must be an integer >= 0, got {self.num_requests!r}")
        if self.duration_s is not None and not (math.isfinite(self.duration_s) and self.duration_s > 0):
            raise ValueError(f"duration_s must be a finite number > 0, got {self.duration_s!r}")
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise ValueError(f"warmup must be an integer >= 0, got {self.warmup!r}")
        if not (math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise ValueError(f"timeout_s must be a finite number > 0, got {self.timeout_s!r}")
        if not isinstance(self.abort_after_connection_errors, int) or self.abort_after_connection_errors < 1:
            raise ValueError(
                f"abort_after_connection_errors must be an integer >= 1, got {self.abort_after_connection_errors!r}"
            )

    @property
    def closed_loop(self) -> bool:
        return self.concurrency is not None


@dataclass(frozen=True)
class HttpRequestSpec:
    """One request to send: its id (``w0000`` warm-up, ``r0000`` measured), the path and the JSON body.

    The body is sent as is (``Content-Type: application/json``); for token timing it must ask for a stream
    (``"stream": true``) with ``"stream_options": {"include_usage": true}``. A non-streamed body (a log-likelihood
    request) gets one JSON answer: no token times, its ``choices[0].logprobs`` kept in the result. The id is also
    sent as the ``X-Request-Id`` header, which servers may use as their request id.
    """

    id: str
    warmup: bool
    path: str
    body: bytes


@dataclass(slots=True)
class RequestResult:
    """One request as it ended (success or failure). Every ``*_ns`` is :func:`capbench.clock.now_ns`.

    ``t_submit_ns``: the load generator submitted it (after any ``max_concurrency`` wait; before a connection
    was taken or opened, so connection set-up counts in TTFT). ``t_sent_ns``: the request bytes were handed to
    the socket. ``t_first_byte_ns``: the first response byte (normally the status line) arrived.
    ``token_times_ns``: one timestamp per SSE event that carried generated text, the time the socket read
    holding the end of that event returned; ``t_first_token_ns`` is the first of them (None if none).
    ``t_done_ns``: the response was complete (or the request failed). ``t_scheduled_ns``: open loop only, the
    scheduled arrival time.

    ``error`` is None on success, else e.g. ``"HTTP 500: ..."``, ``"timeout after 600 s"``,
    ``"connection refused"``, ``"connection closed mid-response after 1234 bytes"``; whatever arrived before a
    failure is still accounted (text, token times, usage). ``chunks`` counts SSE data events, the ``[DONE]``
    sentinel excluded.
    """

    id: str
    warmup: bool
    t_submit_ns: int
    t_first_token_ns: int | None
    t_done_ns: int
    token_times_ns: list[int]
    output_text: str
    finish_reason: str | None
    usage: dict[str, Any] | None
    http_status: int | None
    error: str | None
    chunks: int
    t_scheduled_ns: int | None = None
    t_sent_ns: int | None = None
    t_first_byte_ns: int | None = None
    reasoning_text: str = ""
    connection_reused: bool | None = None
    stream_done: bool = False  # the [DONE] sentinel arrived
    logprobs: dict[str, Any] | None = None  # a non-streamed completion's choices[0].logprobs (echo: the prompt's)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LoadReport:
    """What happened over a load, and how the client itself fared (self-check).

    Timing fields in seconds, timestamps in ns (:func:`capbench.clock.now_ns`). The measured phase runs from
    ``t_start_ns`` (after every warm-up request ended) to ``t_end_ns`` (its last request ended).
    ``cpu_s`` is the client process's CPU time (user + system) over the measured phase and ``cpu_util`` that
    divided by the phase's wall time (1.0 = one core fully busy). Event-loop lag is sampled by a ticker every
    ``loop_lag_interval_s``: how late each tick ran; ``loop_stall_s`` sums the lag beyond the idle loop's ~1 ms
    per tick (about how long the loop was blocked in all). Schedule lag (open loop) is how late each arrival fired
    against its precomputed time; queue wait is the time arrivals then waited for ``max_concurrency``.
    """

    pattern: dict[str, Any]
    loop: str
    t_start_ns: int = 0
    t_end_ns: int = 0
    submitted: int = 0
    completed: int = 0
    failed: int = 0
    warmup_submitted: int = 0
    warmup_failed: int = 0
    aborted: bool = False
    abort_reason: str | None = None
    max_in_flight: int = 0
    output_events: int = 0
    cpu_s: float | None = None
    cpu_util: float | None = None
    loop_lag_interval_s: float = 0.01
    loop_lag_samples: int = 0
    loop_lag_p50_s: float | None = None
    loop_lag_p99_s: float | None = None
    loop_lag_max_s: float | None = None
    loop_stall_s: float | None = None  # summed loop lag beyond selfcheck.LOOP_LAG_IDLE_S per tick
    schedule_lag_p50_s: float | None = None
    schedule_lag_p99_s: float | None = None
    schedule_lag_max_s: float | None = None
    queued: int = 0
    follow_ups: int = 0  # session requests after a first one (multi-turn)
    follow_ups_dropped: int = 0  # ... that fell due after the duration ended or the load stopped
    queue_wait_max_s: float | None = None
    queue_wait_total_s: float | None = None
    client_bound: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return (self.t_end_ns - self.t_start_ns) / 1e9

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["duration_s"] = self.duration_s
        return out


class ServerUnavailable(Exception):  # noqa: N818 (the interface's name)
    """The abort rule fired: too many consecutive connection-level failures. ``report`` is the load's report."""

    def __init__(self, message: str, report: LoadReport) -> None:
        super().__init__(message)
        self.report = report
