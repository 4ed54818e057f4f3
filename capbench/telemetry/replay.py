"""A sensor that replays a recorded power trace (``power.jsonl`` format), for tests and demos.

The trace's timestamps are shifted onto the run clock when :meth:`~ReplaySensor.start` is called: a sample
recorded at ``t`` is delivered with ``t_ns = start + (t - t_first)``. With ``realtime=True`` (default) the
background thread releases each sample when that time comes, so the trace unfolds at its recorded pace;
with ``realtime=False`` every sample is released at once (timestamps still shifted, so they may lie in the
future). Power and energy values are replayed unchanged.

:meth:`~ReplaySensor.sample_now` (and the final sample :meth:`~ReplaySensor.stop` takes in real-time mode)
interpolates the trace linearly at the current time, per GPU, inside the trace's span; outside it there is
no sample. Devices come from the ``devices`` argument, else a sidecar ``<trace>.meta.json`` written by
``benchmarks/record_power_trace.py``, else a generic "replay GPU <i>" per GPU in the trace.
"""

from __future__ import annotations

import bisect
import json
import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from capbench.clock import now_ns
from capbench.errors import CapbenchError
from capbench.records import iter_jsonl
from capbench.telemetry.sensor import DEFAULT_MAX_BUFFERED, BufferedSensor, GpuDevice, PowerSample

META_SUFFIX = ".meta.json"


def meta_path(trace: Path) -> Path:
    """The sidecar metadata file of a trace: ``x.jsonl`` -> ``x.meta.json``."""
    return trace.with_suffix(META_SUFFIX)


def _number(value: Any, what: str, i: int) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CapbenchError(f"power trace record {i}: {what} must be a number or null, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise CapbenchError(f"power trace record {i}: {what} must be a finite number ≥ 0, got {value!r}")
    return float(value)


def parse_trace(records: Iterable[Mapping[str, Any]]) -> list[PowerSample]:
    """Validate power records into samples sorted by time (stable); a clear error names a bad record."""
    samples: list[PowerSample] = []
    for i, rec in enumerate(records):
        t_ns, gpu = rec.get("t_ns"), rec.get("gpu")
        if isinstance(t_ns, bool) or not isinstance(t_ns, int) or isinstance(gpu, bool) or not isinstance(gpu, int):
            raise CapbenchError(f"power trace record {i} needs integer 't_ns' and 'gpu': {dict(rec)!r}")
        power = _number(rec.get("power_w"), "power_w", i)
        energy = _number(rec.get("energy_j"), "energy_j", i)
        if power is None and energy is None:
            raise CapbenchError(f"power trace record {i} has neither power_w nor energy_j: {dict(rec)!r}")
        samples.append(PowerSample(t_ns, gpu, power, energy))
    if not samples:
        raise CapbenchError("the power trace holds no samples")
    samples.sort(key=lambda s: s.t_ns)
    return samples


def _devices_from_meta(path: Path) -> list[GpuDevice] | None:
    file = meta_path(path)
    if not file.is_file():
        return None
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        known = {f.name for f in fields(GpuDevice)}
        return [GpuDevice(**{k: v for k, v in d.items() if k in known}) for d in data["devices"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CapbenchError(f"cannot read the trace metadata {file}: {exc}") from exc


def _interpolate(a: PowerSample, b: PowerSample, t_ns: int) -> tuple[float | None, float | None]:
    f = (t_ns - a.t_ns) / (b.t_ns - a.t_ns)
    power = None if a.power_w is None or b.power_w is None else a.power_w + f * (b.power_w - a.power_w)
    energy = None if a.energy_j is None or b.energy_j is None else a.energy_j + f * (b.energy_j - a.energy_j)
    return power, energy


class ReplaySensor(BufferedSensor):
    """Replays ``trace`` (a ``power.jsonl`` path, or the records themselves) onto the run clock."""

    kind = "replay"

    def __init__(
        self,
        trace: str | Path | Iterable[Mapping[str, Any]],
        *,
        realtime: bool = True,
        devices: Sequence[GpuDevice] | None = None,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
    ) -> None:
        super().__init__(rate_hz=None, max_buffered=max_buffered)
        if isinstance(trace, str | Path):
            path = Path(trace)
            if not path.is_file():
                raise CapbenchError(f"power trace {path} does not exist")
            self.source: str = str(path)
            self._samples = parse_trace(iter_jsonl(path))
            if devices is None:
                devices = _devices_from_meta(path)
        else:
            self.source = "records"
            self._samples = parse_trace(trace)
        self.realtime = realtime
        self._t_first = self._samples[0].t_ns
        gpus = sorted({s.gpu for s in self._samples})
        self._by_gpu = {g: [s for s in self._samples if s.gpu == g] for g in gpus}
        self._times = {g: [s.t_ns for s in ss] for g, ss in self._by_gpu.items()}
        if devices is None:
            devices = [
                GpuDevice(
                    index=g,
                    name=f"replay GPU {g}",
                    power_supported=any(s.power_w is not None for s in self._by_gpu[g]),
                    energy_counter_supported=all(s.energy_j is not None for s in self._by_gpu[g]),
                )
                for g in gpus
            ]
        self._devices = [d for d in devices if d.index in self._by_gpu]
        self._offset_ns: int | None = None  # run-clock time minus trace time, set by start()

    def devices(self) -> list[GpuDevice]:
        return list(self._devices)

    @property
    def duration_s(self) -> float:
        """The trace's span, seconds."""
        return (self._samples[-1].t_ns - self._t_first) / 1e9

    def info(self) -> dict[str, Any]:
        return {**super().info(), "source": self.source, "realtime": self.realtime, "duration_s": self.duration_s}

    def _on_start(self) -> None:
        self._offset_ns = now_ns() - self._t_first

    def _shift(self, sample: PowerSample, offset: int) -> PowerSample:
        return PowerSample(sample.t_ns + offset, sample.gpu, sample.power_w, sample.energy_j)

    def _run(self, stop_event: threading.Event) -> None:
        offset = self._offset_ns
        assert offset is not None
        for sample in self._samples:
            due = sample.t_ns + offset
            if self.realtime:
                while (wait_ns := due - now_ns()) > 0:
                    if stop_event.wait(wait_ns / 1e9):
                        return
            elif stop_event.is_set():
                return
            self._emit([self._shift(sample, offset)])
            self._deliver_from_sampler()

    def _read_all(self) -> list[PowerSample]:
        """Each GPU's trace interpolated at now (nothing before start or outside the trace's span)."""
        if self._offset_ns is None:
            return []
        t_run = now_ns()
        t_trace = t_run - self._offset_ns
        out: list[PowerSample] = []
        for device in self._devices:
            times, samples = self._times[device.index], self._by_gpu[device.index]
            j = bisect.bisect_right(times, t_trace)
            if j == 0 or (j == len(times) and t_trace > times[-1]):
                continue
            a = samples[j - 1]
            if a.t_ns == t_trace or j == len(times):
                power, energy = a.power_w, a.energy_j
            else:
                power, energy = _interpolate(a, samples[j], t_trace)
            if power is not None or energy is not None:
                out.append(PowerSample(t_run, device.index, power, energy))
        return out

    def _final_samples(self) -> list[PowerSample]:
        return self._read_all() if self.realtime else []
