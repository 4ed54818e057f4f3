"""GPU energy over the measurement window, per token, per request and per phase (docs/metrics.md §4).

Per GPU g, from its ``power.jsonl`` samples (t_ns, power_w, optional cumulative energy_j), a cumulative
energy function C_g(t) in joules:

- ``counter``: when every sample of the GPU carries ``energy_j`` and the readings never decrease,
  C_g(t) interpolates the counter linearly between readings, so E_g[a, b] = C_g(b) − C_g(a) is the counter
  difference (exact at sample times);
- ``sampled``: otherwise, from ``power_w`` with power linear between samples (the trapezoid rule), so
  E_g[a, b] = ∫_a^b P_g(t) dt, exactly Σ ½·(P_j + P_{j+1})·(t_{j+1} − t_j) between samples.

C_g is constant outside the GPU's first and last sample: nothing is extrapolated; the fraction of the window
the samples cover is reported (``coverage_fraction``, the smallest over GPUs). Energy over the window
[a, b] is Σ_g E_g[a, b] (J). Per phase, every timed pass p gets Σ_g E_g[t_start_p, t_end_p] (its interval
clipped to the window) and phases sum their passes; ``unattributed_energy_j`` is the window energy no pass
interval covers (scheduling gaps, idle time). Passes of one engine are sequential; if pass intervals
overlap (several engines), attribution would double count, so it is not reported. No usable samples: every
figure ``None`` and ``energy_source`` ``none``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from capbench.metrics.phases import PHASE_NAMES
from capbench.metrics.stats import ratio_or_none, sum_of_parts
from capbench.records.power_columns import PowerColumns, power_columns

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
J_PER_KWH = 3.6e6

PassIntervals = tuple[NDArray[np.int8], IntArray, IntArray, NDArray[np.bool_], IntArray]
"""(phase, t_start_ns, t_end_ns, timed, tokens) of consecutive scored passes, in file order."""
PassSlices = Callable[[], Iterator[PassIntervals]]
"""A restartable source of :data:`PassIntervals` slices covering every scored pass once, in file order."""


@dataclass(frozen=True)
class EnergyTrace:
    """One GPU's cumulative energy C(t): samples at ``t_ns`` (ascending, distinct), C at each in J."""

    gpu: int
    source: str  # "counter" | "sampled"
    t_ns: IntArray
    cumulative_j: FloatArray
    power_w: FloatArray  # used between samples in "sampled" mode

    def energy_at(self, t_ns: IntArray | int) -> FloatArray:
        """C(t) in joules at the given times (ns), constant before the first and after the last sample."""
        t0 = int(self.t_ns[0])
        grid = (self.t_ns - t0) / 1e9
        x = np.clip((np.asarray(t_ns, dtype=np.int64) - t0) / 1e9, 0.0, grid[-1])
        j = np.clip(np.searchsorted(grid, x, side="right") - 1, 0, grid.size - 2)
        dx = x - grid[j]
        dt = grid[j + 1] - grid[j]
        c = self.cumulative_j
        if self.source == "counter":
            return c[j] + (c[j + 1] - c[j]) * dx / dt
        p = self.power_w
        return c[j] + p[j] * dx + (p[j + 1] - p[j]) * dx * dx / (2.0 * dt)

    def energy_between(self, start_ns: IntArray | int, end_ns: IntArray | int) -> FloatArray:
        """E[start, end] = C(end) − C(start), J."""
        return self.energy_at(end_ns) - self.energy_at(start_ns)

    def overlap_s(self, start_ns: int, end_ns: int) -> float:
        """Seconds of [start, end] that lie between the first and last sample."""
        lo = max(start_ns, int(self.t_ns[0]))
        hi = min(end_ns, int(self.t_ns[-1]))
        return max(0, hi - lo) / 1e9


