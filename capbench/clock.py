"""The one clock every ``*_ns`` timestamp in a run uses.

All request, pass and power timestamps of a run come from :func:`now_ns`, ``time.monotonic_ns()``: integer
nanoseconds, never going backwards, unaffected by wall-clock changes. Its zero point is arbitrary (boot), so
timestamps are only comparable within one process on one machine; ``run.json`` records the clock's name
(:data:`CLOCK_NAME`) and the wall-clock time at which it was read, so a reader can place the run in time.
"""

import time
from datetime import UTC, datetime

CLOCK_NAME = "time.monotonic_ns"

now_ns = time.monotonic_ns


def utc_now_iso() -> str:
    """The current wall-clock time as ISO 8601 in UTC, e.g. ``2026-11-21T23:40:00.123456+00:00``."""
    return datetime.now(UTC).isoformat()


def ns_to_s(duration_ns: int | float) -> float:
    """Convert a duration in nanoseconds to seconds."""
    return duration_ns / 1e9
