"""Assemble ``summary.json``: one pure function from a run's records to every derived number.

:func:`score_run` streams the pass records once (:mod:`capbench.metrics.passes`), computes bytes and FLOPs
over the per-pass feature arrays, aggregates them per phase, and adds request latency, expert activity,
energy and cost. It reads no file: callers pass already-parsed records (``capbench.records.read_run``).
The output shape is documented field by field in ``docs/summary.md``; every ``None`` is explained in
``notes``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from capbench.arch.dtypes import ByteWidths
from capbench.arch.structure import ModelStructure
from capbench.metrics.attention import AttentionGroups
from capbench.metrics.bytes import BYTES_PARTS, pass_bytes
from capbench.metrics.cost import CostInputs, cost_summary
from capbench.metrics.energy import energy_summary
from capbench.metrics.engine_side import engine_side_summary
from capbench.metrics.experts import (
    SOURCE_ESTIMATED,
    SOURCE_MEASURED,
    SOURCE_NONE,
    activation_source,
    phase_experts,
    routed_active_for_bytes,
)
from capbench.metrics.features import PassFeatures
from capbench.metrics.flops import FLOPS_CONVENTION, FLOPS_PARTS, pass_flops
from capbench.metrics.passes import PassScan, PendingPassScan, scan_passes
from capbench.metrics.phases import ALL, PHASE_NAMES, phase_summary
from capbench.metrics.request_scan import ChunkSource, scan_requests
from capbench.metrics.stats import ratio_or_none
from capbench.metrics.utilization import Ceilings
from capbench.records.power_columns import PowerColumns
from capbench.records.reader import Rescan

SUMMARY_SCHEMA_VERSION = 1
"""Version of the ``summary.json`` shape (docs/summary.md)."""
SPEC_VERSION = "1.0"
"""Version of the metric definitions (docs/metrics.md) these numbers follow."""

Record = Mapping[str, Any]
PassSource = Callable[[], Iterator[Record]]
"""A restartable source of pass records (each call reads from the start)."""


@dataclass(frozen=True)
class ProfileChoice:
    """The hardware profile a run is scored against, as the summary reports it: ``id``, ``version``, whether it
    was ``measured`` (a probe) and how it was chosen (``selected_by``); ``dtypes`` it has a peak for. ``id`` is
    None when no profile could be chosen (``selected_by`` then says why)."""

    id: str | None
    version: int | str | None
    measured: bool | None
    selected_by: str
    dtypes: tuple[str, ...] = ()


def score_run(
    manifest: Mapping[str, Any],
    requests: Iterable[Record] | ChunkSource,
    passes: Iterable[Record] | PassSource | PendingPassScan | None,
    power: Iterable[Record] | PowerColumns,
    *,
    structure: ModelStructure | None,
    widths: ByteWidths | None,
    ceilings: Ceilings | None,
    cost: CostInputs | None,
    expert_estimate: bool = False,
    profile: ProfileChoice | None = None,
    num_gpus_known: bool = True,
    server_scrapes: Iterable[Record] | None = None,
    capbench_version: str | None = None,
) -> dict[str, Any]:
    """Every derived number of one run, as the whole ``summary.json`` dict (its one author).

    ``structure`` (model shape) is needed for bytes and FLOPs, ``widths`` for bytes, ``ceilings`` for S-MBU
    and S-MFU, ``cost`` for cost; each missing one leaves its figures ``None`` with a note. With
    ``expert_estimate`` a pass that did not measure ``experts_active`` gets the labeled uniform-routing
    estimate for its routed-expert bytes; without it that pass's bytes (and its phase's S-MBU) are ``None``.
    ``profile``: the hardware profile chosen (its identity goes into ``hardware``); ``num_gpus_known``: whether
    the deployment's GPU count is known; ``server_scrapes``: the ``server_metrics.jsonl`` records (None when the
    run has none) for the engine-side ``server`` section; ``capbench_version``: the scorer's version.

    Records stream: ``requests`` as in-memory records or a restartable source of column chunks (a run directory,
    :meth:`capbench.records.reader.RunFiles.request_chunks`), ``passes`` as records or a restartable source of
    them, ``power`` as records or columns; nothing per record is kept but the columns exact figures need
    (:mod:`capbench.metrics.request_scan`, :mod:`capbench.metrics.passes`).
    """
    notes: list[str] = []
    requests_scan = scan_requests(requests, manifest)
    req = requests_scan.latency.result()
    scan = _scan_passes(passes, **pass_scan_options(structure))
    features = scan.features
    per_pass = _per_pass(features, structure, widths, expert_estimate, notes)
    phases = _phases(features, per_pass, ceilings, structure, notes)
    experts = _experts(scan, features, per_pass, structure, expert_estimate)
    throughput = req["throughput"]
    gpus = _num_gpus(manifest, ceilings) if num_gpus_known else None
    throughput["output_tokens_per_s_per_gpu"] = ratio_or_none(throughput["output_tokens_per_s"], gpus)
    loglikelihood = requests_scan.loglikelihood
    window = _window(throughput, features, loglikelihood.window_ns)
    energy, energy_notes = energy_summary(
        power,
        window_ns=window[0] if window else None,
        window_source=window[1] if window else None,
        output_tokens=throughput["output_tokens"],
        completed_requests=req["requests"]["completed"] or None,
        passes=(features.phase, features.t_start_ns, features.t_end_ns, features.timed, features.tokens),
        num_gpus=_num_gpus(manifest, ceilings),
    )
    notes.extend(energy_notes)
    cost_out = cost_summary(
        cost,
        wall_s=throughput["wall_s"],
        output_tokens=throughput["output_tokens"],
        completed_requests=req["requests"]["completed"] or None,
        energy_kwh=energy["energy_kwh"],
    )
    _explain(req, scan, energy, cost_out, ceilings, manifest, notes, loglikelihood.measured)
    (manifest.get("spec") or {}).get("slo") or {}
    client = _client(manifest, notes)
    hardware = _hardware(manifest, ceilings)
    summary: dict[str, Any] = {
        "schema_version": SUMMARY_SCHEMA_VERSION,
        "spec_version": SPEC_VERSION,
        "capbench_version": capbench_version,
        "recorded_with_capbench_version": manifest.get("capbench_version"),
        "run_id": manifest.get("run_id"),
        "status": manifest.get("status"),
        "flops_convention": FLOPS_CONVENTION,
        "requests": req["requests"],
        "throughput": throughput,
        "latency": req["latency"],
        "goodput": requests_scan.goodput.result(throughput["wall_s"]),
        "load": requests_scan.load.result(),
        "client": client,
        "pass_records": {"total": scan.records, "warmup": scan.warmup, "scored": features.num_passes},
        "phases": phases,
        "experts": experts,
        "hardware": hardware,
        "energy": energy,
        "cost": cost_out,
        "notes": notes,
    }
    if profile is not None:
        hardware.update(
            profile=profile.id,
            profile_version=profile.version,
            profile_measured=profile.measured,
            profile_selected_by=profile.selected_by,
        )
        _explain_resolution(profile, ceilings, structure, manifest, num_gpus_known, notes)
    if manifest.get("status") != "complete":
        summary["run_error"] = manifest.get("error")
        notes.append(
            f"this run is {manifest.get('status')}, not complete ({manifest.get('error') or 'no reason recorded'}): "
            "its figures cover only what was measured before it ended"
        )
    summary["accuracy"] = requests_scan.accuracy.result(manifest)
    summary["fixed_length"] = requests_scan.fixed_length.result()
    summary["workload"] = requests_scan.lengths.result(manifest)
    summary["sessions"] = requests_scan.turns.result(manifest.get("client"))
    summary["loglikelihood"] = loglikelihood.result()
    if summary["fixed_length"] is not None and not summary["fixed_length"]["exact"]:
        notes.append("fixed-length mode: some requests did not get the asked token counts (fixed_length)")
    summary["server"] = None
    if server_scrapes is not None:
        summary["server"] = engine_side_summary(list(server_scrapes))
        if summary["server"] is None:
            notes.append("server_metrics.jsonl has fewer than two successful scrapes: no engine-side metrics")
    return summary


def _explain_resolution(
    profile: ProfileChoice,
    ceilings: Ceilings | None,
    structure: ModelStructure | None,
    manifest: Mapping[str, Any],
    num_gpus_known: bool,
    notes: list[str],
) -> None:
    """Notes for what the scorer's inputs left out: no profile, no GPU count, no peak, no dtypes, no model."""
    if profile.id is None:
        notes.append(f"hardware: {profile.selected_by}; pass --hardware ID to get S-MBU and S-MFU")
    if not num_gpus_known:
        notes.append("the number of GPUs behind the server is unknown (give gpus when running): no ceilings, no cost")
    if ceilings is not None and ceilings.peak_flops_per_s is None and profile.id is not None:
        notes.append(
            f"hardware profile {profile.id} has no dense peak FLOP/s for the compute dtype "
            f"{ceilings.compute_dtype} (it has: {', '.join(profile.dtypes) or 'none'}): S-MFU is null; give one with "
            f"--hardware-override peak_flops_per_s.{ceilings.compute_dtype}=VALUE"
        )
    if profile.id is not None and not (manifest.get("dtypes") or {}).get("compute"):
        notes.append("run.json has no dtypes.compute: no peak FLOP/s to score against, utilization null")
    if structure is None:
        notes.append("no model config in run.json (give model_path for a server run): no bytes, FLOPs or utilization")


