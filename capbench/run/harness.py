"""The one place that sequences a run: power sampling around the runner's work, records appended as they come.

:func:`drive` starts the power sensor, hands the workload (warm-up, then measured requests) to the runner,
writes every pass and request record through the :class:`~capbench.records.RunWriter` the moment the
runner emits it (flushed line by line), drains power samples into ``power.jsonl`` after every request
(all writes happen on the caller's thread), and stops the sensor, also when the runner raises. It does not
catch ``KeyboardInterrupt``: the caller's ``RunWriter`` turns an interruption into ``status: partial`` with
every completed request already on disk.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from capbench.records import RunWriter
from capbench.records.schema import PassRecord, RequestRecord
from capbench.records.sink import RecordSink
from capbench.workload import Workload


class Runner(Protocol):
    """What the harness needs from a backend (implemented in :mod:`capbench.runners`)."""

    name: str
    facts: dict[str, Any]
    """What the run learned for ``run.json`` (e.g. the load report); kept up to date also when ``execute``
    raises, so a partial run records it."""

    def execute(self, workload: Workload, sink: RecordSink) -> None:
        """Serve every request of ``workload`` (warm-up first), emitting records into ``sink``."""
        ...

    def engine_info(self) -> dict[str, Any]: ...
    def model_config(self) -> dict[str, Any] | None: ...
    def dtypes(self) -> dict[str, str] | None: ...
    def close(self) -> None: ...


class PowerSource(Protocol):
    """The part of a power sensor the harness uses (see :mod:`capbench.telemetry`)."""

    def start(self, sink: Callable[[dict[str, Any]], None] | None = None, *, delivery: Any = "drain") -> None: ...
    def stop(self) -> None: ...
    def drain(self) -> list[dict[str, Any]]: ...


class _Sink:
    """Forwards runner records to the run directory and reports finished requests."""

    def __init__(
        self, writer: RunWriter, on_request_done: Callable[[dict[str, Any]], None], power: PowerSource | None
    ) -> None:
        self.writer = writer
        self._on_request_done = on_request_done
        self._power = power

    def on_pass(self, record: PassRecord) -> None:
        self.writer.append_pass(record)

    def on_request(self, record: RequestRecord) -> None:
        self.writer.append_request(record)
        self._on_request_done(dict(record))
        self.flush_power()

    def flush_power(self) -> None:
        """Deliver the sensor's buffered samples (to the writer, on this thread)."""
        if self._power is not None:
            self._power.drain()


def drive(
    runner: Runner,
    workload: Workload,
    writer: RunWriter,
    on_request_done: Callable[[dict[str, Any]], None] = lambda record: None,
    power: PowerSource | None = None,
) -> None:
    """Serve ``workload`` through ``runner``, recording requests, passes and power samples in ``writer``."""
    sink = _Sink(writer, on_request_done, power)
    if power is not None:
        power.start(writer.append_power, delivery="drain")
    try:
        runner.execute(workload, sink)
    finally:
        if power is not None:
            power.stop()  # takes a final sample and delivers what is buffered, on this thread
