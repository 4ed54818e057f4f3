"""FloatColumn: exact distribution statistics in bounded memory.

Every statistic of a column that spilled to its temporary file (tiny thresholds and blocks here, so every path
runs: spill, pairwise-sum recursion, multi-pass radix selection, candidate collection, 64-bit-deep ties) must be
bit-for-bit what numpy gives on all the values in arrival order: ``describe`` (mean by numpy's pairwise sum,
``np.percentile`` linear p50/p90/p99, max), ``np.median`` and ``min``. Floats are compared by value and sign
(``==`` alone would let −0.0 pass for +0.0), never approximately.
"""

from __future__ import annotations

import functools
import math
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import capbench.metrics.latency as latency_module
from capbench.errors import CapbenchError
from capbench.metrics.latency import request_metrics
from capbench.metrics.stats import DEFAULT_BLOCK_VALUES, FloatColumn, describe

S = 1_000_000_000


def same(got: Any, want: Any) -> bool:
    """Equal, and for floats the same sign too (bit-for-bit for the finite values compared here)."""
    if isinstance(want, dict):
        return got.keys() == want.keys() and all(same(got[key], want[key]) for key in want)
    if isinstance(want, float):
        return isinstance(got, float) and got == want and math.copysign(1.0, got) == math.copysign(1.0, want)
    return bool(got == want) and type(got) is type(want)


def filled(values: np.ndarray, threshold: int, block: int, chunk: int) -> FloatColumn:
    column = FloatColumn(spill_threshold=threshold, block_values=block)
    for start in range(0, max(values.size, 1), max(chunk, 1)):
        column.extend(values[start : start + chunk])
    return column


def check(values: Sequence[float] | np.ndarray, threshold: int = 0, block: int = 8, chunk: int = 5) -> None:
    """The column's median, min and describe equal numpy's on the same values (describe last: it closes)."""
    a = np.array(values, dtype=np.float64)
    column = filled(a, threshold, block, chunk)
    assert len(column) == a.size
    assert column.spilled == (a.size > threshold)
    want_median = float(np.median(a)) if a.size else None
    want_min = float(a.min()) if a.size else None
    want = describe(a.copy())
    assert same(column.median(), want_median)
    assert same(column.min(), want_min)
    assert same(column.describe(), want)


def latency_like(rng: np.random.Generator, n: int) -> np.ndarray:
    """Seconds, lognormal around 50 ms, rounded to 10 µs so that many values tie."""
    return np.round(rng.lognormal(math.log(0.05), 1.0, n), 5)


# -- property tests ----------------------------------------------------------------------------------------

FINITE = st.floats(min_value=-1e300, max_value=1e300, allow_nan=False, allow_infinity=False).map(
    lambda x: x + 0.0  # −0.0 → +0.0 (the one tie whose order numpy leaves to its partition)
)
TIES = st.sampled_from([0.0, 1.0, -1.0, 0.05, 0.1, 0.2, 1e-9, 3.5e-3, -7.25])


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(st.one_of(FINITE, TIES), min_size=0, max_size=400),
    threshold=st.sampled_from([0, 1, 16]),
    block=st.sampled_from([1, 2, 8, 16, 100]),
    chunk=st.integers(min_value=1, max_value=50),
)
def test_spilled_column_is_numpy_bit_for_bit(values: list[float], threshold: int, block: int, chunk: int) -> None:
    check(values, threshold, block, chunk)


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    n=st.integers(min_value=1, max_value=3000),
    block=st.sampled_from([8, 64, 200]),
)
def test_latency_like_values_with_ties(seed: int, n: int, block: int) -> None:
    check(latency_like(np.random.default_rng(seed), n), threshold=16, block=block, chunk=97)


@pytest.mark.parametrize(
    "tail",
    [[-0.5], [-0.0], [0.0, -3.0], [1e-300, -1e300]],
    ids=["a-negative", "a-negative-zero", "zero-then-negative", "extremes"],
)
@pytest.mark.parametrize("block", [4, 64])
def test_a_signed_value_after_unsigned_ones(tail: list[float], block: int) -> None:
    """While no value has its sign bit set the selection keys are the bits themselves; one signed value, however
    late, makes the column use the general keys: the statistics stay numpy's."""
    rng = np.random.default_rng(7)
    for at in (0.1, 0.5, 0.99):
        values = latency_like(rng, 500).tolist()
        cut = int(at * len(values))
        check(values[:cut] + tail + values[cut:], threshold=8, block=block, chunk=13)