def build_traces(power: Iterable[Mapping[str, Any]] | PowerColumns) -> tuple[list[EnergyTrace], list[str]]:
    """Group power samples by GPU and build each GPU's :class:`EnergyTrace`; notes for GPUs left out."""
    columns = power if isinstance(power, PowerColumns) else power_columns(power)
    traces: list[EnergyTrace] = []
    notes: list[str] = []
    for gpu in np.unique(columns.gpu).tolist():
        rows = np.flatnonzero(columns.gpu == gpu)
        rows = rows[np.argsort(columns.t_ns[rows], kind="stable")]
        t_ns, first = np.unique(columns.t_ns[rows], return_index=True)  # a repeated timestamp keeps its first sample
        rows = rows[first]
        if rows.size < 2:
            notes.append(f"GPU {gpu} has fewer than 2 power samples; its energy is not measured")
            continue
        if columns.has_energy[rows].all():
            energy = columns.energy_j[rows]
            if np.all(np.diff(energy) >= 0):
                power_w = np.where(columns.has_power[rows], columns.power_w[rows], np.nan)
                traces.append(EnergyTrace(gpu, "counter", t_ns, energy - energy[0], power_w))
                continue
            notes.append(f"GPU {gpu}'s energy counter decreases (reset?); using sampled power instead")
        if not columns.has_power[rows].all():
            notes.append(f"GPU {gpu} has samples without power_w or energy_j; its energy is not measured")
            continue
        power_w = columns.power_w[rows]
        dt = np.diff((t_ns - t_ns[0]) / 1e9)
        cumulative = np.concatenate([[0.0], np.cumsum(0.5 * (power_w[1:] + power_w[:-1]) * dt)])
        traces.append(EnergyTrace(gpu, "sampled", t_ns, cumulative, power_w))
    return traces, notes


