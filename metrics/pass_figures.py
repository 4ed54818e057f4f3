"""Per-phase pass figures of a run, read slice by slice from its :class:`FeatureStore` (docs/metrics.md §2–4).

For each slice of passes (:meth:`FeatureStore.slices`, file order) this computes the per-pass routed Σ a_l,
bytes and FLOPs (:mod:`capbench.metrics.bytes`, :mod:`capbench.metrics.flops`) and adds them to running totals
per phase and for ``all`` (:class:`~capbench.metrics.phases.PhaseTotals`, :class:`_Phase`); nothing per pass
outlives its slice except the exact distributions (step latency, per-pass S-MBU and S-MFU), which are
:class:`~capbench.metrics.stats.FloatColumn` objects (bounded memory). The outputs are the summary's ``phases``
and ``experts`` sections and the timed passes' span.

A run of at most :data:`~capbench.metrics.feature_store.SLICE_PASSES` passes is one slice, so every figure is
the same bits as numpy's reductions over the whole run's arrays; a longer run's sums add its slices' sums in order
(the percentiles and means of the distributions stay exact whatever the length).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from capbench.arch.dtypes import ByteWidths
from capbench.arch.structure import ModelStructure
from capbench.metrics.bytes import BYTES_PARTS, pass_bytes
from capbench.metrics.experts import (
    SOURCE_ESTIMATED,
    SOURCE_MEASURED,
    SOURCE_NONE,
    activation_source,
    phase_experts,
    routed_active_for_bytes,
    uniform_expected_active,
)
from capbench.metrics.features import PassFeatures
from capbench.metrics.flops import FLOPS_PARTS, pass_flops
from capbench.metrics.passes import PassScan
from capbench.metrics.phases import ALL, PHASE_NAMES, PhaseTotals, add_parts, sum_parts
from capbench.metrics.stats import sum_of_parts
from capbench.metrics.utilization import Ceilings

FloatArray = NDArray[np.float64]


@dataclass
class _PerPass:
    """One slice's per-pass expert-source codes, routed Σ a_l, bytes and FLOPs (totals and parts), aligned with
    its features; ``None``/empty where the input they need (structure, byte widths) is missing."""

    source_codes: NDArray[np.int8]
    routed_active: FloatArray | None = None
    bytes_total: FloatArray | None = None
    bytes_parts: dict[str, FloatArray] = field(default_factory=dict)
    flops_total: FloatArray | None = None
    flops_parts: dict[str, FloatArray] = field(default_factory=dict)


def _per_pass(
    features: PassFeatures, structure: ModelStructure | None, widths: ByteWidths | None, expert_estimate: bool
) -> _PerPass:
    if structure is None:
        codes = np.where(features.experts_measured, SOURCE_MEASURED, SOURCE_NONE).astype(np.int8)
        return _PerPass(source_codes=codes)
    active, codes = routed_active_for_bytes(
        features.experts_active_sum,
        features.experts_measured,
        features.tokens,
        num_moe_layers=structure.num_moe_layers,
        num_experts=structure.num_experts,
        top_k=structure.top_k,
        expert_estimate=expert_estimate,
    )
    flops = pass_flops(features, structure)
    out = _PerPass(
        source_codes=codes,
        routed_active=active,
        flops_total=flops.total,
        flops_parts={name: getattr(flops, name) for name in FLOPS_PARTS},
    )
    if widths is not None:
        moved = pass_bytes(features, structure, widths, active)
        out.bytes_total = moved.total
        out.bytes_parts = {name: getattr(moved, name) for name in BYTES_PARTS}
    return out


@dataclass
class _Phase:
    """Running totals of one phase (or ``all``) beyond :class:`PhaseTotals`: sampled tokens, bytes and FLOPs by
    part, expert-source counts, and the sums behind the expert means."""

    totals: PhaseTotals
    sampled_tokens: int = 0
    bytes_parts: dict[str, list[float]] = field(default_factory=dict)
    flops_parts: dict[str, list[float]] = field(default_factory=dict)
    source_counts: NDArray[np.int64] = field(default_factory=lambda: np.zeros(3, dtype=np.int64))
    uniform_parts: list[float] = field(default_factory=list)
    uniform_passes: int = 0
    estimated_parts: list[float] = field(default_factory=list)
    estimated_passes: int = 0


@dataclass
class PassFigures:
    """The summary's ``phases`` and ``experts`` sections, and the timed passes' [first start, last end] (ns)."""

    phases: dict[str, Any]
    experts: dict[str, Any]
    timed_span_ns: tuple[int, int] | None


def pass_figures(
    scan: PassScan,
    *,
    structure: ModelStructure | None,
    widths: ByteWidths | None,
    ceilings: Ceilings | None,
    expert_estimate: bool,
    notes: list[str],
) -> PassFigures:
    """Read ``scan``'s store once and return its :class:`PassFigures`, adding a note for each null it causes."""
    if structure is None:
        notes.append("model structure unknown (config.json not parsed): bytes, FLOPs, S-MBU, S-MFU are null")
    elif widths is None:
        notes.append("byte widths unknown (dtypes not resolved): bytes and S-MBU are null")
    phases: dict[str, _Phase] = {}
    span: tuple[int, int] | None = None
    num_experts = structure.num_experts if structure is not None else None
    top_k = structure.top_k if structure is not None else None
    for features in scan.store.slices():
        per_pass = _per_pass(features, structure, widths, expert_estimate)
        for name, mask in _selections(features):
            phase = phases.get(name)
            if phase is None:
                phase = phases[name] = _Phase(PhaseTotals(ceilings))
            _add(phase, features, per_pass, mask, structure, num_experts, top_k)
        span = _span(span, features)
    ordered = {name: phases[name] for name in (*PHASE_NAMES, ALL) if name in phases}
    bytes_known = structure is not None and widths is not None
    return PassFigures(
        phases=_phases_section(ordered, structure, bytes_known=bytes_known, notes=notes),
        experts=_experts_section(scan, ordered, structure, expert_estimate, num_experts, top_k),
        timed_span_ns=span,
    )


