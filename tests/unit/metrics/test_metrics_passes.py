"""Streaming pass scanner: chunking, warm-up, timing, contract errors, torn lines through the scorer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from capbench.arch.dtypes import ByteWidths
from capbench.errors import CapbenchError
from capbench.metrics import passes as passes_module
from capbench.metrics.features import ARRAY_FIELDS
from capbench.metrics.passes import scan_passes
from capbench.metrics.score import score_run
from capbench.records.pass_codec import compact_pass
from capbench.records.reader import RecordWarning, iter_jsonl
from capbench.varints import encode_varints
from tests.support.toys import dense_plus_moe, sliding_toy


def make_passes(count: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(1)
    out = []
    t = 1_000
    for i in range(count):
        reqs = [[1, int(c)] for c in rng.integers(1, 50, size=int(rng.integers(1, 5)))]
        if i % 3 == 0:
            reqs.append([int(rng.integers(2, 9)), 0])
        latency = int(rng.integers(1_000, 5_000))
        out.append(
            {
                "t_start_ns": t,
                "t_end_ns": t + latency,
                "reqs": reqs,
                "sampled": len(reqs) - 1,
                "experts_active": [int(a) for a in rng.integers(1, 3, size=2)],
                "expert_tokens": [[int(x) for x in rng.integers(0, 5, size=2)] for _ in range(2)],
            }
        )
        t += latency + 10
    return out


def same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return bool(np.array_equal(a, b))


def test_chunking_does_not_change_results() -> None:
    passes = make_passes(50)
    whole = scan_passes(passes, windows=(4,), num_moe_layers=2, num_experts=2, top_k=1)
    small = scan_passes(passes, windows=(4,), num_moe_layers=2, num_experts=2, top_k=1, chunk_passes=7)
    for name in ARRAY_FIELDS:
        assert np.array_equal(getattr(whole.features, name), getattr(small.features, name)), name
    for code in range(3):
        assert same(whole.experts.active_sum_per_layer[code], small.experts.active_sum_per_layer[code])
        assert same(whole.experts.token_counts[code], small.experts.token_counts[code])


def test_features_of_one_pass() -> None:
    scan = scan_passes(
        [{"reqs": [[3, 5], [1, 2]], "sampled": 1, "t_start_ns": 10, "t_end_ns": 2_000_010, "experts_active": [1, 2]}],
        windows=(4,),
    )
    f = scan.features
    assert f.tokens.tolist() == [4]
    assert f.kv_tokens_full.tolist() == [(5 + 3) + (2 + 1)]
    assert f.pairs_full.tolist() == [(3 * 5 + 6) + (2 + 1)]
    # Window 4: min(5, 3) + 3 = 6 and min(2, 3) + 1 = 3; pairs 12 and min(3, 4) = 3.
    assert f.kv_tokens_window.tolist() == [[6 + 3]]
    assert f.pairs_window.tolist() == [[12 + 3]]
    assert f.latency_s.tolist() == [0.002]
    assert f.experts_active_sum.tolist() == [3] and f.experts_measured.tolist() == [True]
    assert scan.num_moe_layers == 2


def test_warmup_passes_are_excluded_by_flag() -> None:
    passes = [
        {"reqs": [[1, 1]], "sampled": 1, "latency_s": 100.0, "warmup": True},  # huge, but warm-up
        {"reqs": [[1, 1]], "sampled": 1, "latency_s": 0.5},
    ]
    scan = scan_passes(passes)
    assert (scan.records, scan.warmup, scan.features.num_passes) == (2, 1, 1)
    assert scan.features.latency_s.tolist() == [0.5]


def test_latency_s_preferred_over_timestamps() -> None:
    scan = scan_passes([{"reqs": [[1, 1]], "sampled": 1, "latency_s": 0.25, "t_start_ns": 0, "t_end_ns": 10**9}])
    assert scan.features.latency_s.tolist() == [0.25]
    assert scan.features.timed.tolist() == [True]


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"sampled": 1, "latency_s": 1.0}, "breaks the passes.jsonl contract"),
        ({"reqs": [[1, 2]], "latency_s": 1.0}, "breaks the passes.jsonl contract"),
        ({"reqs": [], "sampled": 0, "latency_s": 1.0}, "'reqs' is empty"),
        ({"reqs": [[0, 2]], "sampled": 0, "latency_s": 1.0}, "n ≥ 1 and c ≥ 0"),
        ({"reqs": [[1, -2]], "sampled": 0, "latency_s": 1.0}, "n ≥ 1 and c ≥ 0"),
        ({"reqs": [[1.5, 2]], "sampled": 0, "latency_s": 1.0}, "pairs of integers"),
        ({"reqs": [[1, None]], "sampled": 0, "latency_s": 1.0}, "pairs of integers"),
        ({"reqs": [[1, 2, 3]], "sampled": 0, "latency_s": 1.0}, "not an \\[n, c\\] pair"),
        ({"reqs": [[1, 2]], "sampled": 2, "latency_s": 1.0}, "'sampled' must be between"),
        ({"reqs": [[1, 2]], "sampled": 1}, "needs 't_start_ns' and 't_end_ns', or 'latency_s'"),
        ({"reqs": [[1, 2]], "sampled": 1, "latency_s": 0.0}, "latency must be positive"),
        ({"reqs": [[1, 2]], "sampled": 1, "t_start_ns": 5, "t_end_ns": 5}, "latency must be positive"),
        ({"reqs": [[1, 2]], "sampled": 1, "latency_s": 1.0, "experts_active": [1]}, "expected one per MoE layer"),
        ({"reqs": [[1, 2]], "sampled": 1, "latency_s": 1.0, "experts_active": [1, 9]}, "in \\[0, E=4\\]"),
        (
            {"reqs": [[1, 2]], "sampled": 1, "latency_s": 1.0, "experts_active": [1, 2], "expert_tokens": [[1, 1, 1]]},
            "one list of E counts per MoE layer",
        ),
    ],
)
def test_contract_violations_name_the_record(record: dict[str, Any], message: str) -> None:
    good = {"reqs": [[1, 2]], "sampled": 1, "latency_s": 1.0}
    with pytest.raises(CapbenchError, match=message) as info:
        scan_passes([good, record], num_moe_layers=2, num_experts=4, top_k=2)
    assert "record 1" in str(info.value) or "records 0–1" in str(info.value)


def test_torn_last_line_is_skipped_with_a_warning_through_the_scorer(tmp_path: Path) -> None:
    path = tmp_path / "passes.jsonl"
    good = [{"reqs": [[1, 5]], "sampled": 1, "latency_s": 0.01, "experts_active": [2]} for _ in range(3)]
    path.write_bytes(b"".join(orjson.dumps(p) + b"\n" for p in good) + b'{"reqs": [[1, 5]], "samp')
    with pytest.warns(RecordWarning, match="torn last line 4"):
        summary = score_run(
            {},
            [],
            iter_jsonl(path),
            [],
            structure=dense_plus_moe(),
            widths=ByteWidths(2, 2, 2, 2),
            ceilings=None,
            cost=None,
        )
    assert summary["pass_records"] == {"total": 3, "warmup": 0, "scored": 3}
    assert summary["phases"]["decode"]["passes"] == 3


def test_sliding_structure_windows_flow_into_scan() -> None:
    summary = score_run(
        {},
        [],
        [{"reqs": [[3, 5]], "sampled": 1, "latency_s": 1.0, "experts_active": [2, 1]}],
        [],
        structure=sliding_toy(),
        widths=ByteWidths(2, 2, 2, 2),
        ceilings=None,
        cost=None,
    )
    assert summary["phases"]["prefill"]["bytes"] == 408  # test_metrics_bytes_flops.test_sliding_window_chunk
    assert summary["phases"]["prefill"]["flops"] == 928


@pytest.mark.parametrize("bad", [1.5, None, "2", 2**64])
def test_a_bad_experts_active_value_in_a_later_block_names_its_record(bad: object) -> None:
    """A value that is not a 64-bit integer, thousands of passes into a chunk, is refused naming its record."""
    passes = make_passes(5000)
    passes[4500]["experts_active"] = [1, bad]
    with pytest.raises(CapbenchError, match=r"^pass record 4500 \(0-based, in file order\)"):
        scan_passes(passes, num_moe_layers=2, num_experts=2)


def test_true_in_experts_active_reads_as_1() -> None:
    passes = make_passes(5000)
    passes[4999]["experts_active"] = [1, 2]
    plain = scan_passes(passes, num_moe_layers=2, num_experts=2)
    passes[4999]["experts_active"] = [True, 2]  # JSON true is Python's True, an int: read as 1
    with_bool = scan_passes(passes, num_moe_layers=2, num_experts=2)
    assert np.array_equal(plain.features.experts_active_sum, with_bool.features.experts_active_sum)
    for codes in ((0,), (1,), (2,)):
        a, b = plain.experts.combined(codes), with_bool.experts.combined(codes)
        assert a[1] == b[1] and ((a[0] is None and b[0] is None) or np.array_equal(a[0], b[0]))


def _compact(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [compact_pass(r) for r in records]


def test_compact_records_scan_as_their_lists() -> None:
    """Schema 3's integer-list strings give the features and expert totals of the lists, in blocks of either form
    and in a block that mixes both (a hand-edited file)."""
    passes = make_passes(700)
    passes[5]["warmup"] = True
    passes[9]["experts_active"] = passes[9]["expert_tokens"] = None
    mixed = [compact_pass(p) if i % 3 else p for i, p in enumerate(passes)]
    lists = scan_passes(passes, windows=(4,), num_moe_layers=2, num_experts=2, top_k=1, chunk_passes=97)
    for variant in (_compact(passes), mixed):
        scan = scan_passes(variant, windows=(4,), num_moe_layers=2, num_experts=2, top_k=1, chunk_passes=97)
        assert (scan.records, scan.warmup, scan.num_moe_layers) == (lists.records, lists.warmup, 2)
        for name in ARRAY_FIELDS:
            assert np.array_equal(getattr(scan.features, name), getattr(lists.features, name)), name
        for code in range(3):
            assert same(scan.experts.active_sum_per_layer[code], lists.experts.active_sum_per_layer[code])
            assert same(scan.experts.token_counts[code], lists.experts.token_counts[code])


GOOD = {"reqs_b64": encode_varints([1, 2]), "sampled": 1, "latency_s": 1.0}


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (GOOD | {"reqs_b64": "not base64!"}, "reqs_b64 is not base64"),
        (GOOD | {"reqs_b64": "gA=="}, "reqs_b64 ends inside a varint"),
        (GOOD | {"reqs_b64": encode_varints([1, 2, 3])}, "reqs_b64 holds 3 integers, not \\[n, c\\] pairs"),
        (GOOD | {"reqs_b64": 7}, "reqs_b64 is not base64"),
        (GOOD | {"reqs_b64": encode_varints([0, 2])}, "n ≥ 1 and c ≥ 0"),
        (GOOD | {"experts_active_b64": encode_varints([1])}, "expected one per MoE layer"),
        (GOOD | {"experts_active_b64": encode_varints([1, 9])}, "in \\[0, E=4\\]"),
        (
            GOOD | {"experts_active_b64": encode_varints([1, 2]), "expert_tokens_b64": encode_varints([1, 1, 1])},
            "expert_tokens_b64 holds 3 counts, not E per layer",
        ),
        (GOOD | {"expert_tokens_b64": encode_varints([1, 1])}, "not E per layer of experts_active_b64"),
        (
            GOOD | {"experts_active_b64": encode_varints([1, 2]), "expert_tokens_b64": encode_varints([1] * 6)},
            "expert_tokens lists must have E = 4 counts, got 3",
        ),
    ],
)
def test_compact_records_that_break_the_contract_name_the_record(record: dict[str, Any], message: str) -> None:
    with pytest.raises(CapbenchError, match=message) as info:
        scan_passes([GOOD, record], num_moe_layers=2, num_experts=4, top_k=2)
    assert "record 1" in str(info.value) or "records 0–1" in str(info.value)


def test_a_block_read_record_by_record_or_field_by_field_gives_the_same_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    """A block whose records share one key set is read as columns; the same passes read one dict.get per record
    and field give the same features, in blocks where the key sets differ too (latency given or not, expert
    counts on some passes)."""
    passes = _compact(make_passes(600))
    for i in range(0, 600, 7):
        passes[i]["latency_s"] = 0.5 + i / 1000
    for i in range(3, 600, 11):
        passes[i].pop("expert_tokens_b64", None)
    alike = _compact(make_passes(600))
    for variant in (passes, alike):
        columns = scan_passes(variant, windows=(4,), num_moe_layers=2, num_experts=2, top_k=1, chunk_passes=97)
        with monkeypatch.context() as patch:
            patch.setattr(passes_module, "same_key_columns", lambda block: None)
            one_by_one = scan_passes(variant, windows=(4,), num_moe_layers=2, num_experts=2, top_k=1, chunk_passes=97)
        for name in ARRAY_FIELDS:
            assert np.array_equal(getattr(columns.features, name), getattr(one_by_one.features, name)), name
        for code in range(3):
            assert same(columns.experts.token_counts[code], one_by_one.experts.token_counts[code])
