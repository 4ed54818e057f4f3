"""Raw run records: the on-disk contract between runners and metrics (see docs/records.md).

Runners write raw facts with :class:`RunWriter`; everything derived is recomputed from these files by
:mod:`capbench.metrics`. :func:`read_run` reads a run directory back, tolerating a torn last line.
"""

from capbench.records.reader import RecordWarning, RunData, iter_jsonl, read_manifest, read_run
from capbench.records.schema import (
    MANIFEST_FILE,
    PASSES_FILE,
    POWER_FILE,
    REQUESTS_FILE,
    SCHEMA_VERSION,
    SERVER_METRICS_FILE,
    SUMMARY_FILE,
    RunStatus,
)
from capbench.records.writer import JsonlAppender, RunWriter, write_json_atomic

__all__ = [
    "MANIFEST_FILE",
    "PASSES_FILE",
    "POWER_FILE",
    "REQUESTS_FILE",
    "SCHEMA_VERSION",
    "SERVER_METRICS_FILE",
    "SUMMARY_FILE",
    "JsonlAppender",
    "RecordWarning",
    "RunData",
    "RunStatus",
    "RunWriter",
    "iter_jsonl",
    "read_manifest",
    "read_run",
    "write_json_atomic",
]
