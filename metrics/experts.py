"""Routed-expert activation: measured distinct experts per pass, the uniform expectation, load balance.

a_l = distinct routed experts that received at least one of a pass's T tokens in MoE layer l (measured by the
runner, ``experts_active``). Under uniform, independent routing of each token to k of E experts, an expert is
missed by one token with probability 1 − k/E, so the expected number of distinct experts hit is
E·(1 − (1 − k/E)^T) (docs/metrics.md §3). That expectation is reported next to the measurement, and used in
place of it for S-MBU only when the caller asks (``expert_estimate=True``) and labels it so.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from capbench.metrics.phases import PHASE_NAMES

FloatArray = NDArray[np.float64]

# Per-pass provenance of Σ_l a_l used for routed-expert bytes.
SOURCE_MEASURED, SOURCE_ESTIMATED, SOURCE_NONE = 0, 1, 2


def uniform_expected_active(num_experts: int, top_k: int, tokens: ArrayLike) -> FloatArray:
    """Expected distinct experts per MoE layer under uniform routing: E·(1 − (1 − k/E)^T) (experts).

    T = 0 gives 0; k = E gives E for every T ≥ 1 (every expert is hit). Element-wise over ``tokens``.
    """
    t = np.asarray(tokens, dtype=np.float64)
    miss = 1.0 - top_k / num_experts
    return num_experts * (1.0 - np.power(miss, t))


def activation_source(codes: NDArray[np.int8], has_moe_layers: bool) -> str:
    """Label where a set of passes' routed-expert counts came from.

    ``measured`` (every pass measured), ``uniform_estimate`` (every pass estimated), ``mixed`` (some of each),
    ``none`` (at least one pass has neither, so routed bytes and S-MBU are not reported),
    ``not_applicable`` (the model has no MoE layer, so routed bytes are 0 by construction).
    """
    if not has_moe_layers:
        return "not_applicable"
    present = set(np.unique(codes).tolist())
    if SOURCE_NONE in present or not present:
        return "none"
    if present == {SOURCE_MEASURED}:
        return "measured"
    if present == {SOURCE_ESTIMATED}:
        return "uniform_estimate"
    return "mixed"


class ExpertTally:
    """Running per-phase totals of measured expert activity, filled chunk by chunk while passes stream.

    Nothing here is stored per pass: per phase it keeps Σ over measured passes of a_l for each MoE layer,
    the number of those passes, and (when runners give ``expert_tokens``) Σ tokens routed to each expert of
    each layer, with the number of passes that gave them.
    """

    def __init__(self) -> None:
        n = len(PHASE_NAMES)
        self.active_sum_per_layer: list[NDArray[np.int64] | None] = [None] * n
        self.active_passes = np.zeros(n, dtype=np.int64)
        self.token_counts: list[NDArray[np.int64] | None] = [None] * n
        self.token_passes = np.zeros(n, dtype=np.int64)

    def add_active(self, phase: NDArray[np.int8], active: NDArray[np.int64]) -> None:
        """Add measured passes: ``phase`` (m,) and ``active`` (m, MoE layers) of the same passes."""
        for code in range(len(PHASE_NAMES)):
            sel = phase == code
            count = int(sel.sum())
            if not count:
                continue
            part = active[sel].sum(axis=0)
            prev = self.active_sum_per_layer[code]
            self.active_sum_per_layer[code] = part if prev is None else prev + part
            self.active_passes[code] += count

    def add_tokens(self, phase: NDArray[np.int8], counts: NDArray[np.int64]) -> None:
        """Add per-expert token counts: ``phase`` (m,) and ``counts`` (m, MoE layers, E) of those passes."""
        for code in range(len(PHASE_NAMES)):
            sel = phase == code
            count = int(sel.sum())
            if not count:
                continue
            part = counts[sel].sum(axis=0)
            prev = self.token_counts[code]
            self.token_counts[code] = part if prev is None else prev + part
            self.token_passes[code] += count

    def merge(self, other: ExpertTally) -> None:
        """Add ``other``'s totals (the tally of another stretch of the same run's passes) to these."""
        pairs = ((self.active_sum_per_layer, other.active_sum_per_layer), (self.token_counts, other.token_counts))
        for code in range(len(PHASE_NAMES)):
            for mine, theirs in pairs:
                part = theirs[code]
                if part is not None:
                    prev = mine[code]
                    mine[code] = part.copy() if prev is None else prev + part
        self.active_passes += other.active_passes
        self.token_passes += other.token_passes

    def combined(self, codes: tuple[int, ...]) -> tuple[NDArray[np.int64] | None, int, NDArray[np.int64] | None, int]:
        """(Σ a_l per layer, measured passes, per-expert token counts, passes with counts) over ``codes``."""
        active: NDArray[np.int64] | None = None
        tokens: NDArray[np.int64] | None = None
        for code in codes:
            a = self.active_sum_per_layer[code]
            if a is not None:
                active = a.copy() if active is None else active + a
            t = self.token_counts[code]
            if t is not None:
                tokens = t.copy() if tokens is None else tokens + t
        return (
            active,
            int(self.active_passes[list(codes)].sum()),
            tokens,
            int(self.token_passes[list(codes)].sum()),
        )


def load_balance(counts: NDArray[np.int64] | None, passes_counted: int) -> dict[str, Any] | None:
    """Load balance of routed experts from token counts ``counts`` (MoE layers × E); ``None`` when absent.

    Per layer l with counts x_{l,e}: max/mean = max_e x / mean_e x, CV = std_e x / mean_e x (population std);
    ``None`` for a layer that routed no token. Overall: the same two figures over all L·E (layer, expert)
    counts pooled. Every layer routes T·k tokens in total, so the pooled mean equals each layer's mean and
    the pooled max/mean is the worst layer's. 1.0 and 0.0 mean perfectly balanced.
    """
    if counts is None:
        return None
    x = counts.astype(np.float64)
    mean = x.mean(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(mean > 0, x.max(axis=1) / mean, np.nan)
        cv = np.where(mean > 0, x.std(axis=1) / mean, np.nan)
    pooled_mean = float(x.mean())
    return {
        "passes_counted": passes_counted,
        "tokens_routed": int(counts.sum()),
        "max_over_mean_per_layer": [None if np.isnan(v) else float(v) for v in ratio],
        "cv_per_layer": [None if np.isnan(v) else float(v) for v in cv],
        "max_over_mean": float(x.max()) / pooled_mean if pooled_mean > 0 else None,
        "cv": float(x.std()) / pooled_mean if pooled_mean > 0 else None,
    }


def routed_active_for_bytes(
    active_sum: NDArray[np.int64],
    measured: NDArray[np.bool_],
    tokens: NDArray[np.int64],
    *,
    num_moe_layers: int,
    num_experts: int,
    top_k: int,
    expert_estimate: bool,
) -> tuple[FloatArray, NDArray[np.int8]]:
    """Σ_l a_l per pass for routed-expert bytes, and its source code per pass.

    Measured passes use the measurement. The others use, when ``expert_estimate`` is true, the labeled
    uniform estimate num_moe_layers · E·(1 − (1 − k/E)^T) (``SOURCE_ESTIMATED``), else NaN
    (``SOURCE_NONE``: routed bytes and S-MBU of that pass are not reported). A model without MoE layers has
    Σ_l a_l = 0 by construction: nothing is missing, whatever the record says.
    """
    if num_moe_layers == 0:
        return np.zeros(active_sum.shape, dtype=np.float64), np.full(active_sum.shape, SOURCE_MEASURED, np.int8)
    values = active_sum.astype(np.float64)
    codes = np.where(measured, SOURCE_MEASURED, SOURCE_ESTIMATED if expert_estimate else SOURCE_NONE)
    missing = ~measured
    if missing.any():
        if expert_estimate:
            values[missing] = num_moe_layers * uniform_expected_active(num_experts, top_k, tokens[missing])
        else:
            values[missing] = np.nan
    return values, codes.astype(np.int8)


def phase_experts(
    tally: ExpertTally,
    codes: tuple[int, ...],
    *,
    passes: int,
    uniform_expectation: float | None,
    estimated_active: float | None,
) -> dict[str, Any]:
    """Expert activity of the passes of one phase (``codes``: the phase codes it covers; ``all`` covers 3).

    ``passes``: the phase's scored passes; ``uniform_expectation``: the mean over its measured passes of the
    uniform-routing expectation E·(1 − (1 − k/E)^T) (None when none was measured, or E or k is unknown);
    ``estimated_active``: the mean per-layer uniform estimate over the passes where it replaced a missing
    measurement (None when no estimate was used). Both are computed by the caller from the passes
    (:mod:`capbench.metrics.pass_figures`).

    - ``mean_active_per_layer``: for each MoE layer, Σ a_l / measured passes (experts);
    - ``mean_active``: its mean over MoE layers (dense layers are never part of it);
    - ``load_balance``: :func:`load_balance` of the phase's summed ``expert_tokens``.
    """
    active, passes_measured, token_counts, passes_counted = tally.combined(codes)
    per_layer = None if active is None or not passes_measured else active / passes_measured
    return {
        "passes": passes,
        "passes_measured": passes_measured,
        "mean_active_per_layer": None if per_layer is None else [float(v) for v in per_layer],
        "mean_active": None if per_layer is None or not per_layer.size else float(per_layer.mean()),
        "uniform_expectation": uniform_expectation if passes_measured else None,
        "estimated_active": estimated_active,
        "load_balance": load_balance(token_counts, passes_counted),
    }
