"""Per-pass feature arrays: the handful of scalars every byte, FLOP and phase formula needs from a pass.

Filled by :func:`capbench.metrics.passes.scan_passes`; read by :mod:`capbench.metrics.bytes`,
:mod:`capbench.metrics.flops` and :mod:`capbench.metrics.score`. One array element per scored pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

NO_TIME_NS = np.iinfo(np.int64).min
"""Stored in ``t_start_ns``/``t_end_ns`` for a pass that gave only ``latency_s`` (see ``timed``)."""


@dataclass(frozen=True)
class PassFeatures:
    """Per-pass scalars of every scored (non-warm-up) pass, in file order; one array element per pass.

    ``kv_tokens_window`` and ``pairs_window`` have one column per entry of ``windows``.
    ``experts_active_sum`` is Σ_l a_l where ``experts_measured``, else 0 (never read there).
    ``t_start_ns``/``t_end_ns`` hold :data:`NO_TIME_NS` where ``timed`` is false.
    """

    windows: tuple[int, ...]
    tokens: IntArray
    sampled: IntArray
    kv_tokens_full: IntArray
    pairs_full: IntArray
    kv_tokens_window: IntArray
    pairs_window: IntArray
    experts_active_sum: IntArray
    experts_measured: BoolArray
    latency_s: FloatArray
    phase: NDArray[np.int8]
    t_start_ns: IntArray
    t_end_ns: IntArray
    timed: BoolArray

    @property
    def num_passes(self) -> int:
        return int(self.tokens.size)


ARRAY_FIELDS: tuple[str, ...] = (
    "tokens",
    "sampled",
    "kv_tokens_full",
    "pairs_full",
    "kv_tokens_window",
    "pairs_window",
    "experts_active_sum",
    "experts_measured",
    "latency_s",
    "phase",
    "t_start_ns",
    "t_end_ns",
    "timed",
)


_DTYPES: dict[str, type[np.generic]] = {
    "experts_measured": np.bool_,
    "timed": np.bool_,
    "latency_s": np.float64,
    "phase": np.int8,
}


def empty_column(name: str, num_windows: int) -> np.ndarray:
    """A zero-length column of the right dtype (and width, for the per-window columns)."""
    if name in ("kv_tokens_window", "pairs_window"):
        return np.zeros((0, num_windows), dtype=np.int64)
    return np.zeros(0, dtype=_DTYPES.get(name, np.int64))
