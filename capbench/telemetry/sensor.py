"""The power-sensor contract: the :class:`PowerSensor` protocol, the sample and device types, and the
buffered, threaded machinery every real sensor shares (:class:`BufferedSensor`).

Thread model (docs/telemetry.md): a sensor samples in one background daemon thread and appends each
:class:`PowerSample` to an internal buffer guarded by a lock. Samples reach the ``sink`` given to
:meth:`PowerSensor.start` as ``power.jsonl`` records, in the order they were buffered, through one of two
deliveries:

- ``"drain"`` (the default): the sink is called **only on the thread that calls** :meth:`~PowerSensor.drain`
  or :meth:`~PowerSensor.stop`. The sampling thread never touches the sink, so a sink that is not
  thread-safe (the run writer) is safe as long as the thread that owns it is the one that drains.
- ``"sampler"``: the sampling thread also delivers after every sampling round, so samples reach the sink
  while the caller's thread is blocked. The sink then runs on the sampling thread; calls are serialized
  by the sensor (never two at once), but the sink must not share unsynchronised state with other threads.

Either way :meth:`~PowerSensor.drain` and :meth:`~PowerSensor.stop` deliver whatever is buffered, and
``drain`` returns the records it delivered. With no sink, samples stay buffered until ``drain`` returns
them. If the sink raises, the undelivered records stay buffered for the next delivery and the exception
propagates to the caller of ``drain``/``stop`` (on the sampling thread it is counted instead).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, Protocol, Self, runtime_checkable

from capbench.errors import CapbenchError

Sink = Callable[[dict[str, Any]], None]
Delivery = Literal["drain", "sampler"]
DELIVERIES: tuple[Delivery, ...] = ("drain", "sampler")
DEFAULT_MAX_BUFFERED = 500_000
"""Samples kept between drains (~160 bytes each, so ~80 MB); beyond this the oldest are dropped and counted."""
JOIN_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class PowerSample:
    """One reading of one GPU: ``t_ns`` on :func:`capbench.clock.now_ns`, taken right after the reads.

    ``power_w``: board power in watts (``None`` when that read failed or is unsupported); ``energy_j``: the
    device's cumulative energy counter in joules since the driver loaded (``None`` where there is none).
    """

    t_ns: int
    gpu: int
    power_w: float | None
    energy_j: float | None = None

    def to_record(self) -> dict[str, Any]:
        """The ``power.jsonl`` record: ``t_ns``, ``gpu``, ``power_w``, and ``energy_j`` only when measured."""
        record: dict[str, Any] = {"t_ns": self.t_ns, "gpu": self.gpu, "power_w": self.power_w}
        if self.energy_j is not None:
            record["energy_j"] = self.energy_j
        return record


@dataclass(frozen=True)
class GpuDevice:
    """A GPU as the sensor sees it.

    ``index``: NVML's index (as ``nvidia-smi`` numbers GPUs; the ``gpu`` of every sample). ``name`` and
    ``driver_version`` exactly as NVML reports them. ``memory_bytes`` total device memory, ``power_limit_w``
    the enforced board power limit; either ``None`` when NVML cannot say.
    """

    index: int
    name: str
    uuid: str | None = None
    memory_bytes: int | None = None
    driver_version: str | None = None
    power_limit_w: float | None = None
    power_supported: bool = True
    energy_counter_supported: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SensorStats:
    """What sampling achieved so far (read under the sensor's lock; :meth:`PowerSensor.stats` copies it).

    The schedule statistics (``rounds``, ``missed_ticks``, ``first_round_ns``, ``last_round_ns``,
    ``max_gap_ns``, hence the measured periods) describe the latest sampling session: :meth:`PowerSensor.start`
    resets them, so a pause between ``stop()`` and a new ``start()`` is not counted as a sampling gap. The
    other counters (``samples``, ``read_errors``, ``last_errors``, ``dropped_samples``, ``sink_errors``,
    ``last_sink_error``, ``thread_error``) are cumulative over the sensor's life.
    """

    rate_hz: float | None = None
    # -- the latest session (reset by start()) --
    rounds: int = 0  # sampling rounds of the background thread (one read of every selected GPU each)
    missed_ticks: int = 0  # scheduled rounds skipped because a round overran its slot
    # -- cumulative --
    samples: int = 0  # samples buffered (background rounds, the final one, and sample_now(record=True))
    read_errors: dict[int, int] = field(default_factory=dict)  # failed reads per GPU index
    last_errors: dict[int, str] = field(default_factory=dict)  # the latest failed read's message per GPU
    dropped_samples: int = 0  # buffered samples dropped because the buffer was full
    sink_errors: int = 0  # sink calls that raised on the sampling thread ("sampler" delivery)
    last_sink_error: str | None = None
    thread_error: str | None = None  # set if a sampling thread died (it should never)
    # -- the latest session (reset by start()) --
    first_round_ns: int | None = None
    last_round_ns: int | None = None
    max_gap_ns: int | None = None  # the longest interval between consecutive rounds

    @property
    def period_s_target(self) -> float | None:
        return 1.0 / self.rate_hz if self.rate_hz else None

    @property
    def period_s_measured(self) -> float | None:
        """Mean interval between consecutive background rounds, seconds (``None`` before two rounds)."""
        if self.rounds < 2 or self.first_round_ns is None or self.last_round_ns is None:
            return None
        return (self.last_round_ns - self.first_round_ns) / (self.rounds - 1) / 1e9

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (GPU keys as strings), with the target and measured periods in seconds."""
        return {
            "rate_hz": self.rate_hz,
            "period_s_target": self.period_s_target,
            "period_s_measured": self.period_s_measured,
            "period_s_max": None if self.max_gap_ns is None else self.max_gap_ns / 1e9,
            "rounds": self.rounds,
            "missed_ticks": self.missed_ticks,
            "samples": self.samples,
            "read_errors": {str(k): v for k, v in sorted(self.read_errors.items())},
            "last_errors": {str(k): v for k, v in sorted(self.last_errors.items())},
            "dropped_samples": self.dropped_samples,
            "sink_errors": self.sink_errors,
            "last_sink_error": self.last_sink_error,
            "thread_error": self.thread_error,
        }


@runtime_checkable
class PowerSensor(Protocol):
    """A source of GPU power samples (NVML, a recorded trace, or nothing). See the module docstring."""

    kind: str  # "nvml", "replay", "none"
    unavailable_reason: str | None  # why there is no sensor (the null sensor), else None

    @property
    def available(self) -> bool:
        """True when the sensor measures something (``False`` for the null sensor)."""
        ...

    def devices(self) -> list[GpuDevice]:
        """The GPUs sampled, in selection order."""
        ...

    def start(self, sink: Sink | None = None, *, delivery: Delivery = "drain") -> None:
        """Start sampling in a background daemon thread; records go to ``sink`` as the delivery says."""
        ...

    def drain(self) -> list[dict[str, Any]]:
        """Deliver every buffered sample to the sink (on this thread) and return the records."""
        ...

    def stop(self) -> None:
        """Stop the thread, take one final sample (covering the window's end), deliver. Idempotent."""
        ...

    def close(self) -> None:
        """Stop, then release the sensor's resources (NVML shutdown). Idempotent."""
        ...

    def sample_now(self, *, record: bool = True) -> list[PowerSample]:
        """Read every GPU once, now, on the calling thread (window edges); buffered too when ``record``."""
        ...

    def read_energy_j(self) -> dict[int, float | None]:
        """Each GPU's cumulative energy counter now, J (``None`` where unsupported or the read failed)."""
        ...

    def stats(self) -> SensorStats:
        """A copy of the sampling statistics."""
        ...

    def info(self) -> dict[str, Any]:
        """JSON-ready description for run.json: kind, availability and reason, devices, rate, statistics."""
        ...

    def __enter__(self) -> Self:
        """A sensor is a context manager: leaving the block closes it."""
        ...

    def __exit__(self, *exc: object) -> None: ...


def next_tick(t0_ns: int, period_ns: int, done: int, now: int) -> tuple[int, int]:
    """The schedule of a periodic sampler on absolute times, so drift never accumulates.

    Tick k is due at ``t0_ns + k * period_ns``. After ``done`` ticks ran, the next tick is ``done`` when it
    is still in the future at ``now``; if ``now`` is already at or past it, the ticks whose time has passed
    are skipped (never run in a burst) and the next one after ``now`` is returned. Returns
    ``(k, skipped)``: the next tick to run and how many ticks were skipped.
    """
    if period_ns <= 0:
        raise ValueError("period_ns must be positive")
    due = t0_ns + done * period_ns
    if now < due:
        return done, 0
    k = (now - t0_ns) // period_ns + 1
    return k, k - done


class BufferedSensor(ABC):
    """Buffering, delivery, start/stop and statistics shared by the threaded sensors.

    Subclasses implement :meth:`_run` (the sampling loop, returning when ``stop_event`` is set),
    :meth:`_read_all` (one reading of every GPU, on the calling thread), :meth:`devices` and may override
    :meth:`_final_samples` and :meth:`_release`. They hand samples to :meth:`_emit`.
    """

    kind: str = "buffered"
    unavailable_reason: str | None = None

    def __init__(self, *, rate_hz: float | None, max_buffered: int = DEFAULT_MAX_BUFFERED) -> None:
        if max_buffered < 1:
            raise CapbenchError(f"max_buffered must be at least 1, got {max_buffered}")
        self._lock = threading.Lock()  # guards _buffer and _stats
        self._sink_lock = threading.Lock()  # serializes deliveries (so sink calls never overlap)
        self._life_lock = threading.RLock()  # serializes start / stop / close
        self._buffer: deque[PowerSample] = deque()
        self._max_buffered = max_buffered
        self._stats = SensorStats(rate_hz=rate_hz)
        self._sink: Sink | None = None
        self._delivery: Delivery = "drain"
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._running = False
        self._closed = False
        self._notes: list[str] = []

    # -- the protocol -------------------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        return True

    @abstractmethod
    def devices(self) -> list[GpuDevice]: ...

    def start(self, sink: Sink | None = None, *, delivery: Delivery = "drain") -> None:
        with self._life_lock:
            if self._closed:
                raise CapbenchError(f"the {self.kind} power sensor is closed; open a new one")
            if self._running:
                raise CapbenchError(f"the {self.kind} power sensor is already sampling; stop() it first")
            if delivery not in DELIVERIES:
                raise CapbenchError(
                    f"unknown power-sample delivery {delivery!r}; choose one of {', '.join(DELIVERIES)}"
                )
            self._sink, self._delivery = sink, delivery
            with self._lock:  # a new session: the schedule statistics start afresh (SensorStats)
                st = self._stats
                st.rounds = st.missed_ticks = 0
                st.first_round_ns = st.last_round_ns = st.max_gap_ns = None
            self._stop_event.clear()
            self._on_start()
            self._running = True
            self._thread = threading.Thread(target=self._thread_main, name=f"capbench-{self.kind}-power", daemon=True)
            self._thread.start()

    def drain(self) -> list[dict[str, Any]]:
        return self._deliver()

    def stop(self) -> None:
        with self._life_lock:
            if not self._running:
                return
            self._running = False
            self._stop_event.set()
            thread, self._thread = self._thread, None
            if thread is not None:
                thread.join(JOIN_TIMEOUT_S + self._period_s())
                if thread.is_alive():  # a read hung in the driver; the daemon thread is abandoned
                    self._notes.append(f"the sampling thread did not stop within {JOIN_TIMEOUT_S:.0f} s")
            self._emit(self._final_samples())
            if self._sink is not None:  # without a sink the samples wait for drain()
                self._deliver()

    def close(self) -> None:
        with self._life_lock:
            if self._closed:
                return
            try:
                self.stop()
            finally:
                self._closed = True
                self._release()

    def sample_now(self, *, record: bool = True) -> list[PowerSample]:
        if self._closed:
            raise CapbenchError(f"the {self.kind} power sensor is closed")
        samples = self._read_all()
        if record:
            self._emit(samples)
        return samples

    def read_energy_j(self) -> dict[int, float | None]:
        readings = {s.gpu: s.energy_j for s in self.sample_now(record=False)}
        return {d.index: readings.get(d.index) for d in self.devices()}

    def stats(self) -> SensorStats:
        with self._lock:
            s = self._stats
            return replace(s, read_errors=dict(s.read_errors), last_errors=dict(s.last_errors))

    def info(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "available": self.available,
            "unavailable_reason": self.unavailable_reason,
            "delivery": self._delivery,
            "gpus": [d.to_dict() for d in self.devices()],
            **self.stats().to_dict(),
            "notes": list(self._notes),
        }

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- for subclasses -----------------------------------------------------------------------------------

    @abstractmethod
    def _run(self, stop_event: threading.Event) -> None:
        """The sampling loop (on the background thread); return soon after ``stop_event`` is set."""

    @abstractmethod
    def _read_all(self) -> list[PowerSample]:
        """One reading of every selected GPU, on the calling thread (errors counted, never raised)."""

    def _final_samples(self) -> list[PowerSample]:
        """The samples taken by :meth:`stop` after the thread ended (default: one reading of every GPU)."""
        return self._read_all()

    def _on_start(self) -> None:  # noqa: B027 (an optional hook)
        """Called by :meth:`start` before the thread starts."""

    def _release(self) -> None:  # noqa: B027 (an optional hook)
        """Free resources (called once, by :meth:`close`)."""

    def _period_s(self) -> float:
        rate = self._stats.rate_hz
        return 1.0 / rate if rate else 0.0

    def _emit(self, samples: list[PowerSample]) -> None:
        if not samples:
            return
        with self._lock:
            for sample in samples:
                if len(self._buffer) >= self._max_buffered:
                    self._buffer.popleft()
                    self._stats.dropped_samples += 1
                self._buffer.append(sample)
            self._stats.samples += len(samples)

    def _count_round(self, t_ns: int) -> None:
        with self._lock:
            s = self._stats
            if s.last_round_ns is not None:
                gap = t_ns - s.last_round_ns
                s.max_gap_ns = gap if s.max_gap_ns is None else max(s.max_gap_ns, gap)
            if s.first_round_ns is None:
                s.first_round_ns = t_ns
            s.last_round_ns = t_ns
            s.rounds += 1

    def _count_missed(self, skipped: int) -> None:
        if skipped:
            with self._lock:
                self._stats.missed_ticks += skipped

    def _count_error(self, gpu: int, message: str) -> None:
        with self._lock:
            self._stats.read_errors[gpu] = self._stats.read_errors.get(gpu, 0) + 1
            self._stats.last_errors[gpu] = message

    def _deliver_from_sampler(self) -> None:
        """After a round on the sampling thread: deliver when the delivery is ``"sampler"``; never raises."""
        if self._delivery != "sampler" or self._sink is None:
            return
        try:
            self._deliver()
        except Exception as exc:  # the sink failed (disk full, closed file): keep sampling, count it
            with self._lock:
                self._stats.sink_errors += 1
                self._stats.last_sink_error = f"{type(exc).__name__}: {exc}"

    def _deliver(self) -> list[dict[str, Any]]:
        """Hand every buffered sample to the sink, one call per record, in order; return the records.

        If the sink raises, the record it failed on and every later one go back to the front of the buffer
        (a later delivery retries them) and the exception propagates.
        """
        with self._sink_lock:
            with self._lock:
                batch = list(self._buffer)
                self._buffer.clear()
            records = [s.to_record() for s in batch]
            sink = self._sink
            if sink is not None:
                for i, record in enumerate(records):
                    try:
                        sink(record)
                    except BaseException:
                        with self._lock:
                            self._buffer.extendleft(reversed(batch[i:]))
                        raise
            return records

    def _thread_main(self) -> None:
        try:
            self._run(self._stop_event)
        except BaseException as exc:  # a bug, not a read error (those are counted inside _run)
            with self._lock:
                self._stats.thread_error = f"{type(exc).__name__}: {exc}"
        finally:
            self._deliver_from_sampler()
