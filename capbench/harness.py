"""The one place that sequences a run: warm-up, then the measured requests, appending raw records as they come.

:func:`drive` hands requests to a runner in batches, writes every pass and request record through the
:class:`~capbench.records.RunWriter` the moment the runner emits it (flushed line by line), and advances a
progress bar per finished request. It does not catch ``KeyboardInterrupt``: the caller's ``RunWriter`` turns
an interruption into ``status: partial`` with every completed request already on disk.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from capbench.records import RunWriter
from capbench.workload import Request


class Runner(Protocol):
    """What the harness needs from a backend (implemented in :mod:`capbench.runners`)."""

    name: str

    def serve(self, batch: Sequence[Request], sink: Any) -> None: ...
    def engine_info(self) -> dict[str, Any]: ...
    def model_config(self) -> dict[str, Any]: ...
    def dtypes(self) -> dict[str, str]: ...
    def close(self) -> None: ...


@dataclass
class DriveStats:
    """Counts of what :func:`drive` wrote."""

    requests: int = 0
    passes: int = 0
    output_tokens: int = 0


class _Sink:
    """Forwards runner records to the run directory and reports finished requests."""

    def __init__(self, writer: RunWriter, on_request_done: Callable[[dict[str, Any]], None]) -> None:
        self.writer = writer
        self.stats = DriveStats()
        self._on_request_done = on_request_done

    def on_pass(self, record: dict[str, Any]) -> None:
        self.writer.append_pass(record)
        self.stats.passes += 1

    def on_request(self, record: dict[str, Any]) -> None:
        self.writer.append_request(record)
        self.stats.requests += 1
        self.stats.output_tokens += int(record.get("output_tokens") or 0)
        self._on_request_done(record)


def batches(requests: Sequence[Request], batch_size: int) -> list[list[Request]]:
    """Split requests into batches of at most ``batch_size``, never mixing warm-up and measured requests."""
    out: list[list[Request]] = []
    for group in ([r for r in requests if r.warmup], [r for r in requests if not r.warmup]):
        out += [list(group[i : i + batch_size]) for i in range(0, len(group), batch_size)]
    return out


def drive(
    runner: Runner,
    requests: Sequence[Request],
    batch_size: int,
    writer: RunWriter,
    on_request_done: Callable[[dict[str, Any]], None] = lambda record: None,
) -> DriveStats:
    """Serve ``requests`` (warm-up first) through ``runner`` in batches, recording everything in ``writer``."""
    sink = _Sink(writer, on_request_done)
    for batch in batches(requests, batch_size):
        runner.serve(batch, sink)
    return sink.stats
