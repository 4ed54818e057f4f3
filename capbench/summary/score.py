"""Score a run directory: read its records, resolve structure, byte widths, ceilings and cost inputs, and call
the pure :func:`capbench.metrics.score.score_run`. Used by ``capbench score`` and at the end of ``capbench run``.

Resolution (every choice is written into ``summary.json``):
- structure: from the model's ``config.json`` stored inline in ``run.json`` (never the weights), with the
  run's ``top_k_override`` applied;
- byte widths: from ``run.json`` ``dtypes`` (names such as ``bfloat16``, ``fp8``, ``int4_g128``);
- hardware profile: ``--hardware`` if given, else the run's inline ``profile_data`` (a probe or user file),
  else its shipped ``profile`` id (current figures), else a match of its ``gpu_name``; then the run's and the
  command line's overrides. Ceilings use N = ``num_gpus`` (1 for a CPU device) and the dense peak of
  ``dtypes.compute``; a missing peak is an error, never 0;
- cost: ``rental`` pricing at ``usd_per_gpu_hour`` (given, else the profile's rental price), where electricity
  is taken as included (``usd_per_kwh`` 0) unless a price is given; or ``amortized`` pricing from purchase
  prices, lifetime and utilization, which needs ``usd_per_kwh``.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from capbench import __version__
from capbench.arch.dtypes import byte_widths
from capbench.arch.families import model_structure
from capbench.arch.structure import ModelStructure
from capbench.errors import CapbenchError
from capbench.hardware import HardwareProfile, apply_overrides, match_gpu_name, profile_from_dict, resolve_profile
from capbench.metrics.cost import CostInputs
from capbench.metrics.request_scan import RequestScan
from capbench.metrics.score import ProfileChoice, pass_scan_options, score_run
from capbench.metrics.utilization import Ceilings
from capbench.records import SUMMARY_FILE, RunData, write_json_atomic
from capbench.records.reader import RunFiles, open_run
from capbench.summary.heap import heap_kept
from capbench.summary.pass_worker import start_pass_scan


@dataclass(frozen=True)
class ScoreOptions:
    """Choices a user can make when (re)scoring; ``None`` = take it from the run."""

    hardware: str | None = None
    hardware_overrides: Mapping[str, str | float] = field(default_factory=dict)
    expert_estimate: bool = False
    pricing: Literal["rental", "amortized"] = "rental"
    usd_per_gpu_hour: float | None = None
    usd_per_kwh: float | None = None
    gpu_purchase_usd: float | None = None
    host_purchase_usd: float | None = None
    lifetime_years: float | None = None
    utilization: float | None = None


def run_structure(manifest: Mapping[str, Any]) -> ModelStructure | None:
    """The model structure of a run, from its inline ``config.json`` and its top-k override; None when the
    run has no model config (a server run without ``model_path``: no bytes, FLOPs or utilization)."""
    model = manifest.get("model") or {}
    config = model.get("config")
    if config is None:
        return None
    if not isinstance(config, Mapping):
        raise CapbenchError("run.json model.config must be the model's config.json object")
    structure = model_structure(config)
    override = model.get("top_k_override")
    return structure.with_top_k(int(override)) if override else structure


def run_profile(manifest: Mapping[str, Any], options: ScoreOptions) -> tuple[HardwareProfile | None, str]:
    """The hardware profile to score against and how it was chosen."""
    hw = manifest.get("hardware") or {}
    profile: HardwareProfile | None
    if options.hardware:
        profile, how = resolve_profile(options.hardware), "command line"
    elif hw.get("profile_data"):
        profile, how = profile_from_dict(hw["profile_data"], origin="run.json hardware.profile_data"), "run (inline)"
    elif hw.get("profile"):
        profile, how = resolve_profile(hw["profile"]), "run (shipped id)"
    elif hw.get("gpu_name"):
        profile = match_gpu_name(str(hw["gpu_name"]))
        how = "matched gpu_name" if profile else f"no profile matches GPU {hw['gpu_name']!r}"
    else:
        profile, how = None, "no profile: none given, no GPU, no probe"
    if profile is not None:
        overrides = {**(hw.get("overrides") or {}), **options.hardware_overrides}
        profile = apply_overrides(profile, overrides)
    return profile, how


def device_count(manifest: Mapping[str, Any]) -> int | None:
    """N for the ceilings and the cost: the run's GPUs, 1 for a run on a CPU device, None when unknown (a
    server run whose GPUs were not given: never guessed, since S-MBU and cost scale with it)."""
    hw = manifest.get("hardware") or {}
    gpus = hw.get("num_gpus")
    if isinstance(gpus, int) and gpus > 0:
        return gpus
    return 1 if hw.get("device") == "cpu" or gpus == 0 else None


def run_ceilings(manifest: Mapping[str, Any], profile: HardwareProfile, num_gpus: int) -> Ceilings:
    compute = (manifest.get("dtypes") or {}).get("compute")
    if not compute:
        raise CapbenchError("run.json dtypes.compute is missing: cannot pick the peak FLOP/s to score against")
    return Ceilings(
        num_gpus=num_gpus,
        memory_bandwidth_bytes_per_s=profile.memory_bandwidth_bytes_per_s,
        peak_flops_per_s=profile.peak_flops_or_none(compute),
        compute_dtype=str(compute),
        source=f"hardware profile {profile.id} (version {profile.version})",
    )


def run_cost_inputs(
    manifest: Mapping[str, Any], profile: HardwareProfile | None, options: ScoreOptions
) -> CostInputs | None:
    spec = manifest.get("spec") or {}
    n = device_count(manifest)
    if n is None:
        return None
    usd_per_kwh = options.usd_per_kwh if options.usd_per_kwh is not None else spec.get("usd_per_kwh")
    kwh_source = "user" if usd_per_kwh is not None else None
    tdp = profile.tdp_w if profile is not None else None
    if options.pricing == "amortized":
        return CostInputs(
            num_gpus=n,
            pricing="amortized",
            gpu_purchase_usd=options.gpu_purchase_usd
            if options.gpu_purchase_usd is not None
            else (profile.purchase_usd if profile else None),
            host_purchase_usd=options.host_purchase_usd,
            lifetime_years=options.lifetime_years,
            utilization=options.utilization,
            usd_per_kwh=usd_per_kwh,
            gpu_tdp_w=tdp,
            price_source="user" if options.gpu_purchase_usd is not None else (profile.id if profile else None),
            energy_price_source=kwh_source,
        )
    price = options.usd_per_gpu_hour if options.usd_per_gpu_hour is not None else spec.get("usd_per_gpu_hour")
    price_source = "user" if price is not None else None
    if price is None and profile is not None and profile.rental_usd_per_gpu_hour is not None:
        price = profile.rental_usd_per_gpu_hour
        price_source = f"profile {profile.id}: {profile.sources.get('rental_usd_per_gpu_hour', 'no source')}"
    if price is None:
        return None
    if usd_per_kwh is None:
        usd_per_kwh, kwh_source = 0.0, "included in the rental price (default for rental pricing)"
    return CostInputs(
        num_gpus=n,
        pricing="rental",
        usd_per_gpu_hour=float(price),
        gpu_purchase_usd=profile.purchase_usd if profile else None,
        usd_per_kwh=float(usd_per_kwh),
        gpu_tdp_w=tdp,
        price_source=price_source,
        energy_price_source=kwh_source,
    )


def score_loaded_run(
    run: RunData | RunFiles, options: ScoreOptions | None = None, request_scan: RequestScan | None = None
) -> dict[str, Any]:
    """The summary of a run: already read (:class:`RunData`), or opened for streaming (:class:`RunFiles`: its
    records are read once, a chunk at a time); pure apart from reading it and loading hardware profiles.
    ``request_scan``: its requests, already scanned while the run went (:mod:`capbench.summary.live`)."""
    options = options or ScoreOptions()
    manifest = run.manifest
    structure = run_structure(manifest)
    dtypes = manifest.get("dtypes")
    widths = byte_widths(dtypes) if dtypes else None
    profile, how = run_profile(manifest, options)
    has_compute_dtype = bool((dtypes or {}).get("compute"))
    num_gpus = device_count(manifest)
    ceilings = None
    if profile is not None and has_compute_dtype and num_gpus is not None:
        ceilings = run_ceilings(manifest, profile, num_gpus)
    choice = ProfileChoice(
        id=profile.id if profile else None,
        version=profile.version if profile else None,
        measured=profile.measured if profile else None,
        selected_by=how,
        dtypes=tuple(profile.dtypes) if profile else (),
    )
    pending = None
    if isinstance(run, RunFiles):
        requests: Any = run.request_chunks
        passes: Any = run.passes if run.has_passes else None
        if passes is not None:
            pending = start_pass_scan(run, pass_scan_options(structure))  # a large file: read it alongside
        power: Any = run.power()
    else:
        requests, power = run.requests, run.power
        passes = run.iter_passes() if run.has_passes else None
    if request_scan is not None:
        requests = request_scan
    try:
        return score_run(
            manifest,
            requests,
            pending or passes,
            power,
            structure=structure,
            widths=widths,
            ceilings=ceilings,
            cost=run_cost_inputs(manifest, profile, options),
            expert_estimate=options.expert_estimate,
            profile=choice,
            num_gpus_known=num_gpus is not None,
            server_scrapes=run.iter_server_metrics() if run.has_server_metrics else None,
            capbench_version=__version__,
        )
    finally:
        if pending is not None:
            pending.close()


@contextlib.contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a run is scored (restored after, even on error).

    Decoding millions of JSON records allocates millions of small containers (dicts, lists), none in a reference
    cycle; each allocation burst triggers collections that walk every live container, which made scoring time
    grow faster than the run. Reference counting frees every record as soon as its chunk is consumed either way.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def score_run_dir(
    run_dir: Path, options: ScoreOptions | None = None, write: bool = True, request_scan: RequestScan | None = None
) -> dict[str, Any]:
    """Score ``run_dir`` and (by default) rewrite its ``summary.json``; a directory that cannot take it is a clear
    error pointing to ``--no-write`` (the summary is computed either way). ``request_scan``: as for
    :func:`score_loaded_run`."""
    with _no_cyclic_gc(), heap_kept():
        summary = score_loaded_run(open_run(Path(run_dir)), options, request_scan)
    if write:
        write_summary(Path(run_dir), summary)
    return summary


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    """Write ``summary.json`` of ``run_dir`` atomically; a directory that cannot take it is a clear error pointing
    to ``--no-write``."""
    path = run_dir / SUMMARY_FILE
    try:
        write_json_atomic(path, summary)
    except OSError as exc:
        raise CapbenchError(
            f"cannot write {path}: {exc.strerror or exc}; score with --no-write to see the summary without writing it"
        ) from exc
