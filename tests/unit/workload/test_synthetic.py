"""Token-id workloads: exact lengths, shared blocks and prefixes shared exactly, warm-up kept apart, seeded."""

from __future__ import annotations

import itertools
from pathlib import Path

from capbench.workload.lengths import LengthSpec
from capbench.workload.synthetic import RandomLengths, SharedPrefixes, TokenPool, TraceBuilder, synthetic_workload
from capbench.workload.traces import Trace, TraceEntry

POOL = TokenPool(tuple(range(1000, 1500)))


def ids(request: object) -> tuple[int, ...]:
    token_ids = request.prompt.token_ids  # type: ignore[attr-defined]
    assert token_ids is not None and request.prompt.as_token_ids  # type: ignore[attr-defined]
    return tuple(token_ids)


def random_workload(seed: int = 0, count: int | None = 50, outputs: bool = True) -> object:
    shape = RandomLengths(LengthSpec(40, "uniform", range_ratio=0.5), LengthSpec(8, "uniform", range_ratio=0.5))
    return synthetic_workload(
        shape,
        POOL,
        num_requests=count,
        duration_s=None if count else 5.0,
        warmup=3,
        seed=seed,
        dataset_output_lengths=outputs,
    )


def test_random_requests_have_their_drawn_lengths() -> None:
    shape = RandomLengths(LengthSpec(40, "uniform", range_ratio=0.5), LengthSpec(8, "uniform", range_ratio=0.5))
    work = random_workload()
    measured = list(work.measured)  # type: ignore[attr-defined]
    assert [r.id for r in measured] == [f"r{i:04d}" for i in range(50)]
    for i, request in enumerate(measured):
        prompt, output = shape.lengths(0, "random", i)
        assert len(ids(request)) == prompt and request.max_tokens == output
        assert set(ids(request)) <= set(POOL.ids)
    assert len({len(ids(r)) for r in measured}) > 5  # the lengths vary


def test_random_is_seeded_and_lazy() -> None:
    first = [ids(r) for r in random_workload(seed=3).measured]  # type: ignore[attr-defined]
    again = [ids(r) for r in random_workload(seed=3).measured]  # type: ignore[attr-defined]
    other = [ids(r) for r in random_workload(seed=4).measured]  # type: ignore[attr-defined]
    assert first == again and first != other
    endless = random_workload(count=None).measured  # type: ignore[attr-defined]
    assert len(list(itertools.islice(endless, 500))) == 500


def test_model_stops_when_dataset_lengths_are_off() -> None:
    work = random_workload(outputs=False)
    assert all(r.max_tokens is None for r in [*work.warmup, *work.measured])  # type: ignore[attr-defined]


def test_prefix_groups_share_exactly_their_prefix() -> None:
    shape = SharedPrefixes(groups=3, prefix_tokens=64, suffix_tokens=16, output=LengthSpec(4))
    work = synthetic_workload(
        shape, POOL, num_requests=12, duration_s=None, warmup=3, seed=0, dataset_output_lengths=True
    )
    measured = [ids(r) for r in work.measured]
    assert all(len(m) == 80 for m in measured)
    for i, j in itertools.combinations(range(12), 2):
        same_group = i % 3 == j % 3
        assert (measured[i][:64] == measured[j][:64]) == same_group
        assert measured[i][64:] != measured[j][64:]
    warm_prefixes = {ids(r)[:64] for r in work.warmup}
    assert warm_prefixes.isdisjoint({m[:64] for m in measured})  # warm-up never caches a measured prefix


def trace(entries: list[tuple[float, int, tuple[int, ...]]]) -> Trace:
    rows = tuple(TraceEntry(t, n, 3, blocks, line) for line, (t, n, blocks) in enumerate(entries, start=1))
    return Trace(rows, "mooncake", "test", "0" * 64)


def test_trace_requests_share_blocks_exactly() -> None:
    t = trace([(0.0, 1000, (1, 2)), (0.5, 700, (1, 3)), (1.0, 512, (4,)), (1.5, 1024, (1, 2))])
    work = TraceBuilder(t, POOL, seed=0).workload(num_requests=None, warmup=2, replay_speed=2.0, outputs=True)
    assert work.offsets_ns == [0, 250_000_000, 500_000_000, 750_000_000]
    measured = [ids(r) for r in work.measured]
    assert [len(m) for m in measured] == [1000, 700, 512, 1024]
    assert measured[0][:512] == measured[1][:512] == measured[3][:512]  # block 1
    assert measured[0][512:1000] == measured[3][512:1000]  # block 2, cut to the first prompt's length
    assert measured[1][512:] != measured[0][512:700]  # block 3 is not block 2
    assert measured[2] != measured[0][:512]
    assert all(ids(w)[:512] != measured[0][:512] for w in work.warmup)


def test_trace_without_blocks_and_a_limit(tmp_path: Path) -> None:
    rows = tuple(TraceEntry(float(i), 20 + i, 5, (), i + 2) for i in range(5))
    t = Trace(rows, "burstgpt", "test", "0" * 64)
    work = TraceBuilder(t, POOL, seed=0).workload(num_requests=3, warmup=0, replay_speed=1.0, outputs=False)
    measured = list(work.measured)
    assert [len(ids(r)) for r in measured] == [20, 21, 22] and work.num_requests == 3
    assert work.offsets_ns == [0, 1_000_000_000, 2_000_000_000]
    assert all(r.max_tokens is None for r in measured)