# -- the edges the paths turn on ---------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 9, 15, 16, 17, 127, 128, 129, 255, 256, 257, 1000, 4099])
@pytest.mark.parametrize("block", [1, 8, 128, 1000])
def test_sizes_around_the_pairwise_and_block_edges(n: int, block: int) -> None:
    rng = np.random.default_rng(n)
    values = rng.standard_normal(n) * 10.0 ** rng.integers(-6, 6, n)
    check(values, threshold=0, block=block, chunk=13)


@pytest.mark.parametrize(
    "values",
    [
        [0.25] * 1000,  # all equal: every radix pass keeps them together down to the 64-bit key
        [0.0] * 300,
        [-0.0] * 300,  # only negative zeros: numpy returns −0.0 for the order statistics, mean 0.0
        [-0.0],  # n = 1: numpy's index −1 and weight γ = 0 − (−1) = 1 give b − 0·0 = −0.0 (γ = 0 would give +0.0)
        [-0.0, -0.0],
        [-1.5, -0.25, -3.0] * 111,
        [0.0, 1.0] * 200 + [2.0],
        [5e-324, -5e-324, 2.2e-308, 1e300, -1e300, 0.0] * 50,  # subnormals and extremes
        list(range(-500, 500)),
    ],
    ids=[
        "all-equal",
        "zeros",
        "negative-zeros",
        "one-negative-zero",
        "two-negative-zeros",
        "negatives",
        "two-ties",
        "extremes",
        "ints",
    ],
)
@pytest.mark.parametrize("block", [1, 8, 64])
def test_ties_signs_and_extremes(values: list[float], block: int) -> None:
    check(values, threshold=0, block=block, chunk=7)


def test_percentile_branches_below_and_above_half() -> None:
    # n = 11: p50 at index 5 (γ 0), p90 at 9 (γ 0), p99 at 9.9 (γ 0.9 ≥ 0.5: numpy's b − (b − a)(1 − γ) branch);
    # n = 12: p90 at 9.9, p99 at 10.89; n = 2: p50 at 0.5 (γ exactly 0.5), p99 at 0.99.
    for n in (2, 11, 12, 101, 1001):
        check(np.random.default_rng(n).random(n) * 3.7, threshold=0, block=4, chunk=3)


def test_large_column_with_default_block_sums_by_recursion() -> None:
    # 300,000 values > one default block: the mean comes from the pairwise recursion over file ranges.
    assert DEFAULT_BLOCK_VALUES < 300_000
    rng = np.random.default_rng(7)
    tied = latency_like(rng, 300_000)
    wide = rng.lognormal(math.log(0.05), 3.0, 300_000) * rng.choice([1.0, -1.0], 300_000)
    # The test can tell summation orders apart: on these values a sequential sum, a sum of 8192-value block sums
    # or of the first default block and the rest gives a mean other than numpy's pairwise one.
    mean = float(wide.mean())
    assert sum(wide.tolist()) / wide.size != mean
    assert sum(float(np.add.reduce(wide[s : s + 8192])) for s in range(0, wide.size, 8192)) / wide.size != mean
    block = DEFAULT_BLOCK_VALUES
    assert (float(np.add.reduce(wide[:block])) + float(np.add.reduce(wide[block:]))) / wide.size != mean
    for values in (tied, wide):
        check(values, threshold=1000, block=DEFAULT_BLOCK_VALUES, chunk=4096)


def test_in_memory_below_the_threshold() -> None:
    values = latency_like(np.random.default_rng(3), 5000)
    column = filled(values, threshold=5000, block=8, chunk=999)
    assert not column.spilled
    check(values, threshold=5000, block=8, chunk=999)
    check(values, threshold=4999, block=8, chunk=999)  # one more than fits: spilled


def test_median_then_more_values_then_describe() -> None:
    values = latency_like(np.random.default_rng(5), 700)
    column = filled(values[:400], threshold=10, block=16, chunk=50)
    assert same(column.median(), float(np.median(values[:400])))
    column.extend(values[400:])  # the order statistics selected for the median are stale now
    assert same(column.median(), float(np.median(values)))
    assert same(column.describe(), describe(values))


# -- empty, non-finite, the temporary file --------------------------------------------------------------------


