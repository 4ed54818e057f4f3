"""A progress bar over a run's requests (rich), showing finished requests and output tokens/s (requests/s
while some request's token count is unknown: an unknown count is never shown as 0 tokens)."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class RequestProgress:
    """Context manager: ``request_done(record)`` advances the bar by one finished request (``total`` None:
    duration mode, an open-ended bar)."""

    def __init__(self, console: Console, total: int | None) -> None:
        self._progress = Progress(
            TextColumn("[bold]requests"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._task = self._progress.add_task("requests", total=total, rate="")
        self._tokens: int | None = 0
        self._requests = 0
        self._t0 = time.monotonic()

    def request_done(self, record: dict[str, Any]) -> None:
        self._requests += 1
        count = record.get("output_tokens")
        if count is None and record.get("error") is None:
            self._tokens = None  # a completed request of unknown length: tokens/s is unknown from here on
        elif self._tokens is not None and count is not None:
            self._tokens += int(count)
        elapsed = time.monotonic() - self._t0
        if elapsed <= 0:
            rate = ""
        elif self._tokens is None:
            rate = f"{self._requests / elapsed:,.1f} req/s"
        else:
            rate = f"{self._tokens / elapsed:,.0f} out tok/s"
        self._progress.update(self._task, advance=1, rate=rate)

    def __enter__(self) -> RequestProgress:
        self._progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()
