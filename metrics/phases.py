"""Engine-step phases and the per-phase aggregate (docs/metrics.md §3).

A request in a pass is *in decode* when it computes exactly one token on top of a non-empty cache
(n_i = 1 and c_i > 0). A pass is

- ``prefill``: no request in decode (prompt chunks only; a 1-token prompt with c = 0 is prefill),
- ``decode``: every request in decode,
- ``mixed``: some of each (chunked prefill piggy-backed on decode steps),

and ``all`` is every scored pass. Warm-up passes never reach this module (the scanner drops them).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from capbench.metrics.stats import FloatColumn, ratio_or_none, sum_of_parts
from capbench.metrics.utilization import Ceilings, per_pass_s_mbu, per_pass_s_mfu, s_mbu, s_mfu

PHASE_NAMES: tuple[str, ...] = ("prefill", "decode", "mixed")
"""Phase names indexed by their int8 code."""
PREFILL, DECODE, MIXED = 0, 1, 2
ALL = "all"

FloatArray = NDArray[np.float64]


def classify(decode_requests: NDArray[np.int64], requests: NDArray[np.int64]) -> NDArray[np.int8]:
    """Phase code per pass from its number of requests in decode and its number of requests (both ≥ 0).

    ``decode_requests`` = 0 → PREFILL; = ``requests`` → DECODE; otherwise MIXED. Requests ≥ 1 per pass is the
    caller's invariant, so the first two cases never overlap.
    """
    phase = np.full(requests.shape, MIXED, dtype=np.int8)
    phase[decode_requests == 0] = PREFILL
    phase[(decode_requests == requests) & (requests > 0)] = DECODE
    return phase


class PhaseTotals:
    """Running totals of one phase's passes (or of ``all``), added a slice at a time (:meth:`add`), for
    :meth:`summary`.

    It keeps Σ T (an int), the slices' Σ latency_s, Σ bytes and Σ FLOPs (floats; bytes or FLOPs become unknown
    for good once a pass's value is unknown, NaN), and the exact distributions of step latency and of per-pass
    S-MBU and S-MFU (:class:`FloatColumn`: bounded memory, exact percentiles).
    """

    def __init__(self, ceilings: Ceilings | None) -> None:
        self.ceilings = ceilings
        self.passes = 0
        self.tokens = 0
        self._time_parts: list[float] = []
        self._bytes_parts: list[float] | None = None  # None: no bytes at all; NaN inside: some pass unknown
        self._flops_parts: list[float] | None = None
        self._latency = FloatColumn()
        self._mbu = FloatColumn()
        self._mfu = FloatColumn()

    def add(
        self,
        *,
        latency_s: FloatArray,
        tokens: NDArray[np.int64],
        pass_bytes: FloatArray | None,
        pass_flops: FloatArray | None,
    ) -> None:
        """Add passes: their latency (s), T, bytes and FLOPs (None when not computed; NaN where unknown)."""
        self.passes += int(latency_s.size)
        self.tokens += int(tokens.sum())
        self._time_parts.append(float(latency_s.sum()))
        self._latency.extend(latency_s)
        self._bytes_parts = _add_sum(self._bytes_parts, pass_bytes)
        self._flops_parts = _add_sum(self._flops_parts, pass_flops)
        if self.ceilings is None:
            return
        if pass_bytes is not None and _total(self._bytes_parts) is not None:
            self._mbu.extend(per_pass_s_mbu(pass_bytes, latency_s, self.ceilings))
        if pass_flops is not None and _total(self._flops_parts) is not None:
            self._mfu.extend(per_pass_s_mfu(pass_flops, latency_s, self.ceilings))

    def summary(self, *, expert_activation_source: str) -> dict[str, Any]:
        """The phase's aggregate (the figures of :func:`phase_summary`); the totals cannot be added to after."""
        time_s = sum_of_parts(self._time_parts)
        token_total = self.tokens
        bytes_total = _total(self._bytes_parts)
        flops_total = _total(self._flops_parts)
        mbu = self._mbu.describe() if bytes_total is not None else _NO_STATS
        mfu = self._mfu.describe() if flops_total is not None else _NO_STATS
        return {
            "passes": self.passes,
            "tokens": token_total,
            "time_s": time_s,
            "tokens_per_s": ratio_or_none(token_total, time_s),
            "step_latency_s": self._latency.describe(),
            "bytes": bytes_total,
            "flops": flops_total,
            "arithmetic_intensity_flop_per_byte": ratio_or_none(flops_total, bytes_total),
            "achieved_flops_per_s": ratio_or_none(flops_total, time_s),
            "achieved_bytes_per_s": ratio_or_none(bytes_total, time_s),
            "s_mbu": s_mbu(bytes_total, time_s, self.ceilings),
            "s_mfu": s_mfu(flops_total, time_s, self.ceilings),
            "s_mbu_p50": mbu["p50"],
            "s_mbu_p90": mbu["p90"],
            "s_mfu_p50": mfu["p50"],
            "s_mfu_p90": mfu["p90"],
            "expert_activation_source": expert_activation_source,
        }


