"""Hold Ctrl-C and termination signals back while a run's writer is set up, then deliver them.

``run.json`` says ``running`` from its first write. From then on an interruption (Ctrl-C; SIGTERM or SIGHUP, which
the CLI maps to Ctrl-C; the parent-death SIGTERM a killed sweep's point gets) must end the run ``partial``, and
only the writer's context does that. Between the rename that creates ``run.json`` and the ``with`` that enters
the writer, Python runs a handful of bytecodes; a signal handled there (a busy machine may preempt the process
right after the rename, so the signal is already pending when it resumes) raised outside the context and left
the run ``running`` for good.

:func:`deferred_interrupts` closes that window: while it is active, SIGINT, SIGTERM and SIGHUP are only noted;
when it ends, the original handlers are back and the first noted signal is raised again, so it is handled
right there, inside whatever context the caller entered meanwhile. Only the main thread can change handlers;
elsewhere this does nothing.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

DEFERRED: tuple[signal.Signals, ...] = tuple(
    s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None
)
"""The signals held back: Ctrl-C and the two the CLI maps to it."""


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Note SIGINT, SIGTERM and SIGHUP instead of handling them; on exit restore the handlers and raise the first
    noted signal again (module docstring). An exception already leaving the block is not replaced: the run
    ends on it either way."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    noted: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        noted.append(signum)

    originals: dict[signal.Signals, Any] = {}
    try:
        for sig in DEFERRED:
            originals[sig] = signal.signal(sig, note)
        yield
    except BaseException:
        _restore(originals)
        raise
    _restore(originals)
    if noted:
        signal.raise_signal(noted[0])  # handled at once, by the restored handler


def _restore(originals: dict[signal.Signals, Any]) -> None:
    for sig, handler in originals.items():
        signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
