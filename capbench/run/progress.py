"""A progress bar over a run's requests (rich), showing finished requests and output tokens/s (requests/s
while some request's token count is unknown: an unknown count is never shown as 0 tokens).

Cheap at any request rate: ``request_done`` only counts; the bar itself is updated at most every
``update_interval_s`` (and once more at the end), and redrawn ``refresh_per_second`` times a second by rich's
own thread. The drawing thread shares the interpreter lock with the load generator's event loop, so it is kept
at a few redraws a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

UPDATE_INTERVAL_S = 0.25
"""The bar's figures are brought up to date at most this often (seconds)."""
REFRESH_PER_SECOND = 4
"""Redraws per second of the bar (rich's default is 10)."""


class RequestProgress:
    """Context manager: ``request_done(record)`` counts one finished request (``total`` None: duration mode,
    an open-ended bar). ``clock`` (seconds, monotonic) is for tests."""

    def __init__(
        self,
        console: Console,
        total: int | None,
        *,
        update_interval_s: float = UPDATE_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._progress = Progress(
            TextColumn("[bold]requests"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
            refresh_per_second=REFRESH_PER_SECOND,
        )
        self._task = self._progress.add_task("requests", total=total, rate="")
        self._clock = clock
        self._update_interval_s = update_interval_s
        self._tokens: int | None = 0
        self._requests = 0
        self._shown = 0  # requests the bar shows
        self._t0 = clock()
        self._next_update = self._t0 + update_interval_s

    @property
    def requests(self) -> int:
        """Finished requests counted so far."""
        return self._requests

    @property
    def shown(self) -> int:
        """Finished requests the bar shows (at most ``update_interval_s`` behind :attr:`requests`)."""
        return self._shown

    @property
    def rate(self) -> str:
        """Output tokens/s since the start (requests/s once some count is unknown); empty before any time passed."""
        elapsed = self._clock() - self._t0
        if elapsed <= 0:
            return ""
        if self._tokens is None:
            return f"{self._requests / elapsed:,.1f} req/s"
        return f"{self._tokens / elapsed:,.0f} out tok/s"

    def request_done(self, record: dict[str, Any]) -> None:
        self._requests += 1
        count = record.get("output_tokens")
        if count is None and record.get("error") is None:
            self._tokens = None  # a completed request of unknown length: tokens/s is unknown from here on
        elif self._tokens is not None and count is not None:
            self._tokens += int(count)
        now = self._clock()
        if now >= self._next_update:
            self._next_update = now + self._update_interval_s
            self._show()

    def _show(self) -> None:
        """Bring the bar's count and rate up to date."""
        advance, self._shown = self._requests - self._shown, self._requests
        self._progress.update(self._task, advance=advance, rate=self.rate)

    def __enter__(self) -> RequestProgress:
        self._progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._show()
        self._progress.stop()
