"""A progress bar over a run's requests (rich), showing finished requests and output tokens/s."""

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
        self._tokens = 0
        self._t0 = time.monotonic()

    def request_done(self, record: dict[str, Any]) -> None:
        self._tokens += int(record.get("output_tokens") or 0)
        elapsed = time.monotonic() - self._t0
        rate = f"{self._tokens / elapsed:,.0f} out tok/s" if elapsed > 0 else ""
        self._progress.update(self._task, advance=1, rate=rate)

    def __enter__(self) -> RequestProgress:
        self._progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()
