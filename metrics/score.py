"""Assemble ``summary.json``: one pure function from a run's records to every derived number.

:func:`score_run` streams the pass records once (:mod:`capbench.metrics.passes`) into a store of per-pass
features, reads that back a slice at a time to compute bytes and FLOPs and aggregate them per phase
(:mod:`capbench.metrics.pass_figures`), and adds request latency, expert activity, energy and cost. It reads no
file: callers pass already-parsed records (``capbench.records.read_run``).
The output shape is documented field by field in ``docs/summary.md``; every ``None`` is explained in
``notes``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from capbench.arch.dtypes import ByteWidths
from capbench.arch.structure import ModelStructure
from capbench.metrics.attention import AttentionGroups
from capbench.metrics.cost import CostInputs, cost_summary
from capbench.metrics.energy import PassIntervals, energy_summary
from capbench.metrics.engine_side import engine_side_summary
from capbench.metrics.flops import FLOPS_CONVENTION
from capbench.metrics.pass_figures import pass_figures
from capbench.metrics.passes import PassScan, PendingPassScan, scan_passes
from capbench.metrics.request_scan import ChunkSource, RequestScan, scan_requests
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
    requests: Iterable[Record] | ChunkSource | RequestScan,
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
    :meth:`capbench.records.reader.RunFiles.request_chunks`), or already scanned (a :class:`RequestScan` of this
    run's requests, made with this manifest's SLO and fixed lengths: :mod:`capbench.summary.live`), ``passes`` as
    records or a restartable source of them, ``power`` as records or columns; nothing per record is kept but the
    columns exact figures need (:mod:`capbench.metrics.request_scan`, :mod:`capbench.metrics.passes`).
    """
    notes: list[str] = []
    requests_scan = requests if isinstance(requests, RequestScan) else scan_requests(requests, manifest)
    req = requests_scan.latency.result()
    # Every figure of the requests alone first: a pass scan in other processes may still be running.
    loglikelihood = requests_scan.loglikelihood
    from_requests = {
        "goodput": requests_scan.goodput.result(req["throughput"]["wall_s"]),
        "load": requests_scan.load.result(),
        "accuracy": requests_scan.accuracy.result(manifest),
        "fixed_length": requests_scan.fixed_length.result(),
        "workload": requests_scan.lengths.result(manifest),
        "sessions": requests_scan.turns.result(manifest.get("client")),
        "loglikelihood": loglikelihood.result(),
    }
    scan = _scan_passes(passes, **pass_scan_options(structure))
    try:
        figures = pass_figures(
            scan, structure=structure, widths=widths, ceilings=ceilings, expert_estimate=expert_estimate, notes=notes
        )
        throughput = req["throughput"]
        gpus = _num_gpus(manifest, ceilings) if num_gpus_known else None
        throughput["output_tokens_per_s_per_gpu"] = ratio_or_none(throughput["output_tokens_per_s"], gpus)
        window = _window(throughput, figures.timed_span_ns, loglikelihood.window_ns)
        energy, energy_notes = energy_summary(
            power,
            window_ns=window[0] if window else None,
            window_source=window[1] if window else None,
            output_tokens=throughput["output_tokens"],
            completed_requests=req["requests"]["completed"] or None,
            passes=_pass_intervals(scan),
            num_gpus=_num_gpus(manifest, ceilings),
        )
    finally:
        scan.store.close()
    notes.extend(energy_notes)
    cost_out = cost_summary(
        cost,
        wall_s=throughput["wall_s"],
        output_tokens=throughput["output_tokens"],
        completed_requests=req["requests"]["completed"] or None,
        energy_kwh=energy["energy_kwh"],
    )
    _explain(req, scan, energy, cost_out, ceilings, manifest, notes, loglikelihood.measured)
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
        "goodput": from_requests["goodput"],
        "load": from_requests["load"],
        "client": client,
        "pass_records": {"total": scan.records, "warmup": scan.warmup, "scored": scan.num_passes},
        "phases": figures.phases,
        "experts": figures.experts,
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
    for name in ("accuracy", "fixed_length", "workload", "sessions", "loglikelihood"):
        summary[name] = from_requests[name]
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
    throughput: Mapping[str, Any], timed_span_ns: tuple[int, int] | None, loglikelihood_ns: tuple[int, int] | None
) -> tuple[tuple[int, int], str] | None:
    """The measurement window for energy: the (generation) requests' wall window, else the log-likelihood
    requests' window, else the span of timed passes."""
    start, end = throughput.get("window_start_ns"), throughput.get("window_end_ns")
    if start is not None and end is not None:
        return (int(start), int(end)), "requests"
    if loglikelihood_ns is not None and loglikelihood_ns[1] > loglikelihood_ns[0]:
        return loglikelihood_ns, "requests"
    return (timed_span_ns, "passes") if timed_span_ns is not None else None


def _pass_intervals(scan: PassScan) -> Callable[[], Iterator[PassIntervals]]:
    """The scored passes' (phase, t_start_ns, t_end_ns, timed, tokens), a slice at a time, for energy."""

    def slices() -> Iterator[PassIntervals]:
        for f in scan.store.slices():
            yield f.phase, f.t_start_ns, f.t_end_ns, f.timed, f.tokens

    return slices


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
    if ceilings is None and scan.num_passes:
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
