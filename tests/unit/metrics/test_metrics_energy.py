"""Energy by counter and by trapezoid, per-phase attribution by time overlap, no samples → None."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from capbench.metrics.energy import energy_summary
from capbench.metrics.phases import DECODE, PREFILL

S = 1_000_000_000


def samples(gpu: int, times_s: list[float], power_w: list[float], energy_j: list[float] | None = None) -> list[dict]:
    out = []
    for i, (t, p) in enumerate(zip(times_s, power_w, strict=True)):
        rec: dict[str, Any] = {"t_ns": int(t * S), "gpu": gpu, "power_w": p}
        if energy_j is not None:
            rec["energy_j"] = energy_j[i]
        out.append(rec)
    return out


def summary(power: list[dict], window: tuple[float, float] | None, **kw: Any) -> dict[str, Any]:
    out, _notes = energy_summary(
        power,
        window_ns=None if window is None else (int(window[0] * S), int(window[1] * S)),
        window_source="requests",
        output_tokens=kw.pop("output_tokens", None),
        completed_requests=kw.pop("completed_requests", None),
        **kw,
    )
    return out


def test_counter_difference() -> None:
    # Counter 100, 150, 250, 300 J at 0, 1, 2, 3 s. Window [0.5, 2.5]: linear between readings,
    # C(0.5) = 125, C(2.5) = 275 → 150 J. (Power figures are ignored when the counter exists.)
    power = samples(0, [0, 1, 2, 3], [999, 999, 999, 999], [100, 150, 250, 300])
    out = summary(power, (0.5, 2.5), output_tokens=30, completed_requests=3)
    assert out["energy_source"] == "counter"
    assert out["energy_j"] == pytest.approx(150.0)
    assert out["energy_per_output_token_j"] == pytest.approx(5.0)
    assert out["energy_per_request_j"] == pytest.approx(50.0)
    assert out["mean_power_w"] == pytest.approx(75.0)  # 150 J over 2 s
    assert out["sampling_period_s"] == pytest.approx(1.0)
    assert out["coverage_fraction"] == pytest.approx(1.0)
    assert out["energy_kwh"] == pytest.approx(150 / 3.6e6)


def test_trapezoid_two_gpus() -> None:
    # GPU 0: 100, 200, 200, 100 W at 0..3 s → ½(100+200) + 200 + ½(200+100) = 150 + 200 + 150 = 500 J.
    # GPU 1: constant 50 W → 150 J. Total 650 J.
    power = samples(0, [0, 1, 2, 3], [100, 200, 200, 100]) + samples(1, [0, 1.5, 3], [50, 50, 50])
    out = summary(power, (0.0, 3.0))
    assert out["energy_source"] == "sampled"
    assert out["energy_j"] == pytest.approx(650.0)
    assert [g["energy_j"] for g in out["gpus"]] == pytest.approx([500.0, 150.0])
    assert out["sampling_period_s"] == pytest.approx(1.0)  # median of gaps 1, 1, 1, 1.5, 1.5


def test_trapezoid_partial_window_interpolates_power() -> None:
    # Window [0.5, 2.5] on GPU 0 above: P(0.5) = 150 W → ½(150+200)·0.5 + 200 + ½(200+150)·0.5 = 375 J.
    out = summary(samples(0, [0, 1, 2, 3], [100, 200, 200, 100]), (0.5, 2.5))
    assert out["energy_j"] == pytest.approx(375.0)


def test_phase_attribution_by_overlap() -> None:
    # Passes: prefill [0, 1] s, decode [1, 2] s and [2.5, 3] s on GPU 0 of the trapezoid test.
    # prefill = 150 J; decode = 200 + ½(150+100)·0.5 = 262.5 J; unattributed = 500 − 412.5 = 87.5 J ([2, 2.5]).
    phase = np.array([PREFILL, DECODE, DECODE], dtype=np.int8)
    t_start = np.array([0, 1 * S, int(2.5 * S)], dtype=np.int64)
    t_end = np.array([1 * S, 2 * S, 3 * S], dtype=np.int64)
    timed = np.ones(3, dtype=np.bool_)
    tokens = np.array([100, 4, 2], dtype=np.int64)
    out = summary(
        samples(0, [0, 1, 2, 3], [100, 200, 200, 100]), (0.0, 3.0), passes=(phase, t_start, t_end, timed, tokens)
    )
    assert out["phase_energy_j"] == pytest.approx({"prefill": 150.0, "decode": 262.5})
    assert out["unattributed_energy_j"] == pytest.approx(87.5)
    assert out["phase_energy_per_token_j"] == pytest.approx({"prefill": 1.5, "decode": 262.5 / 6})


def test_untimed_passes_are_not_attributed() -> None:
    passes = (np.array([DECODE], dtype=np.int8), np.array([0]), np.array([0]), np.array([False]), np.array([1]))
    out, notes = energy_summary(
        samples(0, [0, 1], [10, 10]),
        window_ns=None,
        window_source=None,
        output_tokens=None,
        completed_requests=None,
        passes=passes,
    )
    assert out["phase_energy_j"] is None
    assert any("not split by phase" in n for n in notes)
    assert out["window_source"] == "power_samples" and out["energy_j"] == pytest.approx(10.0)


def test_no_samples_is_none_not_zero() -> None:
    out = summary([], (0.0, 1.0), output_tokens=10, completed_requests=1)
    assert out["energy_source"] == "none"
    for key in (
        "energy_j",
        "energy_kwh",
        "mean_power_w",
        "energy_per_output_token_j",
        "energy_per_request_j",
        "sampling_period_s",
        "phase_energy_j",
    ):
        assert out[key] is None, key
    assert out["null_reason"]


def test_partial_coverage_is_reported_not_extrapolated() -> None:
    # Samples cover [1, 3] s of the [0, 4] s window: 50 W · 2 s = 100 J, coverage 0.5.
    out, notes = energy_summary(
        samples(0, [1, 2, 3], [50, 50, 50]),
        window_ns=(0, 4 * S),
        window_source="requests",
        output_tokens=None,
        completed_requests=None,
    )
    assert out["energy_j"] == pytest.approx(100.0)
    assert out["coverage_fraction"] == pytest.approx(0.5)
    assert out["mean_power_w"] == pytest.approx(50.0)
    assert any("cover only 50.0%" in n for n in notes)


def test_decreasing_counter_falls_back_to_power() -> None:
    power = samples(0, [0, 1, 2], [10, 10, 10], [5.0, 3.0, 9.0])
    out, notes = energy_summary(
        power, window_ns=(0, 2 * S), window_source="requests", output_tokens=None, completed_requests=None
    )
    assert out["energy_source"] == "sampled" and out["energy_j"] == pytest.approx(20.0)
    assert any("decreases" in n for n in notes)


def test_a_gpu_without_samples_makes_the_total_unknown_not_smaller() -> None:
    """Two GPUs served the run, only one was sampled: the total is null with the reason, never GPU 0 alone."""
    power = samples(0, [0.0, 1.0, 2.0], [100.0, 100.0, 100.0])
    out = summary(power, (0.0, 2.0), num_gpus=2, output_tokens=10)
    assert out["energy_j"] is None and out["energy_per_output_token_j"] is None
    assert "only 1 of the deployment's 2 GPUs" in out["null_reason"]
    assert summary(power, (0.0, 2.0), num_gpus=1, output_tokens=10)["energy_j"] == pytest.approx(200.0)


def _passes(rng: np.random.Generator, n: int, *, overlap: bool, shuffle: bool) -> tuple[np.ndarray, ...]:
    """n back-to-back pass intervals over [0, 10 s] (gaps between them), optionally one overlapping, shuffled."""
    bounds = np.sort(rng.choice(np.arange(1, 10 * S, 1000), size=2 * n, replace=False)).reshape(n, 2)
    t_start, t_end = bounds[:, 0].copy(), bounds[:, 1].copy()
    if overlap:
        k = int(rng.integers(1, n))
        t_start[k] = t_end[k - 1] - 1
    phase = rng.integers(0, 3, n).astype(np.int8)
    tokens = rng.integers(1, 100, n)
    order = rng.permutation(n) if shuffle else np.arange(n)
    return phase[order], t_start[order], t_end[order], np.ones(n, dtype=np.bool_), tokens[order]


@pytest.mark.parametrize("overlap", [False, True])
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("slice_size", [1, 3, 50, 1000])
def test_phase_energy_from_slices_is_the_whole_arrays_split(overlap: bool, shuffle: bool, slice_size: int) -> None:
    """Passes given a slice at a time (the scorer's bounded-memory read) split the energy as the whole arrays do:
    the same overlap verdict whether the passes come in start order (checked as they stream) or not (sorted)."""
    rng = np.random.default_rng(slice_size + 10 * overlap + 100 * shuffle)
    whole = _passes(rng, 200, overlap=overlap, shuffle=shuffle)
    power = samples(0, [0.5 * i for i in range(21)], [100.0 + 10.0 * rng.random() for _ in range(21)])

    def slices() -> Any:
        for first in range(0, 200, slice_size):
            yield tuple(a[first : first + slice_size] for a in whole)

    kw: dict[str, Any] = {"output_tokens": 10}
    from_whole, whole_notes = energy_summary(
        power, window_ns=(S, 9 * S), window_source="requests", completed_requests=None, passes=whole, **kw
    )
    from_slices, slice_notes = energy_summary(
        power, window_ns=(S, 9 * S), window_source="requests", completed_requests=None, passes=slices, **kw
    )
    assert whole_notes == slice_notes
    keys = ("phase_energy_j", "phase_energy_per_token_j", "unattributed_energy_j")
    if overlap:
        assert all(from_whole[k] is None and from_slices[k] is None for k in keys)
        assert any("overlap" in note for note in slice_notes)
        return
    assert set(from_whole["phase_energy_j"]) == {"prefill", "decode", "mixed"}
    for key in keys:
        assert from_slices[key] == pytest.approx(from_whole[key], rel=1e-12), key