def _selections(features: PassFeatures) -> Iterator[tuple[str, NDArray[np.bool_]]]:
    """(name, pass mask) of every phase with passes in this slice, then ``all``."""
    for code, name in enumerate(PHASE_NAMES):
        mask = features.phase == code
        if mask.any():
            yield name, mask
    yield ALL, np.ones(features.num_passes, dtype=np.bool_)


def _add(
    phase: _Phase,
    features: PassFeatures,
    per_pass: _PerPass,
    mask: NDArray[np.bool_],
    structure: ModelStructure | None,
    num_experts: int | None,
    top_k: int | None,
) -> None:
    phase.totals.add(
        latency_s=features.latency_s[mask],
        tokens=features.tokens[mask],
        pass_bytes=None if per_pass.bytes_total is None else per_pass.bytes_total[mask],
        pass_flops=None if per_pass.flops_total is None else per_pass.flops_total[mask],
    )
    phase.sampled_tokens += int(features.sampled[mask].sum())
    add_parts(phase.bytes_parts, per_pass.bytes_parts, mask)
    add_parts(phase.flops_parts, per_pass.flops_parts, mask)
    codes = per_pass.source_codes[mask]
    phase.source_counts += np.bincount(codes, minlength=3)[:3]
    measured = features.experts_measured[mask]
    if num_experts is not None and top_k is not None and measured.any():
        uniform = uniform_expected_active(num_experts, top_k, features.tokens[mask][measured])
        phase.uniform_parts.append(float(uniform.sum()))
        phase.uniform_passes += int(uniform.size)
    if per_pass.routed_active is not None and structure is not None and structure.num_moe_layers:
        estimated = codes == SOURCE_ESTIMATED
        if estimated.any():
            values = per_pass.routed_active[mask][estimated] / structure.num_moe_layers
            phase.estimated_parts.append(float(values.sum()))
            phase.estimated_passes += int(values.size)


def _span(span: tuple[int, int] | None, features: PassFeatures) -> tuple[int, int] | None:
    timed = features.timed
    if not timed.any():
        return span
    first, last = int(features.t_start_ns[timed].min()), int(features.t_end_ns[timed].max())
    return (first, last) if span is None else (min(span[0], first), max(span[1], last))


def _source(counts: NDArray[np.int64], has_moe: bool) -> str:
    return activation_source(np.flatnonzero(counts).astype(np.int8), has_moe)


def _phases_section(
    phases: dict[str, _Phase], structure: ModelStructure | None, *, bytes_known: bool, notes: list[str]
) -> dict[str, Any]:
    if not phases:
        notes.append("no scored pass records (passes.jsonl absent, empty or all warm-up): phases are empty")
        return {}
    has_moe = structure is None or structure.num_moe_layers > 0
    out: dict[str, Any] = {}
    for name, phase in phases.items():
        entry = phase.totals.summary(expert_activation_source=_source(phase.source_counts, has_moe))
        entry["sampled_tokens"] = phase.sampled_tokens
        entry["bytes_by_part"] = sum_parts(phase.bytes_parts)
        entry["flops_by_part"] = sum_parts(phase.flops_parts)
        out[name] = entry
        if name != ALL and bytes_known:
            passes = phase.totals.passes
            unmeasured, estimated = int(phase.source_counts[SOURCE_NONE]), int(phase.source_counts[SOURCE_ESTIMATED])
            if unmeasured:
                notes.append(
                    f"{name}: {unmeasured} of {passes} passes did not measure experts_active, so "
                    "routed-expert bytes and S-MBU are null (score with expert_estimate to use the labeled "
                    "uniform-routing estimate)"
                )
            if estimated:
                notes.append(
                    f"{name}: {estimated} of {passes} passes use the uniform-routing estimate "
                    "E·(1−(1−k/E)^T) for experts_active (expert_activation_source says so)"
                )
    return out


def _mean(parts: list[float], count: int) -> float | None:
    """Σ parts / count (:func:`sum_of_parts`: one part gives numpy's mean of that slice's values, bit for bit),
    None when count is 0."""
    return sum_of_parts(parts) / count if count else None


def _experts_section(
    scan: PassScan,
    phases: dict[str, _Phase],
    structure: ModelStructure | None,
    expert_estimate: bool,
    num_experts: int | None,
    top_k: int | None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "activation_source": None,
        "estimate_policy": "uniform_estimate_when_unmeasured" if expert_estimate else "null_when_unmeasured",
        "num_experts": num_experts,
        "top_k": top_k,
        "num_moe_layers": structure.num_moe_layers if structure is not None else scan.num_moe_layers,
        "load_balance": None,
    }
    if not phases:
        return out
    has_moe = structure is None or structure.num_moe_layers > 0
    out["activation_source"] = _source(phases[ALL].source_counts, has_moe)
    for name, phase in phases.items():
        codes = tuple(range(len(PHASE_NAMES))) if name == ALL else (PHASE_NAMES.index(name),)
        out[name] = phase_experts(
            scan.experts,
            codes,
            passes=phase.totals.passes,
            uniform_expectation=_mean(phase.uniform_parts, phase.uniform_passes),
            estimated_active=_mean(phase.estimated_parts, phase.estimated_passes),
        )
    out["load_balance"] = out[ALL]["load_balance"]
    return out
