"""Golden bytes and FLOPs per pass (docs/metrics.md §2), hand-computed on the toys of test_metrics_toys."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from capbench.arch.dtypes import ByteWidths
from capbench.arch.structure import ModelStructure
from capbench.metrics.attention import AttentionGroups
from capbench.metrics.bytes import pass_bytes
from capbench.metrics.features import PassFeatures
from capbench.metrics.flops import pass_flops
from capbench.metrics.passes import scan_passes
from tests.support.toys import DISTINCT_WIDTHS, dense_plus_moe, mla_toy, sliding_toy


def features_of(structure: ModelStructure, *records: dict[str, Any]) -> PassFeatures:
    passes = [{"latency_s": 1.0, **rec} for rec in records]
    windows = AttentionGroups.of(structure).windows
    return scan_passes(passes, windows=windows, num_moe_layers=structure.num_moe_layers).features


def bytes_parts(structure: ModelStructure, widths: ByteWidths, rec: dict[str, Any]) -> dict[str, float]:
    f = features_of(structure, rec)
    moved = pass_bytes(f, structure, widths, f.experts_active_sum.astype(np.float64))
    parts = {name: float(getattr(moved, name)[0]) for name in moved.__dataclass_fields__}
    parts["total"] = float(moved.total[0])
    return parts


def flops_parts(structure: ModelStructure, rec: dict[str, Any]) -> dict[str, float]:
    computed = pass_flops(features_of(structure, rec), structure)
    parts = {name: float(getattr(computed, name)[0]) for name in computed.__dataclass_fields__}
    parts["total"] = float(computed.total[0])
    return parts


DECODE = {"reqs": [[1, 5], [1, 3]], "sampled": 2, "experts_active": [3]}
PREFILL = {"reqs": [[4, 0], [3, 2]], "sampled": 1, "experts_active": [4]}


def test_dense_plus_moe_decode_bytes() -> None:
    # T = 2, s = 2, a = 3; widths b_w = 2, b_e = 0.5, b_emb = 4, b_kv = 1.
    assert bytes_parts(dense_plus_moe(), DISTINCT_WIDTHS, DECODE) == {
        "dense_weights": 2 * 680,  # b_w · (2·192 attn + 144 dense FFN + 120 shared + 32 router) = 1360
        "routed_experts": 0.5 * 72 * 3,  # b_e · expert · Σ a_l = 108
        "lm_head": 4 * 10 * 8,  # b_emb · V·d (s > 0) = 320
        "embedding": 4 * 8 * 2,  # b_emb · d · T = 64
        "kv_cache": 1 * (8 + 8) * ((5 + 1) + (3 + 1)),  # b_kv · Σ_layers kv · Σ(c+n) = 160
        "total": 1360 + 108 + 320 + 64 + 160,  # 2012
    }


def test_dense_plus_moe_decode_flops() -> None:
    assert flops_parts(dense_plus_moe(), DECODE) == {
        "linear_layers": 2 * 2 * 824,  # 2·T·(680 + k=2 · 72) = 3296
        "lm_head": 2 * 2 * 80,  # 2·s·V·d = 320
        "attention": 2 * (2 * 2 * (4 + 4)) * ((1 * 5 + 1) + (1 * 3 + 1)),  # 2 layers · 32 · 10 pairs = 640
        "total": 3296 + 320 + 640,  # 4256
    }


def test_dense_plus_moe_prefill_bytes_and_flops() -> None:
    # Request 1: a whole 4-token prompt (samples); request 2: a 3-token chunk on 2 cached (does not sample).
    # T = 7, s = 1, a = 4.
    assert bytes_parts(dense_plus_moe(), DISTINCT_WIDTHS, PREFILL) == {
        "dense_weights": 1360,
        "routed_experts": 0.5 * 72 * 4,  # 144
        "lm_head": 320,
        "embedding": 4 * 8 * 7,  # 224
        "kv_cache": 1 * 16 * ((0 + 4) + (2 + 3)),  # 144
        "total": 1360 + 144 + 320 + 224 + 144,  # 2192
    }
    # pairs: 4·0 + 4·5/2 = 10 and 3·2 + 3·4/2 = 12 → 22 per layer, 64 FLOPs per pair over both layers.
    assert flops_parts(dense_plus_moe(), PREFILL) == {
        "linear_layers": 2 * 7 * 824,  # 11536
        "lm_head": 2 * 1 * 80,  # 160
        "attention": 64 * 22,  # 1408
        "total": 11536 + 160 + 1408,  # 13104
    }


def test_no_sampling_pass_reads_no_lm_head() -> None:
    parts = bytes_parts(dense_plus_moe(), DISTINCT_WIDTHS, {"reqs": [[4, 0]], "sampled": 0, "experts_active": [4]})
    assert parts["lm_head"] == 0
    assert flops_parts(dense_plus_moe(), {"reqs": [[4, 0]], "sampled": 0})["lm_head"] == 0


def test_mla_decode() -> None:
    widths = ByteWidths(weights=2, experts=2, embeddings=2, kv=1)  # bf16 weights, fp8 latent cache
    rec = {"reqs": [[1, 9]], "sampled": 1, "experts_active": [1]}
    assert bytes_parts(mla_toy(), widths, rec) == {
        "dense_weights": 2 * (224 + 32),  # 512
        "routed_experts": 2 * 48 * 1,  # 96
        "lm_head": 2 * 80,  # 160
        "embedding": 2 * 8 * 1,  # 16
        "kv_cache": 1 * (4 + 2) * (9 + 1),  # b_kv · (r_kv + rope) · (c + n) = 60
        "total": 512 + 96 + 160 + 16 + 60,  # 844
    }
    # Non-absorbed MLA: 2·H·(d_qk + d_v) = 2·2·(5 + 3) = 32 FLOPs per pair; pairs = 1·9 + 1 = 10.
    assert flops_parts(mla_toy(), rec) == {
        "linear_layers": 2 * 1 * (256 + 48),  # 608
        "lm_head": 2 * 1 * 80,  # 160
        "attention": 32 * 10,  # 320
        "total": 608 + 160 + 320,  # 1088
    }


def test_sliding_window_chunk() -> None:
    # A 3-token chunk on 5 cached tokens, window w = 4 on layer 0, full attention on layer 1.
    widths = ByteWidths(weights=2, experts=2, embeddings=2, kv=2)
    rec = {"reqs": [[3, 5]], "sampled": 1, "experts_active": [2, 1]}
    # Full layer: pairs = 3·5 + 3·4/2 = 21, KV slots = 5 + 3 = 8.
    # Sliding layer: queries at positions 5, 6, 7 see min(pos + 1, 4) = 4 keys each → 12 pairs;
    #   KV slots = min(5, w − 1 = 3) + 3 = 6.
    assert bytes_parts(sliding_toy(), widths, rec) == {
        "dense_weights": 2 * 80,  # 160
        "routed_experts": 2 * 12 * (2 + 1),  # 72
        "lm_head": 2 * 5 * 4,  # 40
        "embedding": 2 * 4 * 3,  # 24
        "kv_cache": 2 * 4 * (8 + 6),  # 112
        "total": 160 + 72 + 40 + 24 + 112,  # 408
    }
    # 2·H·(dh + dh) = 2·1·4 = 8 FLOPs per pair per layer.
    assert flops_parts(sliding_toy(), rec) == {
        "linear_layers": 2 * 3 * 104,  # 624
        "lm_head": 2 * 1 * 20,  # 40
        "attention": 8 * (21 + 12),  # 264
        "total": 624 + 40 + 264,  # 928
    }


def test_sliding_window_decode_clips_context() -> None:
    # Decode on 10 cached tokens: full layer 11 pairs and 11 KV slots; sliding layer 4 pairs, min(10, 3)+1 = 4 slots.
    f = features_of(sliding_toy(), {"reqs": [[1, 10]], "sampled": 1})
    assert (f.pairs_full[0], f.kv_tokens_full[0]) == (11, 11)
    assert (f.pairs_window[0, 0], f.kv_tokens_window[0, 0]) == (4, 4)


def test_window_larger_than_context_equals_full_attention() -> None:
    wide = sliding_toy(window=1000)
    rec = {"reqs": [[7, 20], [1, 50]], "sampled": 2}
    f = features_of(wide, rec)
    assert f.pairs_window[0, 0] == f.pairs_full[0]
    assert f.kv_tokens_window[0, 0] == f.kv_tokens_full[0]


def test_bytes_are_nan_where_experts_unknown() -> None:
    s = dense_plus_moe()
    f = features_of(s, {"reqs": [[1, 5]], "sampled": 1, "experts_active": None})
    moved = pass_bytes(f, s, DISTINCT_WIDTHS, np.array([np.nan]))
    assert np.isnan(moved.total[0])
    assert moved.dense_weights[0] == pytest.approx(1360)