@dataclass
class _PerPass:
    """Per-pass expert-source codes, routed Σ a_l, bytes and FLOPs (totals and parts), aligned with features.

    ``None``/empty where the input they need (structure, byte widths) is missing.
    """

    source_codes: np.ndarray
    routed_active: np.ndarray | None = None
    bytes_total: np.ndarray | None = None
    bytes_parts: dict[str, np.ndarray] = field(default_factory=dict)
    flops_total: np.ndarray | None = None
    flops_parts: dict[str, np.ndarray] = field(default_factory=dict)


def _phase_selections(features: PassFeatures) -> list[tuple[str, tuple[int, ...], np.ndarray]]:
    """(name, phase codes, pass mask) of every phase that has passes, then ``all``."""
    selections: list[tuple[str, tuple[int, ...], np.ndarray]] = [
        (name, (code,), features.phase == code) for code, name in enumerate(PHASE_NAMES)
    ]
    selections.append((ALL, tuple(range(len(PHASE_NAMES))), np.ones(features.num_passes, dtype=np.bool_)))
    return [(name, codes, mask) for name, codes, mask in selections if mask.any()]


def _per_pass(
    features: PassFeatures,
    structure: ModelStructure | None,
    widths: ByteWidths | None,
    expert_estimate: bool,
    notes: list[str],
) -> _PerPass:
    if structure is None:
        notes.append("model structure unknown (config.json not parsed): bytes, FLOPs, S-MBU, S-MFU are null")
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
    if widths is None:
        notes.append("byte widths unknown (dtypes not resolved): bytes and S-MBU are null")
        return out
    moved = pass_bytes(features, structure, widths, active)
    out.bytes_total = moved.total
    out.bytes_parts = {name: getattr(moved, name) for name in BYTES_PARTS}
    return out


