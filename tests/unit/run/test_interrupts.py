"""deferred_interrupts: signals inside are noted, then raised again once the handlers are back."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import pytest

from capbench.run.interrupts import deferred_interrupts


class StoppedError(Exception):
    pass


def _raise(signum: int, frame: FrameType | None) -> None:
    raise StoppedError(signum)


def test_a_signal_inside_is_raised_on_exit_by_the_original_handler() -> None:
    previous = signal.signal(signal.SIGTERM, _raise)
    reached: list[str] = []
    try:
        with pytest.raises(StoppedError) as info, deferred_interrupts():
            signal.raise_signal(signal.SIGTERM)
            signal.raise_signal(signal.SIGINT)  # noted too; only the first is raised again
            reached.append("after the signals")
        assert reached == ["after the signals"] and info.value.args == (signal.SIGTERM,)
        assert signal.getsignal(signal.SIGTERM) is _raise
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_nothing_noted_raises_nothing() -> None:
    with deferred_interrupts():
        pass
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_exception_leaving_the_block_is_kept() -> None:
    with pytest.raises(ValueError, match="its own"), deferred_interrupts():
        signal.raise_signal(signal.SIGINT)
        raise ValueError("its own error")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_outside_the_main_thread_it_changes_nothing() -> None:
    seen: list[object] = []

    def work() -> None:
        with deferred_interrupts():
            seen.append(signal.getsignal(signal.SIGINT))

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen == [signal.default_int_handler]