def energy_summary(
    power: Iterable[Mapping[str, Any]] | PowerColumns,
    *,
    window_ns: tuple[int, int] | None,
    window_source: str | None,
    output_tokens: int | None,
    completed_requests: int | None,
    passes: PassIntervals | PassSlices | None = None,
    num_gpus: int | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Energy figures of a run (formulas in the module docstring), and notes explaining what is missing.

    ``window_ns``: the measurement window [a, b] on the run's clock; ``None`` uses the span of the samples.
    ``passes``: (phase, t_start_ns, t_end_ns, timed, tokens) per scored pass, for the per-phase split: whole
    arrays, or a source of slices of them (bounded memory, :data:`PassSlices`).
    ``num_gpus``: GPUs the deployment used, to flag GPUs that have no samples.
    """
    traces, notes = build_traces(power)
    out: dict[str, Any] = {
        "energy_source": "none",
        "gpus": [],
        "sampling_period_s": None,
        "window_source": None,
        "window_s": None,
        "coverage_fraction": None,
        "energy_j": None,
        "energy_kwh": None,
        "mean_power_w": None,
        "energy_per_output_token_j": None,
        "energy_per_request_j": None,
        "phase_attribution": "time_overlap",
        "phase_energy_j": None,
        "phase_energy_per_token_j": None,
        "unattributed_energy_j": None,
        "null_reason": None,
    }
    if not traces:
        out["null_reason"] = "no usable power samples (no GPU sensor, or power.jsonl absent)"
        return out, notes
    sources = {trace.source for trace in traces}
    out["energy_source"] = sources.pop() if len(sources) == 1 else "mixed"
    gaps = np.concatenate([np.diff(trace.t_ns) for trace in traces]) / 1e9
    out["sampling_period_s"] = float(np.median(gaps))
    if window_ns is None:
        window_ns = (min(int(tr.t_ns[0]) for tr in traces), max(int(tr.t_ns[-1]) for tr in traces))
        window_source = "power_samples"
    start, end = window_ns
    window_s = (end - start) / 1e9
    out["window_source"] = window_source
    out["window_s"] = window_s
    if window_s <= 0:
        out["null_reason"] = "the measurement window has no duration"
        return out, notes
    energies = [float(trace.energy_between(start, end)) for trace in traces]
    overlaps = [trace.overlap_s(start, end) for trace in traces]
    out["gpus"] = [
        {"gpu": tr.gpu, "source": tr.source, "samples": int(tr.t_ns.size), "energy_j": e, "covered_s": o}
        for tr, e, o in zip(traces, energies, overlaps, strict=True)
    ]
    coverage = min(overlaps) / window_s
    out["coverage_fraction"] = coverage
    if not any(o > 0 for o in overlaps):
        out["energy_source"] = "none"
        out["null_reason"] = (
            "no power sample falls within the measurement window (the sensor ran at other times): "
            "energy was not measured"
        )
        return out, notes
    if coverage < 1.0:
        notes.append(
            f"power samples cover only {coverage:.1%} of the measurement window on some GPU; energy is for "
            "the covered part only (nothing is extrapolated), so per-token energy is a lower bound"
        )
    if num_gpus is not None and len(traces) < num_gpus:
        out["energy_source"] = "none"
        out["null_reason"] = (
            f"usable power samples for only {len(traces)} of the deployment's {num_gpus} GPUs: the energy of the "
            "others was not measured, so the total is unknown (never a partial sum)"
        )
        return out, notes
    energy_j = float(sum(energies))
    out["energy_j"] = energy_j
    out["energy_kwh"] = energy_j / J_PER_KWH
    out["mean_power_w"] = float(sum(e / o for e, o in zip(energies, overlaps, strict=True) if o > 0))
    out["energy_per_output_token_j"] = ratio_or_none(energy_j, output_tokens)
    out["energy_per_request_j"] = ratio_or_none(energy_j, completed_requests)
    if passes is not None:
        _attribute_phases(out, notes, traces, passes, start, end)
    return out, notes


def _attribute_phases(
    out: dict[str, Any],
    notes: list[str],
    traces: list[EnergyTrace],
    passes: PassIntervals | PassSlices,
    start: int,
    end: int,
) -> None:
    """Per-phase energy of the passes (module docstring), reading them slice by slice.

    Overlap: with the passes sorted by start (stable), a pass overlaps when it starts before the latest end so
    far. Passes already in start order (one engine writes them so) are checked as they stream; out of order,
    they are read again and their starts and ends sorted at once (16 bytes a pass).
    """
    source: PassSlices = passes if callable(passes) else (lambda: iter([passes]))
    check = _OverlapCheck()
    energy_parts: dict[int, list[float]] = {}
    token_totals: dict[int, int] = {}
    total_parts: list[float] = []
    count = 0
    for phase, t_start, t_end, timed, tokens in source():
        count += int(phase.size)
        if not phase.size:
            continue
        if not timed.all():
            notes.append("some passes give only latency_s, not t_start_ns/t_end_ns: energy is not split by phase")
            return
        check.add(t_start, t_end)
        lo = np.clip(t_start, start, end)
        hi = np.clip(t_end, start, end)
        per_pass = np.zeros(phase.size, dtype=np.float64)
        for trace in traces:
            per_pass += trace.energy_between(lo, hi)
        for code in range(len(PHASE_NAMES)):
            sel = phase == code
            if sel.any():
                energy_parts.setdefault(code, []).append(float(per_pass[sel].sum()))
                token_totals[code] = token_totals.get(code, 0) + int(tokens[sel].sum())
        total_parts.append(float(per_pass.sum()))
    if not count:
        return
    if check.overlap if check.in_order else _overlap_sorted(source):
        notes.append("pass intervals overlap (several engines?): energy is not split by phase")
        return
    by_phase: dict[str, float] = {}
    per_token: dict[str, float | None] = {}
    for code, name in enumerate(PHASE_NAMES):
        if code in energy_parts:
            by_phase[name] = sum_of_parts(energy_parts[code])
            per_token[name] = ratio_or_none(by_phase[name], token_totals[code])
    out["phase_energy_j"] = by_phase
    out["phase_energy_per_token_j"] = per_token
    out["unattributed_energy_j"] = float(out["energy_j"]) - sum_of_parts(total_parts)


class _OverlapCheck:
    """Whether pass intervals fed in file order, a slice at a time, overlap: each starts no earlier than the one
    before and no earlier than the latest end so far. ``in_order`` turns false when a start goes back in time;
    the check then needs all the passes sorted (:func:`_overlap_sorted`)."""

    def __init__(self) -> None:
        self.in_order = True
        self.overlap = False
        self._last_start: int | None = None
        self._latest_end: int | None = None

    def add(self, t_start: IntArray, t_end: IntArray) -> None:
        if not self.in_order or not t_start.size:
            return
        if (self._last_start is not None and t_start[0] < self._last_start) or (np.diff(t_start) < 0).any():
            self.in_order = False
            return
        ends = np.maximum.accumulate(t_end)
        if self._latest_end is not None:
            self.overlap |= bool(t_start[0] < self._latest_end)
            ends = np.maximum(ends, self._latest_end)
        self.overlap |= bool((t_start[1:] < ends[:-1]).any())
        self._last_start, self._latest_end = int(t_start[-1]), int(ends[-1])


def _overlap_sorted(source: PassSlices) -> bool:
    """The overlap check over every pass at once, sorted by start (stable): the passes were out of order."""
    starts, ends = zip(*((t_start, t_end) for _, t_start, t_end, _, _ in source()), strict=True)
    t_start, t_end = np.concatenate(starts), np.concatenate(ends)
    order = np.argsort(t_start, kind="stable")
    return bool((t_start[order][1:] < np.maximum.accumulate(t_end[order])[:-1]).any())