def _sums(parts: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, float | None] | None:
    if not parts:
        return None
    sums = {name: values[mask].sum() for name, values in parts.items()}
    return {name: None if np.isnan(v) else float(v) for name, v in sums.items()}


def _phases(
    features: PassFeatures,
    per_pass: _PerPass,
    ceilings: Ceilings | None,
    structure: ModelStructure | None,
    notes: list[str],
) -> dict[str, Any]:
    if features.num_passes == 0:
        notes.append("no scored pass records (passes.jsonl absent, empty or all warm-up): phases are empty")
        return {}
    has_moe = structure is None or structure.num_moe_layers > 0
    codes = per_pass.source_codes
    phases: dict[str, Any] = {}
    for name, _, mask in _phase_selections(features):
        source = activation_source(codes[mask], has_moe)
        entry = phase_summary(
            latency_s=features.latency_s[mask],
            tokens=features.tokens[mask],
            pass_bytes=None if per_pass.bytes_total is None else per_pass.bytes_total[mask],
            pass_flops=None if per_pass.flops_total is None else per_pass.flops_total[mask],
            ceilings=ceilings,
            expert_activation_source=source,
        )
        entry["sampled_tokens"] = int(features.sampled[mask].sum())
        entry["bytes_by_part"] = _sums(per_pass.bytes_parts, mask)
        entry["flops_by_part"] = _sums(per_pass.flops_parts, mask)
        phases[name] = entry
        if name != ALL and per_pass.bytes_total is not None:
            unmeasured = int((codes[mask] == SOURCE_NONE).sum())
            estimated = int((codes[mask] == SOURCE_ESTIMATED).sum())
            if unmeasured:
                notes.append(
                    f"{name}: {unmeasured} of {int(mask.sum())} passes did not measure experts_active, so "
                    "routed-expert bytes and S-MBU are null (score with expert_estimate to use the labeled "
                    "uniform-routing estimate)"
                )
            if estimated:
                notes.append(
                    f"{name}: {estimated} of {int(mask.sum())} passes use the uniform-routing estimate "
                    "E·(1−(1−k/E)^T) for experts_active (expert_activation_source says so)"
                )
    return phases