@pytest.mark.parametrize("threshold", [0, 16])
def test_empty(threshold: int) -> None:
    column = FloatColumn(spill_threshold=threshold, block_values=8)
    column.extend(np.empty(0))
    assert not column.spilled and len(column) == 0
    assert column.median() is None and column.min() is None
    assert column.describe() == {"count": 0, "mean": None, "p50": None, "p90": None, "p99": None, "max": None}


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("threshold", [0, 16, 10_000])
def test_non_finite_is_refused(bad: float, threshold: int) -> None:
    values = np.array([0.1] * 50 + [bad] + [0.2] * 50)
    column = filled(values, threshold=threshold, block=8, chunk=7)
    with pytest.raises(ValueError, match="non-finite"):
        column.median()
    with pytest.raises(ValueError, match="non-finite"):
        column.describe()


def test_min_ignores_nan_like_the_negative_check_it_serves() -> None:
    for threshold in (0, 1000):
        column = filled(np.array([0.5, math.nan, 0.25]), threshold=threshold, block=8, chunk=1)
        assert column.min() == 0.25
        column = filled(np.array([0.5, math.nan, -0.25, -math.inf]), threshold=threshold, block=8, chunk=2)
        assert column.min() == -math.inf


@pytest.fixture
def spill_files(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every temporary file a FloatColumn opens."""
    opened: list[Any] = []
    real = tempfile.TemporaryFile

    def recording(*args: Any, **kwargs: Any) -> Any:
        handle = real(*args, **kwargs)
        opened.append(handle)
        return handle

    monkeypatch.setattr("capbench.metrics.stats.tempfile.TemporaryFile", recording)
    return opened


def test_the_temporary_file_is_closed_by_describe(spill_files: list[Any]) -> None:
    values = latency_like(np.random.default_rng(11), 500)
    column = filled(values, threshold=100, block=32, chunk=64)
    assert column.spilled and len(spill_files) == 1 and not spill_files[0].closed
    assert spill_files[0].seek(0, 2) == 500 * 8  # every value went to the file, none stayed in memory
    column.describe()
    assert spill_files[0].closed
    with pytest.raises(RuntimeError, match="last use"):
        column.describe()
    with pytest.raises(RuntimeError, match="last use"):
        column.extend(values)


def test_the_temporary_file_is_closed_when_describe_refuses(spill_files: list[Any]) -> None:
    column = filled(np.array([1.0] * 40 + [math.nan]), threshold=10, block=8, chunk=8)
    with pytest.raises(ValueError):
        column.describe()
    assert len(spill_files) == 1 and spill_files[0].closed


def test_no_file_below_the_threshold(spill_files: list[Any]) -> None:
    filled(np.arange(100.0), threshold=100, block=8, chunk=10).describe()
    assert spill_files == []


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        FloatColumn(spill_threshold=-1)
    with pytest.raises(ValueError):
        FloatColumn(block_values=0)


# -- request latency through spilling columns -----------------------------------------------------------------


def _requests(n: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    out: list[dict[str, Any]] = []
    for i in range(n):
        submit = int(rng.integers(0, 10 * S))
        gaps = np.round(rng.lognormal(math.log(0.02), 0.8, int(rng.integers(1, 12))), 4)
        times = [submit + int(rng.integers(1, S // 5))]
        for gap in gaps[1:]:
            times.append(times[-1] + int(gap * S))
        out.append(
            {
                "id": f"r{i}",
                "warmup": i < 3,
                "prompt_tokens": 10,
                "output_tokens": len(times),
                "t_submit_ns": submit,
                "t_first_token_ns": times[0],
                "t_done_ns": times[-1] + 1000,
                "token_times_ns": times,
                "error": None,
            }
        )
    return out


def test_request_metrics_are_unchanged_when_every_column_spills(monkeypatch: pytest.MonkeyPatch) -> None:
    records = _requests(400, seed=1)
    in_memory = request_metrics(records)
    monkeypatch.setattr(
        latency_module, "FloatColumn", functools.partial(FloatColumn, spill_threshold=0, block_values=8)
    )
    spilled = request_metrics(records)
    assert same(spilled, in_memory)
    assert in_memory["throughput"]["tokens_per_s_per_user"] is not None


def test_backwards_token_times_are_still_caught_when_spilled(monkeypatch: pytest.MonkeyPatch) -> None:
    records = _requests(50, seed=2)
    records[30]["token_times_ns"] = list(reversed(records[30]["token_times_ns"]))
    records[30]["output_tokens"] = len(records[30]["token_times_ns"])
    if len(records[30]["token_times_ns"]) < 2:
        records[30]["token_times_ns"] = [records[30]["t_done_ns"], records[30]["t_first_token_ns"]]
    monkeypatch.setattr(
        latency_module, "FloatColumn", functools.partial(FloatColumn, spill_threshold=0, block_values=8)
    )
    with pytest.raises(CapbenchError, match="increasing order"):
        request_metrics(records)
