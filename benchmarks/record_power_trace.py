"""Record a real GPU power trace under a matmul load, for replay tests and demos.

On a machine with an NVIDIA GPU, samples one GPU through the NVML sensor while it idles, runs dense torch
matmuls, and idles again, then writes

    <out-dir>/<gpu>.jsonl       the samples in power.jsonl format (t_ns rebased: the first sample is at 0)
    <out-dir>/<gpu>.meta.json   the device (as NVML reports it), the matched profile, the phase boundaries
                                (same rebased clock), the load, the sampling rate achieved, versions

where <gpu> is the NVML name as a slug (``nvidia-h100-80gb-hbm3``). ``ReplaySensor(<gpu>.jsonl)`` replays it
with its devices from the sidecar. Without an NVIDIA GPU (or without CUDA in torch) it says why and exits
with status 0, writing nothing.

    python benchmarks/record_power_trace.py [--gpu 0] [--rate-hz 20] [--idle-s 1] [--load-s 4] \
        [--size 8192] [--dtype bfloat16] [--out-dir tests/data/power]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def slug(name: str) -> str:
    """``"NVIDIA H100 80GB HBM3"`` -> ``"nvidia-h100-80gb-hbm3"``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "gpu"


def _norm_uuid(uuid: object) -> str:
    text = str(uuid).lower()
    return text[4:] if text.startswith("gpu-") else text


def _cuda_index(torch: Any, uuid: str | None) -> int:
    """The torch CUDA ordinal of the GPU with this NVML UUID (0 when torch cannot tell)."""
    if uuid:
        for i in range(torch.cuda.device_count()):
            if _norm_uuid(getattr(torch.cuda.get_device_properties(i), "uuid", "")) == _norm_uuid(uuid):
                return i
    return 0


def _wait(seconds: float, sensor: Any) -> None:
    """Idle for ``seconds``, draining the sensor on this thread."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(min(0.05, max(0.0, end - time.monotonic())))
        sensor.drain()


def _matmul_load(torch: Any, device: str, size: int, dtype: Any, seconds: float, sensor: Any) -> dict[str, Any]:
    """Dense ``size``-square matmuls for ``seconds``; one sync per batch of 8, draining the sensor between."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    torch.cuda.synchronize(device)
    iterations = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(8):
            torch.matmul(a, b)
        torch.cuda.synchronize(device)
        iterations += 8
        sensor.drain()
    elapsed = time.perf_counter() - start
    return {
        "kind": "matmul",
        "size": size,
        "dtype": str(dtype).removeprefix("torch."),
        "iterations": iterations,
        "seconds": elapsed,
        "tflop_per_s": 2.0 * size**3 * iterations / elapsed / 1e12,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", type=int, default=None, help="NVML index (default: the first selected GPU)")
    parser.add_argument("--rate-hz", type=float, default=20.0)
    parser.add_argument("--idle-s", type=float, default=1.0, help="idle before and after the load")
    parser.add_argument("--load-s", type=float, default=4.0)
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--out-dir", type=Path, default=REPO / "tests" / "data" / "power")
    args = parser.parse_args(argv)

    from capbench import __version__
    from capbench.clock import now_ns, utc_now_iso
    from capbench.errors import CapbenchError
    from capbench.hardware.gpus import describe_gpus
    from capbench.records import JsonlAppender, write_json_atomic
    from capbench.telemetry import SensorUnavailableError, open_power_sensor

    try:
        sensor = open_power_sensor("nvml", None if args.gpu is None else [args.gpu], args.rate_hz)
    except SensorUnavailableError as exc:
        print(f"no NVIDIA GPU to record: {exc.reason}")
        return 0
    except CapbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with sensor:
        device = sensor.devices()[0]
        try:
            import torch
        except ImportError:
            print("no NVIDIA GPU to record: torch is not installed (pip install 'capbench[hf]')")
            return 0
        if not torch.cuda.is_available():
            print("no NVIDIA GPU to record: this torch build has no CUDA (or sees no GPU)")
            return 0
        dtype = getattr(torch, args.dtype, None)
        if not isinstance(dtype, torch.dtype):
            print(f"error: unknown torch dtype {args.dtype!r}", file=sys.stderr)
            return 2
        cuda = f"cuda:{_cuda_index(torch, device.uuid)}"
        print(f"recording GPU {device.index} ({device.name}, {cuda}) at {args.rate_hz:g} Hz")

        samples: list[dict[str, Any]] = []
        sensor.start(samples.append)
        t_start = now_ns()
        _wait(args.idle_s, sensor)
        t_load_start = now_ns()
        load = _matmul_load(torch, cuda, args.size, dtype, args.load_s, sensor)
        t_load_end = now_ns()
        _wait(args.idle_s, sensor)
        sensor.stop()
        t_end = now_ns()
        info = sensor.info()
        profiles = {d["index"]: d["profile"] for d in describe_gpus(sensor.devices())}

    trace = [r for r in samples if r["gpu"] == device.index]
    if len(trace) < 2:
        print(f"error: only {len(trace)} sample(s) recorded; nothing written", file=sys.stderr)
        return 1
    t0 = trace[0]["t_ns"]
    name = slug(device.name)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    trace_path = args.out_dir / f"{name}.jsonl"
    trace_path.unlink(missing_ok=True)
    appender = JsonlAppender(trace_path)
    for record in trace:
        appender.append({**record, "t_ns": record["t_ns"] - t0})
    appender.close()
    meta = {
        "format": "power.jsonl; t_ns rebased so that the first sample is at 0",
        "devices": [device.to_dict()],
        "profile": profiles.get(device.index),
        "phases_ns": {
            "start": t_start - t0,
            "load_start": t_load_start - t0,
            "load_end": t_load_end - t0,
            "end": t_end - t0,
        },
        "load": load,
        "sensor": {k: info[k] for k in ("rate_hz", "period_s_target", "period_s_measured", "period_s_max")}
        | {k: info[k] for k in ("rounds", "missed_ticks", "read_errors", "notes")},
        "recorded_utc": utc_now_iso(),
        "capbench_version": __version__,
        "torch_version": torch.__version__,
        "torch_cuda": torch.version.cuda,
    }
    write_json_atomic(trace_path.with_suffix(".meta.json"), meta)
    powers = [r["power_w"] for r in trace if r.get("power_w") is not None]
    power_range = f"power {min(powers):.0f}-{max(powers):.0f} W, " if powers else ""
    print(
        f"wrote {trace_path} ({len(trace)} samples, {power_range}load {load['tflop_per_s']:.0f} TFLOP/s) "
        f"and {trace_path.with_suffix('.meta.json').name}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