def _experts(
    scan: PassScan,
    features: PassFeatures,
    per_pass: _PerPass,
    structure: ModelStructure | None,
    expert_estimate: bool,
) -> dict[str, Any]:
    num_experts = structure.num_experts if structure is not None else None
    top_k = structure.top_k if structure is not None else None
    out: dict[str, Any] = {
        "activation_source": None,
        "estimate_policy": "uniform_estimate_when_unmeasured" if expert_estimate else "null_when_unmeasured",
        "num_experts": num_experts,
        "top_k": top_k,
        "num_moe_layers": structure.num_moe_layers if structure is not None else scan.num_moe_layers,
        "load_balance": None,
    }
    if features.num_passes == 0:
        return out
    codes = per_pass.source_codes
    has_moe = structure is None or structure.num_moe_layers > 0
    out["activation_source"] = activation_source(codes, has_moe)
    for name, phase_codes, mask in _phase_selections(features):
        estimated = None
        if per_pass.routed_active is not None and structure is not None:
            est = mask & (codes == SOURCE_ESTIMATED)
            if est.any() and structure.num_moe_layers:
                estimated = per_pass.routed_active[est] / structure.num_moe_layers
        out[name] = phase_experts(
            scan.experts,
            phase_codes,
            tokens=features.tokens[mask],
            measured=features.experts_measured[mask],
            estimated=estimated,
            num_experts=num_experts,
            top_k=top_k,
        )
    out["load_balance"] = out[ALL]["load_balance"]
    return out


def _client(manifest: Mapping[str, Any], notes: list[str]) -> dict[str, Any] | None:
    """The load generator's self-check from ``run.json`` (client CPU, event-loop lag), its warnings as notes."""
    client = manifest.get("client")
    if not isinstance(client, Mapping):
        return None
    for warning in client.get("warnings") or []:
        notes.append(f"client: {warning}")
    return dict(client)


def pass_scan_options(structure: ModelStructure | None) -> dict[str, Any]:
    """The keyword arguments of :func:`scan_passes` for a model (its sliding windows, MoE layers, experts, top-k;
    empty and None without a structure)."""
    groups = AttentionGroups.of(structure) if structure is not None else None
    return {
        "windows": groups.windows if groups is not None else (),
        "num_moe_layers": structure.num_moe_layers if structure is not None else None,
        "num_experts": structure.num_experts if structure is not None else None,
        "top_k": structure.top_k if structure is not None else None,
    }


def _scan_passes(passes: Iterable[Record] | PassSource | PendingPassScan | None, **options: Any) -> PassScan:
    """:func:`scan_passes` of records, or of a restartable source (read again on :class:`Rescan`), or the result of
    a scan already under way elsewhere (:class:`PendingPassScan`, started with the same options)."""
    if isinstance(passes, PendingPassScan):
        return passes.result()
    while True:
        try:
            if callable(passes):
                return scan_passes(passes(), **options)
            return scan_passes(passes if passes is not None else (), **options)
        except Rescan:
            if not callable(passes):
                raise