_NO_STATS: dict[str, Any] = {"p50": None, "p90": None}


def _total(parts: list[float] | None) -> float | None:
    """The sum of the slices' sums, or None when none were computed or one holds an unknown (NaN) pass."""
    if parts is None or any(math.isnan(v) for v in parts):
        return None
    return sum_of_parts(parts)


def _add_sum(parts: list[float] | None, values: FloatArray | None) -> list[float] | None:
    """``parts`` with Σ ``values`` appended (a new list for the first); None (no values computed: the same for every
    slice of a run) stays None."""
    if values is None:
        return parts
    return [*(parts or []), float(values.sum())]


def add_parts(target: dict[str, list[float]], parts: dict[str, FloatArray], mask: NDArray[np.bool_]) -> None:
    """Append Σ ``values[mask]`` of each named per-pass array to ``target[name]`` (the running sums by part)."""
    for name, values in parts.items():
        target.setdefault(name, []).append(float(values[mask].sum()))


def sum_parts(target: dict[str, list[float]]) -> dict[str, float | None] | None:
    """The totals of :func:`add_parts`: each part's sum, None for a part with an unknown (NaN) pass; None when
    there are no parts."""
    if not target:
        return None
    sums = {name: sum_of_parts(values) for name, values in target.items()}
    return {name: None if math.isnan(v) else v for name, v in sums.items()}


def phase_summary(
    *,
    latency_s: FloatArray,
    tokens: NDArray[np.int64],
    pass_bytes: FloatArray | None,
    pass_flops: FloatArray | None,
    ceilings: Ceilings | None,
    expert_activation_source: str,
) -> dict[str, Any]:
    """Aggregate one phase's passes given as whole arrays (:class:`PhaseTotals` with one slice).

    - ``tokens`` = Σ T (tokens computed), ``time_s`` = Σ latency_s, ``tokens_per_s`` = Σ T / Σ latency_s.
    - ``bytes``/``flops`` = Σ per-pass bytes / FLOPs (``None`` when any pass's value is unknown).
    - ``arithmetic_intensity_flop_per_byte`` = flops / bytes (the roofline's x), ``achieved_flops_per_s`` =
      flops / time_s (its y) and ``achieved_bytes_per_s`` = bytes / time_s (``None`` when an input is).
    - ``s_mbu``/``s_mfu``: ratios of sums (utilization module); ``*_p50``/``*_p90``: percentiles of the
      per-pass values, over the same passes.
    - ``step_latency_s``: stats of per-pass latency (engine step latency, seconds).
    """
    totals = PhaseTotals(ceilings)
    totals.add(latency_s=latency_s, tokens=tokens, pass_bytes=pass_bytes, pass_flops=pass_flops)
    return totals.summary(expert_activation_source=expert_activation_source)
