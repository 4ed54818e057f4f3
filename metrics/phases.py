"""Engine-step phases and the per-phase aggregate (docs/metrics.md §3).

A request in a pass is *in decode* when it computes exactly one token on top of a non-empty cache
(n_i = 1 and c_i > 0). A pass is

- ``prefill``: no request in decode (prompt chunks only; a 1-token prompt with c = 0 is prefill),
- ``decode``: every request in decode,
- ``mixed``: some of each (chunked prefill piggy-backed on decode steps),

and ``all`` is every scored pass. Warm-up passes never reach this module (the scanner drops them).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from capbench.metrics.stats import describe, percentile_or_none, ratio_or_none
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


def _sum_or_none(values: FloatArray | None) -> float | None:
    """Σ values, or ``None`` when the array is absent or any element is NaN (an unmeasured pass)."""
    if values is None or np.isnan(values).any():
        return None
    return float(values.sum())


def phase_summary(
    *,
    latency_s: FloatArray,
    tokens: NDArray[np.int64],
    pass_bytes: FloatArray | None,
    pass_flops: FloatArray | None,
    ceilings: Ceilings | None,
    expert_activation_source: str,
) -> dict[str, Any]:
    """Aggregate one phase's passes.

    - ``tokens`` = Σ T (tokens computed), ``time_s`` = Σ latency_s, ``tokens_per_s`` = Σ T / Σ latency_s.
    - ``bytes``/``flops`` = Σ per-pass bytes / FLOPs (``None`` when any pass's value is unknown).
    - ``arithmetic_intensity_flop_per_byte`` = flops / bytes (the roofline's x), ``achieved_flops_per_s`` =
      flops / time_s (its y) and ``achieved_bytes_per_s`` = bytes / time_s (``None`` when an input is).
    - ``s_mbu``/``s_mfu``: ratios of sums (utilization module); ``*_p50``/``*_p90``: percentiles of the
      per-pass values, over the same passes.
    - ``step_latency_s``: stats of per-pass latency (engine step latency, seconds).
    """
    time_s = float(latency_s.sum())
    token_total = int(tokens.sum())
    bytes_total = _sum_or_none(pass_bytes)
    flops_total = _sum_or_none(pass_flops)
    mbu_pass = (
        per_pass_s_mbu(pass_bytes, latency_s, ceilings)
        if pass_bytes is not None and bytes_total is not None and ceilings is not None
        else np.empty(0)
    )
    mfu_pass = (
        per_pass_s_mfu(pass_flops, latency_s, ceilings)
        if pass_flops is not None and ceilings is not None
        else np.empty(0)
    )
    return {
        "passes": int(latency_s.size),
        "tokens": token_total,
        "time_s": time_s,
        "tokens_per_s": ratio_or_none(token_total, time_s),
        "step_latency_s": describe(latency_s),
        "bytes": bytes_total,
        "flops": flops_total,
        "arithmetic_intensity_flop_per_byte": ratio_or_none(flops_total, bytes_total),
        "achieved_flops_per_s": ratio_or_none(flops_total, time_s),
        "achieved_bytes_per_s": ratio_or_none(bytes_total, time_s),
        "s_mbu": s_mbu(bytes_total, time_s, ceilings),
        "s_mfu": s_mfu(flops_total, time_s, ceilings),
        "s_mbu_p50": percentile_or_none(mbu_pass, 50.0),
        "s_mbu_p90": percentile_or_none(mbu_pass, 90.0),
        "s_mfu_p50": percentile_or_none(mfu_pass, 50.0),
        "s_mfu_p90": percentile_or_none(mfu_pass, 90.0),
        "expert_activation_source": expert_activation_source,
    }