def _window(
    throughput: Mapping[str, Any], features: PassFeatures, loglikelihood_ns: tuple[int, int] | None
) -> tuple[tuple[int, int], str] | None:
    """The measurement window for energy: the (generation) requests' wall window, else the log-likelihood
    requests' window, else the span of timed passes."""
    start, end = throughput.get("window_start_ns"), throughput.get("window_end_ns")
    if start is not None and end is not None:
        return (int(start), int(end)), "requests"
    if loglikelihood_ns is not None and loglikelihood_ns[1] > loglikelihood_ns[0]:
        return loglikelihood_ns, "requests"
    if features.num_passes and features.timed.any():
        timed = features.timed
        return (int(features.t_start_ns[timed].min()), int(features.t_end_ns[timed].max())), "passes"
    return None


def _num_gpus(manifest: Mapping[str, Any], ceilings: Ceilings | None) -> int | None:
    if ceilings is not None:
        return ceilings.num_gpus
    value = (manifest.get("hardware") or {}).get("num_gpus")
    return value if isinstance(value, int) and value > 0 else None


def _hardware(manifest: Mapping[str, Any], ceilings: Ceilings | None) -> dict[str, Any]:
    hw = manifest.get("hardware") or {}
    return {
        "profile": hw.get("profile"),
        "gpu_name": hw.get("gpu_name"),
        "num_gpus": hw.get("num_gpus"),
        "ceilings": None if ceilings is None else ceilings.as_dict(),
        "null_reason": None
        if ceilings is not None
        else "no hardware ceilings (no GPU profile known for this run, none given): S-MBU and S-MFU are null",
    }


def _explain(
    req: Mapping[str, Any],
    scan: PassScan,
    energy: Mapping[str, Any],
    cost_out: Mapping[str, Any],
    ceilings: Ceilings | None,
    manifest: Mapping[str, Any],
    notes: list[str],
    loglikelihood_requests: int = 0,
) -> None:
    """Add a note for every figure that is null (or suspicious) and was not explained yet."""
    counts, latency = req["requests"], req["latency"]
    if counts["measured"] == 0 and loglikelihood_requests:
        notes.append(
            f"the run's {loglikelihood_requests} measured requests are all log-likelihood requests (no generated "
            "tokens): generation counts, latency, throughput and goodput are null; see loglikelihood"
        )
    elif counts["measured"] == 0:
        notes.append("no measured (non-warm-up) request: request counts, latency and throughput are null")
    elif counts["completed"] == 0:
        notes.append(
            "no request completed without error: latency and token throughput are null (requests_per_s counts "
            "completed requests, so it is 0 over the measured wall time)"
        )
    else:
        if latency["ttft_s"]["count"] == 0:
            notes.append("no completed request recorded t_first_token_ns: TTFT and TPOT are null")
        elif latency["tpot_s"]["count"] == 0:
            notes.append("no completed request produced 2 or more output tokens: TPOT is null")
        if latency["itl_s"]["count"] == 0:
            notes.append("no completed request recorded 2+ token_times_ns: inter-token latency is null")
        if req["throughput"]["output_tokens"] is None:
            notes.append("some completed request did not record output_tokens: token throughput is null")
        if req["throughput"]["input_tokens"] is None:
            notes.append("some completed request did not record prompt_tokens: input tokens/s is null")
    if ceilings is None and scan.features.num_passes:
        notes.append("no hardware ceilings given: S-MBU and S-MFU are null")
    hw_gpus = (manifest.get("hardware") or {}).get("num_gpus")
    if ceilings is not None and isinstance(hw_gpus, int) and hw_gpus > 0 and hw_gpus != ceilings.num_gpus:
        notes.append(f"run.json says {hw_gpus} GPUs but the ceilings use {ceilings.num_gpus}")
    if scan.experts_below_top_k:
        notes.append(
            f"{scan.experts_below_top_k} passes report fewer than top_k distinct experts in some MoE layer, "
            "impossible when every token reaches k experts: the measurement may be incomplete (e.g. local "
            "experts only under expert parallelism)"
        )
    if energy["null_reason"]:
        notes.append(f"energy: {energy['null_reason']}")
    for name, reason in cost_out["null_reasons"].items():
        notes.append(f"cost ({name}): {reason}")
