"""Where a runner puts its records: the :class:`RecordSink` protocol (the consumer's side of the record contract).

Runners build their records with :mod:`capbench.records.schema`'s builders and hand them over as they happen, on
the runner's own thread; the harness writes them to the run directory (``requests.jsonl``, ``passes.jsonl``).
The protocol lives with the records, not with the harness, so a runner needs only the record types, never the
code that sequences a run.
"""

from __future__ import annotations

from typing import Protocol

from capbench.records.schema import PassRecord, RequestRecord


class RecordSink(Protocol):
    """Where a runner puts its records (called on the runner's thread, as events happen); build them with
    :func:`capbench.records.schema.request_record` and :func:`~capbench.records.schema.pass_record`."""

    def on_pass(self, record: PassRecord) -> None: ...
    def on_request(self, record: RequestRecord) -> None: ...


__all__ = ["RecordSink"]
