"""Keep freed memory in the heap while a run is scored, instead of giving it back to the kernel each time (issue #18).

Scoring reads a run a chunk at a time: every chunk allocates and frees numpy arrays of kilobytes to megabytes. By
default glibc's ``malloc`` gives the top of its heap back to the kernel as soon as 128 KiB lie free there
(``M_TOP_PAD``, the slack it keeps, is 128 KiB), so the next chunk's arrays fault the same pages in again, and
the kernel zeroes each one. :func:`heap_kept` raises that slack to :data:`SCORING_TOP_PAD` for the duration of
the scoring and sets it back to glibc's default after. Measured on two cores, 1M requests + 1M passes
(``benchmarks/score_run_scale.py``): system time of the scorer 0.55 s → 0.25 s, of its pass reader 1.0 s →
0.1 s; with 16 MiB of slack the scorer still spent 1.3 s in the kernel, 32 and 64 MiB were alike. The resident
memory it can add is at most the slack.

glibc only (``mallopt``); elsewhere it does nothing. Like every ``mallopt`` setting it also stops glibc from
raising its mmap threshold by itself for the rest of the process (large blocks are then always mapped afresh).
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Callable, Iterator

M_TOP_PAD = -2
"""glibc's ``mallopt`` parameter number for the top pad (``<malloc.h>``)."""
DEFAULT_TOP_PAD = 128 * 1024
"""glibc's default top pad (bytes), set back when the scoring ends."""
SCORING_TOP_PAD = 64 * 1024 * 1024
"""Bytes of freed memory the heap keeps while a run is scored."""


def _mallopt() -> Callable[[int, int], int] | None:
    try:
        function = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):  # not glibc (macOS, Windows), or no C library to open
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int]
    function.restype = ctypes.c_int
    return function


@contextlib.contextmanager
def heap_kept(pad_bytes: int = SCORING_TOP_PAD) -> Iterator[None]:
    """Within the block, the heap keeps up to ``pad_bytes`` of freed memory (module docstring)."""
    mallopt = _mallopt()
    if mallopt is None or not mallopt(M_TOP_PAD, pad_bytes):
        yield
        return
    try:
        yield
    finally:
        mallopt(M_TOP_PAD, DEFAULT_TOP_PAD)
