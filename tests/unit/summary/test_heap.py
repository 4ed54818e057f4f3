"""heap_kept: the top pad is raised for the block and set back after, even when the block raises; without
glibc's mallopt it does nothing."""

from __future__ import annotations

import pytest

from capbench.summary import heap


class Recorder:
    def __init__(self, answer: int = 1) -> None:
        self.calls: list[tuple[int, int]] = []
        self.answer = answer

    def __call__(self, parameter: int, value: int) -> int:
        self.calls.append((parameter, value))
        return self.answer


def test_the_pad_is_raised_then_set_back(monkeypatch: pytest.MonkeyPatch) -> None:
    mallopt = Recorder()
    monkeypatch.setattr(heap, "_mallopt", lambda: mallopt)
    with heap.heap_kept():
        assert mallopt.calls == [(heap.M_TOP_PAD, heap.SCORING_TOP_PAD)]
    assert mallopt.calls[-1] == (heap.M_TOP_PAD, heap.DEFAULT_TOP_PAD)
    with pytest.raises(RuntimeError), heap.heap_kept(1 << 20):
        raise RuntimeError("scoring failed")
    assert mallopt.calls[-2:] == [(heap.M_TOP_PAD, 1 << 20), (heap.M_TOP_PAD, heap.DEFAULT_TOP_PAD)]


def test_nothing_is_set_back_when_nothing_was_set(monkeypatch: pytest.MonkeyPatch) -> None:
    refused = Recorder(answer=0)
    monkeypatch.setattr(heap, "_mallopt", lambda: refused)
    with heap.heap_kept():
        pass
    assert refused.calls == [(heap.M_TOP_PAD, heap.SCORING_TOP_PAD)]
    monkeypatch.setattr(heap, "_mallopt", lambda: None)
    with heap.heap_kept():
        pass


def test_this_machines_mallopt_takes_the_setting() -> None:
    """On glibc (the development and CI machines) the real call succeeds both ways."""
    mallopt = heap._mallopt()
    if mallopt is None:
        pytest.skip("no mallopt in this C library")
    assert mallopt(heap.M_TOP_PAD, heap.SCORING_TOP_PAD) == 1
    assert mallopt(heap.M_TOP_PAD, heap.DEFAULT_TOP_PAD) == 1
