"""Measure this machine's achievable memory bandwidth and matmul FLOP/s, as a ``measured: true`` profile.

Memory bandwidth (bytes/s), two kernels on a float32 buffer of B bytes, far larger than the last-level cache:
    copy: ``dst.copy_(src)`` moves 2·B bytes (B read + B written)  -> 2·B / t
    read: ``src.sum()``      moves   B bytes (B read)               ->   B / t
Each kernel is timed ``repeats`` times and the fastest run (best of repeats) is kept; the profile's
``memory_bandwidth_bytes_per_s`` is the larger of the two, both are written to ``notes``.

Matmul FLOP/s: C = A·B with square n×n operands costs 2·n³ FLOPs (n³ multiply-adds). After warm-up runs,
each timed repeat runs ``inner`` matmuls (CUDA: synchronise before reading the clock at both ends), and the
fastest repeat gives 2·n³·inner / t. n is large enough to be compute bound (arithmetic intensity ~n/6 FLOP
per byte). CPU: fp32, plus bf16/fp16 where the CPU has a native path (feature flag present and a small
trial at >= 1/4 of the fp32 trial rate); an emulated dtype would take minutes and say little.
CUDA: fp32 with TF32 off (the non-tensor rate), tf32, bf16, fp16. torch runs with its default thread
settings, as the runners do.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from capbench.errors import CapbenchError
from capbench.hardware.machine import (
    MachineIdentity,
    cpu_flags,
    host_memory_bytes,
    last_level_cache_bytes,
    machine_identity,
)
from capbench.hardware.profile import PEAK_PREFIX, HardwareProfile
from capbench.hardware.registry import load_profile_file, save_profile_file

#: Bumped whenever the measurement method changes; a cached probe of another version is measured again.
PROBE_METHOD_VERSION = 1
_MIB = 1024**2


@dataclass(frozen=True)
class ProbeSettings:
    """Sizes and repeat counts of one probe run."""

    buffer_bytes: int
    bandwidth_repeats: int
    matmul_n: int
    matmul_warmup: int
    matmul_repeats: int
    matmul_inner: int


SETTINGS: dict[tuple[str, bool], ProbeSettings] = {
    ("cpu", False): ProbeSettings(1024 * _MIB, 15, 2048, 2, 10, 1),
    ("cpu", True): ProbeSettings(256 * _MIB, 4, 1024, 1, 3, 1),
    ("cuda", False): ProbeSettings(2048 * _MIB, 20, 8192, 3, 10, 5),
    ("cuda", True): ProbeSettings(512 * _MIB, 10, 4096, 2, 5, 5),
}
_CPU_TRIAL_N = 256
_USEFUL_FRACTION = 0.25
#: CPU feature flags (x86 /proc/cpuinfo ``flags``, ARM ``Features``) that mean a native matmul path exists.
_CPU_NATIVE_FLAGS: dict[str, frozenset[str]] = {
    "bf16": frozenset({"avx512_bf16", "amx_bf16", "bf16"}),
    "fp16": frozenset({"avx512_fp16", "amx_fp16", "fphp", "asimdhp"}),
}


def _best_seconds(fn: Callable[[], object], repeats: int, sync: Callable[[], None]) -> float:
    best = math.inf
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def _sync_for(device: str) -> Callable[[], None]:
    import torch

    return torch.cuda.synchronize if device == "cuda" else (lambda: None)


def measure_memory_bandwidth(device: str, buffer_bytes: int, repeats: int) -> dict[str, float]:
    """``{"copy": 2·B/t_copy, "read": B/t_read}`` in bytes/s (best of ``repeats``), B = ``buffer_bytes``."""
    import torch

    elements = buffer_bytes // 4
    src = torch.ones(elements, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)  # first touch: page faults are not bandwidth
    src.sum()
    sync = _sync_for(device)
    moved = elements * 4
    copy_s = _best_seconds(lambda: dst.copy_(src), repeats, sync)
    read_s = _best_seconds(lambda: src.sum(), repeats, sync)
    return {"copy": 2 * moved / copy_s, "read": moved / read_s}


def measure_matmul_flops(device: str, dtype_key: str, n: int, warmup: int, repeats: int, inner: int) -> float:
    """Best achieved FLOP/s of an n×n by n×n matmul in ``dtype_key`` (fp32, tf32, bf16, fp16): 2·n³·inner / t."""
    import torch

    torch_dtype = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, generator=gen).to(torch_dtype[dtype_key])
    b = torch.randn(n, n, device=device, generator=gen).to(torch_dtype[dtype_key])
    out = torch.empty_like(a)
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high" if dtype_key == "tf32" else "highest")
    try:

        def run() -> None:
            for _ in range(inner):
                torch.matmul(a, b, out=out)

        for _ in range(warmup):
            run()
        seconds = _best_seconds(run, repeats, _sync_for(device))
    finally:
        torch.set_float32_matmul_precision(previous)
    return 2.0 * n**3 * inner / seconds


def _cpu_dtypes(notes: list[str]) -> list[str]:
    """fp32, plus bf16/fp16 when the CPU flags show native support AND a small trial runs at >= 1/4 of fp32.

    Both tests are needed: without native support torch emulates the dtype at a few GFLOP/s or less (minutes
    per large matmul), and a small trial alone can pass on a fallback path that collapses at full size.
    """
    flags = cpu_flags()
    candidates = [k for k in ("bf16", "fp16") if flags & _CPU_NATIVE_FLAGS[k]]
    for key in ("bf16", "fp16"):
        if key not in candidates:
            wanted = " or ".join(sorted(_CPU_NATIVE_FLAGS[key]))
            notes.append(f"{key} not measured: no CPU flag {wanted} (no native {key} matmul).")
    if not candidates:
        return ["fp32"]
    trial = {k: measure_matmul_flops("cpu", k, _CPU_TRIAL_N, 1, 2, 1) for k in ("fp32", *candidates)}
    chosen = ["fp32"]
    for key in candidates:
        if trial[key] >= _USEFUL_FRACTION * trial["fp32"]:
            chosen.append(key)
        else:
            notes.append(
                f"{key} not measured: a {_CPU_TRIAL_N}^3 trial ran at {trial[key]:.3g} FLOP/s vs fp32 "
                f"{trial['fp32']:.3g}."
            )
    return chosen


def probe_id(identity: MachineIdentity, quick: bool) -> str:
    """``probe-<device>-<identity hash>`` (``-quick`` appended for quick probes)."""
    return f"probe-{identity.device}-{identity.key}" + ("-quick" if quick else "")


def probe(device: str = "cpu", quick: bool = False) -> HardwareProfile:
    """Measure ``device`` (``"cpu"`` or ``"cuda"``) and return a ``measured: true`` profile (see module doc)."""
    import torch

    identity = machine_identity(device)
    settings = SETTINGS[(device, quick)]
    started = time.perf_counter()
    notes: list[str] = []
    bandwidth = measure_memory_bandwidth(device, settings.buffer_bytes, settings.bandwidth_repeats)
    dtypes = _cpu_dtypes(notes) if device == "cpu" else ["fp32", "tf32", "bf16", "fp16"]
    s = settings
    peaks = {
        key: measure_matmul_flops(device, key, s.matmul_n, s.matmul_warmup, s.matmul_repeats, s.matmul_inner)
        for key in dtypes
    }
    wall_s = time.perf_counter() - started
    today = dt.datetime.now(dt.UTC).date().isoformat()
    stamp = f"capbench probe v{PROBE_METHOD_VERSION} on {today} ({'quick' if quick else 'full'})"
    buffer_mib = s.buffer_bytes // _MIB
    bw_source = f"{stamp}: best of {s.bandwidth_repeats} of max(copy 2·B/t, read-sum B/t), B = {buffer_mib} MiB"
    mm_source = f"{stamp}: best of {s.matmul_repeats}×{s.matmul_inner} n={s.matmul_n} matmuls, 2·n³/t"
    if device == "cuda":
        memory_bytes = int(torch.cuda.get_device_properties(0).total_memory)
        memory_source = "torch.cuda.get_device_properties(0).total_memory"
        runtime = identity.accelerator_runtime
    else:
        memory_bytes, memory_source, runtime = host_memory_bytes(), "/proc/meminfo MemTotal", "cpu"
    llc = last_level_cache_bytes()
    notes[:0] = [
        f"Measured on {identity.device_name} ({identity.logical_cpus} logical CPUs, "
        f"torch {identity.torch_version}, {runtime}, {torch.get_num_threads()} torch threads).",
        f"Bandwidth: copy {bandwidth['copy']:.4g} B/s, read {bandwidth['read']:.4g} B/s; buffer {buffer_mib} MiB"
        + (f", last-level cache {llc // _MIB} MiB." if llc else "."),
        f"Probe wall time {wall_s:.2f} s. Achieved rates, not datasheet peaks; TDP and prices are unknown.",
    ]
    return HardwareProfile(
        id=probe_id(identity, quick),
        name=f"{identity.device_name} (measured)",
        vendor=identity.vendor,
        aliases=(identity.device_name,),
        memory_bytes=memory_bytes,
        memory_bandwidth_bytes_per_s=max(bandwidth.values()),
        peak_flops_per_s=peaks,
        tdp_w=None,
        purchase_usd=None,
        rental_usd_per_gpu_hour=None,
        sources={
            "memory_bytes": memory_source,
            "memory_bandwidth_bytes_per_s": bw_source,
            **{PEAK_PREFIX + key: mm_source for key in peaks},
        },
        measured=True,
        version=PROBE_METHOD_VERSION,
        notes=" ".join(notes),
    )


def default_cache_dir() -> Path:
    """``$CAPBENCH_CACHE_DIR/profiles`` when the variable is set, else ``~/.cache/capbench/profiles``."""
    base = os.environ.get("CAPBENCH_CACHE_DIR")
    return (Path(base).expanduser() if base else Path.home() / ".cache" / "capbench") / "profiles"


def cached_probe_profile(
    device: str = "cpu",
    refresh: bool = False,
    cache_dir: str | Path | None = None,
    quick: bool = False,
    on_measure: Callable[[], None] | None = None,
) -> HardwareProfile:
    """Probe once per machine identity and reuse the cached YAML afterwards (``refresh=True`` re-measures).
    ``on_measure`` is called just before a measurement (not when the cached profile is used)."""
    wanted = probe_id(machine_identity(device), quick)
    path = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    file = path / f"{wanted}.yaml"
    if not refresh and file.exists():
        try:
            cached = load_profile_file(file)
        except CapbenchError as exc:
            warnings.warn(f"ignoring unreadable cached probe {file}: {exc}", stacklevel=2)
        else:
            if cached.id == wanted and cached.measured and cached.version == PROBE_METHOD_VERSION:
                return cached
    if on_measure is not None:
        on_measure()
    profile = probe(device=device, quick=quick)
    save_profile_file(profile, file)
    return profile
