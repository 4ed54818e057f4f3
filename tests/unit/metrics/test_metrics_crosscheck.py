"""Independent cross-check of capbench's numbers against the spec (shared docs/metrics.md, records.md).

Every expected value here is computed by hand from the spec's formulas: plain Python loops over layers and
requests (no numpy, no capbench helper except to build inputs), with the arithmetic written out in the
comments, and compared with what capbench produces end to end through
:func:`capbench.metrics.score.score_run` (and :func:`capbench.summary.export.summary_row` for the CSV row).

Where capbench disagrees with the spec the test asserts the spec's value and is marked
``xfail(strict=True)`` with the discrepancy in its reason (none left: the two found were fixed).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from capbench.arch.dtypes import byte_widths
from capbench.arch.families import model_structure
from capbench.arch.structure import LayerStructure, ModelStructure
from capbench.errors import CapbenchError
from capbench.metrics.cost import CostInputs
from capbench.metrics.score import score_run
from capbench.metrics.utilization import Ceilings
from capbench.summary.export import summary_row
from tests.support.paths import DATA

MODELS = DATA / "models"
S = 1_000_000_000  # ns per second
MS = 1_000_000  # ns per millisecond
REL = 1e-12

# H100 SXM: 3.35e12 B/s, 989.4e12 dense bf16 FLOP/s, one GPU.
BW = 3.35e12
PEAK = 989.4e12
H100 = Ceilings(
    num_gpus=1,
    memory_bandwidth_bytes_per_s=BW,
    peak_flops_per_s=PEAK,
    compute_dtype="bfloat16",
    source="H100 SXM5 datasheet",
)
BF16 = {"weights": "bfloat16", "experts": "bfloat16", "embeddings": "bfloat16", "kv": "bfloat16"}
MANIFEST: dict[str, Any] = {
    "run_id": "crosscheck",
    "status": "complete",
    "capbench_version": "0.1.0",
    "model": {"name": "crosscheck-model", "config": {"model_type": "qwen3_moe"}},
    "engine": {"name": "vllm", "version": "0"},
    "hardware": {"profile": "h100-sxm", "num_gpus": 1, "gpu_name": "NVIDIA H100 80GB HBM3"},
    "dtypes": {"weights": "bfloat16", "experts": "bfloat16", "kv": "bfloat16", "compute": "bfloat16"},
    "load": {"pattern": "closed_loop", "concurrency": 3, "num_requests": 3, "seed": 0},
}


def load(name: str) -> dict[str, Any]:
    config: dict[str, Any] = json.loads((MODELS / name).read_text())
    return config


def approx(value: float) -> Any:
    return pytest.approx(value, rel=REL, abs=0.0)


def score(
    passes: Sequence[Mapping[str, Any]] | None,
    *,
    structure: ModelStructure | None,
    requests: Sequence[Mapping[str, Any]] = (),
    power: Sequence[Mapping[str, Any]] = (),
    widths: Mapping[str, str] | None = None,
    ceilings: Ceilings | None = H100,
    cost: CostInputs | None = None,
    expert_estimate: bool = False,
    manifest: Mapping[str, Any] = MANIFEST,
) -> dict[str, Any]:
    return score_run(
        manifest,
        list(requests),
        None if passes is None else list(passes),
        list(power),
        structure=structure,
        widths=byte_widths(widths or BF16),
        ceilings=ceilings,
        cost=cost,
        expert_estimate=expert_estimate,
    )


# ---------------------------------------------------------------------------------------------------------
# Hand-written reference: a model is a plain dict, a pass is computed with loops (spec §2).
# ---------------------------------------------------------------------------------------------------------


def brute_pairs(n: int, c: int, window: int | None) -> int:
    """Causal (query, key) pairs by brute force: query j sits at position c + j and sees keys 0..c+j,
    at most ``window`` of them on a sliding-window layer (itself included)."""
    total = 0
    for j in range(n):
        keys = c + j + 1
        if window is not None:
            keys = min(keys, window)
        total += keys
    return total


def ref_pass(
    model: Mapping[str, Any],
    reqs: Sequence[Sequence[int]],
    sampled: int,
    active: Sequence[float] | None,
    *,
    b_w: float = 2.0,
    b_e: float = 2.0,
    b_emb: float = 2.0,
    b_kv: float = 2.0,
) -> dict[str, Any]:
    """Bytes and FLOPs of one pass, by part, straight from the spec's §2 formulas."""
    d, vocab, k, expert = model["d"], model["V"], model["k"], model["expert"]
    tokens = 0
    for n, _c in reqs:
        tokens += n
    dense = 0  # L·attn + Σ_MoE(shared + router) + Σ_dense dense FFN
    per_token = 0  # the same plus Σ_MoE k·expert
    kv_slots = 0  # Σ_layers kv_elems · Σ_i (c_eff + n)
    attn_flops = 0  # Σ_layers 2·H·(d_qk + d_v) · Σ_i pairs_i
    for layer in model["layers"]:
        dense += layer["attn"] + layer["ffn"] + layer["router"]
        per_token += layer["attn"] + layer["ffn"] + layer["router"] + (k * expert if layer["moe"] else 0)
        w = layer["window"]
        for n, c in reqs:
            c_eff = c if w is None else min(c, w - 1)
            kv_slots += layer["kv"] * (c_eff + n)
            attn_flops += 2 * layer["H"] * (layer["dqk"] + layer["dv"]) * brute_pairs(n, c, w)
    routed = None
    if active is not None:
        routed = 0.0
        for a in active:
            routed += b_e * expert * a
    out: dict[str, Any] = {
        "dense_weights": b_w * dense,
        "routed_experts": routed,
        "lm_head": b_emb * vocab * d if sampled > 0 else 0.0,
        "embedding": b_emb * d * tokens,
        "kv_cache": b_kv * kv_slots,
        "linear_layers": 2.0 * tokens * per_token,
        "lm_head_flops": 2.0 * sampled * vocab * d,
        "attention": float(attn_flops),
        "tokens": tokens,
    }
    out["bytes"] = None if routed is None else sum(out[p] for p in BYTE_PARTS)
    out["flops"] = out["linear_layers"] + out["lm_head_flops"] + out["attention"]
    return out


BYTE_PARTS = ("dense_weights", "routed_experts", "lm_head", "embedding", "kv_cache")


def gqa_layer(
    d: int, h: int, hkv: int, dh: int, *, ffn: int, router: int, moe: bool, window: int | None
) -> dict[str, Any]:
    # attention, MHA/GQA: d·H·dh + 2·d·Hkv·dh + H·dh·d; KV elements per token 2·Hkv·dh; d_qk = d_v = dh
    attn = d * h * dh + 2 * d * hkv * dh + h * dh * d
    return {
        "attn": attn,
        "ffn": ffn,
        "router": router,
        "moe": moe,
        "H": h,
        "dqk": dh,
        "dv": dh,
        "kv": 2 * hkv * dh,
        "window": window,
    }


def qwen3_model() -> dict[str, Any]:
    """Qwen3-30B-A3B from its config: 48 layers, all MoE (decoder_sparse_step 1, no mlp_only_layers), no
    shared expert. d = 2048, H = 32, Hkv = 4, dh = 128, E = 128, k = 8, f_e = 768, V = 151936."""
    d, e = 2048, 128
    layers = [gqa_layer(d, 32, 4, 128, ffn=0, router=d * e, moe=True, window=None) for _ in range(48)]
    # one routed expert: 3·d·f_e = 3·2048·768 = 4,718,592
    return {"d": d, "V": 151936, "E": e, "k": 8, "expert": 3 * d * 768, "layers": layers}


def deepseek_v2_lite_model() -> dict[str, Any]:
    """DeepSeek-V2-Lite: 27 layers, first_k_dense_replace 1 (layer 0 dense, width intermediate_size 10944),
    moe_layer_freq 1, E = 64, k = 6, f_e = 1408, n_shared_experts 2 (f_sh = 2·1408), MLA with q_lora_rank
    null, kv_lora_rank 512, nope 128, rope 64, v 128, H = 16, d = 2048, V = 102400."""
    d, h, r_kv, nope, rope, v = 2048, 16, 512, 128, 64, 128
    # MLA: Q d·H·(nope+rope) = 2048·16·192 = 6,291,456; KV d·(r_kv+rope) + r_kv·H·(nope+v)
    #      = 2048·576 + 512·16·256 = 1,179,648 + 2,097,152 = 3,276,800; O H·v·d = 16·128·2048 = 4,194,304
    attn = d * h * (nope + rope) + d * (r_kv + rope) + r_kv * h * (nope + v) + h * v * d
    assert attn == 13_762_560
    mla = {"attn": attn, "H": h, "dqk": nope + rope, "dv": v, "kv": r_kv + rope, "window": None}
    layers = []
    for i in range(27):
        if i < 1:  # dense layer: 3·d·intermediate_size = 3·2048·10944 = 67,239,936
            layers.append({**mla, "ffn": 3 * d * 10944, "router": 0, "moe": False})
        else:  # MoE layer: shared 3·d·(2·1408) = 17,301,504; router d·E = 131,072
            layers.append({**mla, "ffn": 3 * d * 2 * 1408, "router": d * 64, "moe": True})
    return {"d": d, "V": 102400, "E": 64, "k": 6, "expert": 3 * d * 1408, "layers": layers}


def pct(values: Sequence[float], q: float) -> float:
    """Percentile with linear interpolation between order statistics (Hyndman–Fan type 7), by hand."""
    s = sorted(values)
    h = (len(s) - 1) * q / 100.0
    lo = math.floor(h)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (h - lo) * (s[hi] - s[lo])


def check_phase(entry: Mapping[str, Any], ref: Sequence[Mapping[str, Any]], latencies: Sequence[float]) -> None:
    """A phase entry against hand-computed passes: sums by part, totals, time-weighted S-MBU and S-MFU."""
    time_s = sum(latencies)
    assert entry["passes"] == len(ref)
    assert entry["tokens"] == sum(r["tokens"] for r in ref)
    assert entry["time_s"] == approx(time_s)
    for part in BYTE_PARTS:
        assert entry["bytes_by_part"][part] == approx(sum(r[part] for r in ref)), part
    assert entry["flops_by_part"]["linear_layers"] == approx(sum(r["linear_layers"] for r in ref))
    assert entry["flops_by_part"]["lm_head"] == approx(sum(r["lm_head_flops"] for r in ref))
    assert entry["flops_by_part"]["attention"] == approx(sum(r["attention"] for r in ref))
    total_bytes = sum(r["bytes"] for r in ref)
    total_flops = sum(r["flops"] for r in ref)
    assert entry["bytes"] == approx(total_bytes)
    assert entry["flops"] == approx(total_flops)
    assert entry["s_mbu"] == approx(total_bytes / (time_s * 1 * BW))
    assert entry["s_mfu"] == approx(total_flops / (time_s * 1 * PEAK))
    assert entry["tokens_per_s"] == approx(sum(r["tokens"] for r in ref) / time_s)


# ---------------------------------------------------------------------------------------------------------
# Case 1: Qwen3-30B-A3B decode, prefill and chunked-prefill (mixed) passes.
# ---------------------------------------------------------------------------------------------------------

QWEN_ACTIVE = [8 + (i * 7) % 17 for i in range(48)]  # 48 varying values in [8, 24] (3 tokens · k=8 ≤ 24)
QWEN_DECODE: dict[str, Any] = {
    "latency_s": 0.02,
    "reqs": [[1, 100], [1, 2000], [1, 37]],
    "sampled": 3,
    "experts_active": QWEN_ACTIVE,
}
QWEN_PREFILL_ACTIVE = [100 + (i * 5) % 29 for i in range(48)]  # 812 tokens: many experts hit, ≤ 128
QWEN_PREFILL: dict[str, Any] = {
    "latency_s": 0.09,
    "reqs": [[512, 0], [300, 0]],
    "sampled": 2,
    "experts_active": QWEN_PREFILL_ACTIVE,
}
QWEN_MIXED_ACTIVE = [60 + (i * 11) % 41 for i in range(48)]
QWEN_MIXED: dict[str, Any] = {
    "latency_s": 0.05,
    "reqs": [[256, 512], [1, 900]],
    "sampled": 1,
    "experts_active": QWEN_MIXED_ACTIVE,
}


def test_qwen3_decode_pass_by_hand() -> None:
    """One decode pass of Qwen3-30B-A3B, every term written out.

    Per layer: attn = 2048·32·128 + 2·2048·4·128 + 32·128·2048 = 8,388,608 + 2,097,152 + 8,388,608
    = 18,874,368; router = 2048·128 = 262,144; expert = 3·2048·768 = 4,718,592; KV elems = 2·4·128 = 1024.
    reqs [[1,100],[1,2000],[1,37]]: T = 3, s = 3, Σ_i (c_i + n_i) = 101 + 2001 + 38 = 2140, and with n = 1
    pairs_i = c_i + 1, so Σ pairs = 2140. Σ a_l = 766 (QWEN_ACTIVE).
    """
    assert sum(QWEN_ACTIVE) == 766
    # bytes (all bf16, 2 B):
    dense = 2 * 48 * (18_874_368 + 262_144)  # = 1,837,105,152
    routed = 2 * 4_718_592 * 766  # = 7,228,882,944
    lm_head = 2 * 151_936 * 2048  # s > 0: = 622,329,856
    embedding = 2 * 2048 * 3  # = 12,288
    kv = 2 * 1024 * 48 * 2140  # = 210,370,560
    total_bytes = dense + routed + lm_head + embedding + kv  # = 9,898,700,800
    assert total_bytes == 9_898_700_800
    # FLOPs:
    linear = 2 * 3 * 48 * (18_874_368 + 8 * 4_718_592 + 262_144)  # k = 8 experts, not a_l: = 16,382,951,424
    lm_flops = 2 * 3 * 151_936 * 2048  # = 1,866,989,568
    attention = 48 * 2 * 32 * (128 + 128) * 2140  # = 48·16384·2140 = 1,682,964,480
    total_flops = linear + lm_flops + attention  # = 19,932,905,472
    assert total_flops == 19_932_905_472
    # the loop reference agrees with the written-out numbers
    ref = ref_pass(qwen3_model(), QWEN_DECODE["reqs"], 3, QWEN_ACTIVE)
    assert (ref["bytes"], ref["flops"]) == (total_bytes, total_flops)

    structure = model_structure(load("qwen3-30b-a3b.json"))
    out = score([QWEN_DECODE], structure=structure)
    decode = out["phases"]["decode"]
    assert set(out["phases"]) == {"decode", "all"}
    assert decode["bytes_by_part"] == {
        "dense_weights": approx(dense),
        "routed_experts": approx(routed),
        "lm_head": approx(lm_head),
        "embedding": approx(embedding),
        "kv_cache": approx(kv),
    }
    assert decode["flops_by_part"] == {
        "linear_layers": approx(linear),
        "lm_head": approx(lm_flops),
        "attention": approx(attention),
    }
    # S-MBU = 9,898,700,800 / (0.02 s · 1 · 3.35e12) ≈ 0.14774; S-MFU = 19,932,905,472 / (0.02 · 989.4e12)
    assert decode["s_mbu"] == approx(total_bytes / (0.02 * BW))
    assert decode["s_mfu"] == approx(total_flops / (0.02 * PEAK))
    assert decode["s_mbu"] == approx(0.14774180298507463)
    assert decode["tokens_per_s"] == approx(3 / 0.02)
    assert decode["sampled_tokens"] == 3
    assert decode["expert_activation_source"] == "measured"
    assert out["flops_convention"] == "model"
    # one pass: its percentiles are its own value
    assert decode["s_mbu_p50"] == approx(decode["s_mbu"])
    assert decode["s_mfu_p90"] == approx(decode["s_mfu"])
    # experts: mean over the 48 MoE layers of the measured a_l = 766 / 48
    assert out["experts"]["decode"]["mean_active"] == approx(766 / 48)
    # uniform expectation E·(1 − (1 − k/E)^T) = 128·(1 − (120/128)^3)
    assert out["experts"]["decode"]["uniform_expectation"] == approx(128 * (1 - (120 / 128) ** 3))


def test_qwen3_prefill_and_mixed_phases() -> None:
    """Prefill [[512,0],[300,0]] s=2 is `prefill`; [[256,512],[1,900]] s=1 (a non-final chunk riding with a
    decode) is `mixed`; `all` sums the three passes.

    Prefill: T = 812, pairs = 512·513/2 + 300·301/2 = 131,328 + 45,150 = 176,478, KV slots 812 per layer.
    Mixed: T = 257, pairs = (256·512 + 256·257/2) + (900 + 1) = 131,072 + 32,896 + 901 = 164,869,
    KV slots (512 + 256) + (900 + 1) = 1669 per layer; only the decode request samples (s = 1).
    """
    model = qwen3_model()
    pre = ref_pass(model, QWEN_PREFILL["reqs"], 2, QWEN_PREFILL_ACTIVE)
    mix = ref_pass(model, QWEN_MIXED["reqs"], 1, QWEN_MIXED_ACTIVE)
    dec = ref_pass(model, QWEN_DECODE["reqs"], 3, QWEN_ACTIVE)
    assert pre["attention"] == 48 * 16384 * 176_478
    assert mix["attention"] == 48 * 16384 * 164_869
    assert mix["kv_cache"] == 2 * 1024 * 48 * 1669
    assert mix["lm_head_flops"] == 2 * 1 * 151_936 * 2048

    structure = model_structure(load("qwen3-30b-a3b.json"))
    out = score([QWEN_PREFILL, QWEN_DECODE, QWEN_MIXED], structure=structure)
    assert set(out["phases"]) == {"prefill", "decode", "mixed", "all"}
    check_phase(out["phases"]["prefill"], [pre], [0.09])
    check_phase(out["phases"]["mixed"], [mix], [0.05])
    check_phase(out["phases"]["decode"], [dec], [0.02])
    check_phase(out["phases"]["all"], [pre, dec, mix], [0.09, 0.02, 0.05])
    assert out["phases"]["mixed"]["sampled_tokens"] == 1
    assert out["phases"]["all"]["sampled_tokens"] == 6


def test_phase_edges() -> None:
    """A 1-token prompt with c = 0 is prefill (not decode); a pass with sampled 0 reads no lm_head."""
    structure = model_structure(load("qwen3-30b-a3b.json"))
    one_token_prompt = {"latency_s": 0.01, "reqs": [[1, 0], [1, 0]], "sampled": 0, "experts_active": [8] * 48}
    out = score([one_token_prompt], structure=structure)
    assert set(out["phases"]) == {"prefill", "all"}
    prefill = out["phases"]["prefill"]
    assert prefill["bytes_by_part"]["lm_head"] == 0.0
    assert prefill["flops_by_part"]["lm_head"] == 0.0
    ref = ref_pass(qwen3_model(), [[1, 0], [1, 0]], 0, [8] * 48)
    check_phase(prefill, [ref], [0.01])


# ---------------------------------------------------------------------------------------------------------
# Case 2: DeepSeek-V2-Lite (MLA, first_k_dense_replace 1, 2 shared experts).
# ---------------------------------------------------------------------------------------------------------

DS_DECODE_ACTIVE = [6 + (i * 5) % 7 for i in range(26)]  # 2 tokens · k=6: a_l in [6, 12]
DS_PREFILL_ACTIVE = [30 + (i * 3) % 19 for i in range(26)]
DS_DECODE: dict[str, Any] = {
    "latency_s": 0.015,
    "reqs": [[1, 50], [1, 700]],
    "sampled": 2,
    "experts_active": DS_DECODE_ACTIVE,
}
DS_PREFILL: dict[str, Any] = {"latency_s": 0.04, "reqs": [[64, 0]], "sampled": 1, "experts_active": DS_PREFILL_ACTIVE}


def test_deepseek_v2_lite_mla_dense_layer_and_k() -> None:
    """Decode [[1,50],[1,700]] s=2 and prefill [[64,0]] s=1 on DeepSeek-V2-Lite with an fp8 KV cache.

    - attention FLOPs per pair per layer 2·H·(d_qk + d_v) = 2·16·(192 + 128) = 10,240 (d_qk = nope + rope,
      d_v = v_head_dim); decode pairs 51 + 701 = 752, prefill 64·65/2 = 2080, on all 27 layers;
    - KV elements per token per layer r_kv + rope = 576, at b_kv = 1 (fp8), not the weights' 2 bytes:
      decode 1 · 576 · 27 · (51 + 701) = 11,695,104 B;
    - dense weights: 27·13,762,560 + 67,239,936 (layer 0, intermediate_size) + 26·(17,301,504 + 131,072)
      = 371,589,120 + 67,239,936 + 453,246,976 = 892,076,032 params;
    - linear per token: dense + 26·k·expert = 892,076,032 + 26·6·8,650,752 (k = 6, never a_l).
    """
    model = deepseek_v2_lite_model()
    widths = {"weights": "bfloat16", "experts": "bfloat16", "embeddings": "bfloat16", "kv": "fp8"}
    dec = ref_pass(model, DS_DECODE["reqs"], 2, DS_DECODE_ACTIVE, b_kv=1.0)
    pre = ref_pass(model, DS_PREFILL["reqs"], 1, DS_PREFILL_ACTIVE, b_kv=1.0)
    assert dec["attention"] == 27 * 10_240 * 752
    assert pre["attention"] == 27 * 10_240 * 2080
    assert dec["kv_cache"] == 11_695_104
    assert dec["dense_weights"] == 2 * 892_076_032
    assert dec["linear_layers"] == 2 * 2 * (892_076_032 + 26 * 6 * 8_650_752)

    structure = model_structure(load("deepseek-v2-lite.json"))
    out = score([DS_DECODE, DS_PREFILL], structure=structure, widths=widths)
    check_phase(out["phases"]["decode"], [dec], [0.015])
    check_phase(out["phases"]["prefill"], [pre], [0.04])
    check_phase(out["phases"]["all"], [dec, pre], [0.015, 0.04])
    # linear FLOPs with Σ a_l instead of k would differ: the case discriminates (pitfall 3)
    with_a_l = 2 * 2 * (892_076_032) + 2 * 2 * 8_650_752 * sum(DS_DECODE_ACTIVE) / 26
    assert out["phases"]["decode"]["flops_by_part"]["linear_layers"] != approx(with_a_l)
    # expert-activation mean over the 26 MoE layers only (the dense layer 0 never enters: pitfall 3)
    experts = out["experts"]
    assert experts["num_moe_layers"] == 26
    assert experts["decode"]["mean_active_per_layer"] == [approx(a) for a in DS_DECODE_ACTIVE]
    assert experts["decode"]["mean_active"] == approx(sum(DS_DECODE_ACTIVE) / 26)
    assert experts["prefill"]["mean_active"] == approx(sum(DS_PREFILL_ACTIVE) / 26)
    assert experts["all"]["mean_active"] == approx((sum(DS_DECODE_ACTIVE) + sum(DS_PREFILL_ACTIVE)) / 2 / 26)


# ---------------------------------------------------------------------------------------------------------
# Case 3: sliding window (tiny gpt_oss: alternating layer_types, sliding_window 4).
# ---------------------------------------------------------------------------------------------------------

TINY_GPT_OSS: dict[str, Any] = {
    "model_type": "gpt_oss",
    "hidden_size": 16,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 8,
    "num_local_experts": 4,
    "num_experts_per_tok": 2,
    "intermediate_size": 8,
    "vocab_size": 32,
    "sliding_window": 4,
    "layer_types": ["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}


def tiny_gpt_oss_model() -> dict[str, Any]:
    """d = 16, H = 4, Hkv = 2, dh = 8: attn = 16·4·8 + 2·16·2·8 + 4·8·16 = 1536; router 16·4 = 64;
    expert 3·16·8 = 384; KV elems 2·2·8 = 32; FLOPs per pair 2·4·(8 + 8) = 128. Layers 0, 2 slide (w = 4)."""
    windows = [4, None, 4, None]
    layers = [gqa_layer(16, 4, 2, 8, ffn=0, router=16 * 4, moe=True, window=w) for w in windows]
    return {"d": 16, "V": 32, "E": 4, "k": 2, "expert": 3 * 16 * 8, "layers": layers}


# c well below w (1), c = w−1 (3), c = w (4), c above w (10); n > 1 crossing the window: [5, 2] (positions
# 2..6), [7, 0] (positions 0..6), [2, 3] (positions 3, 4); [3, 1] stays inside (positions 1..3).
SW_DECODE: dict[str, Any] = {
    "latency_s": 0.001,
    "reqs": [[1, 1], [1, 3], [1, 4], [1, 10]],
    "sampled": 4,
    "experts_active": [4, 3, 4, 4],
}
SW_MIXED: dict[str, Any] = {
    "latency_s": 0.002,
    "reqs": [[5, 2], [7, 0], [2, 3], [3, 1], [1, 6]],
    "sampled": 2,
    "experts_active": [4, 4, 4, 4],
}


def test_sliding_window_kv_and_pairs() -> None:
    """Sliding layers: KV slots min(c, w−1) + n, pairs = Σ_j min(c + j + 1, w) (brute force per query).

    Decode, sliding layer: KV (1+1) + (3+1) + (3+1) + (3+1) = 14, pairs min(2,4) + min(4,4) + min(5,4)
    + min(11,4) = 2 + 4 + 4 + 4 = 14; full layer: KV 2 + 4 + 5 + 11 = 22, pairs 22.
    Mixed, sliding layer: [5,2]: KV 2 + 5 = 7, pairs 3+4+4+4+4 = 19; [7,0]: KV 7, pairs 1+2+3+4+4+4+4 = 22;
    [2,3]: KV 3 + 2 = 5, pairs 4+4 = 8; [3,1]: KV 1 + 3 = 4, pairs 2+3+4 = 9; [1,6]: KV 3 + 1 = 4, pairs 4.
    Full layer: [5,2]: KV 7, pairs 5·2 + 15 = 25; [7,0]: 7, 28; [2,3]: 5, 2·3 + 3 = 9; [3,1]: 4, 3 + 6 = 9;
    [1,6]: 7, 7.
    """
    assert [brute_pairs(1, c, 4) for c in (1, 3, 4, 10)] == [2, 4, 4, 4]
    assert brute_pairs(5, 2, 4) == 19
    assert brute_pairs(7, 0, 4) == 22
    assert brute_pairs(2, 3, 4) == 8
    assert brute_pairs(3, 1, 4) == 9
    model = tiny_gpt_oss_model()
    dec = ref_pass(model, SW_DECODE["reqs"], 4, SW_DECODE["experts_active"])
    mix = ref_pass(model, SW_MIXED["reqs"], 2, SW_MIXED["experts_active"])
    # two sliding + two full layers, 32 KV elements each, 2 bytes: decode 2·32·(2·14 + 2·22)
    assert dec["kv_cache"] == 2 * 32 * (2 * 14 + 2 * 22)
    assert dec["attention"] == 128 * (2 * 14 + 2 * 22)
    assert mix["kv_cache"] == 2 * 32 * (2 * (7 + 7 + 5 + 4 + 4) + 2 * (7 + 7 + 5 + 4 + 7))
    assert mix["attention"] == 128 * (2 * (19 + 22 + 8 + 9 + 4) + 2 * (25 + 28 + 9 + 9 + 7))

    structure = model_structure(TINY_GPT_OSS)
    out = score([SW_DECODE, SW_MIXED], structure=structure)
    assert set(out["phases"]) == {"decode", "mixed", "all"}
    check_phase(out["phases"]["decode"], [dec], [0.001])
    check_phase(out["phases"]["mixed"], [mix], [0.002])


# ---------------------------------------------------------------------------------------------------------
# Case 4: time weighting, warm-up passes excluded.
# ---------------------------------------------------------------------------------------------------------


def test_time_weighted_utilization_excludes_warmup() -> None:
    """Phase S-MBU = Σ bytes / (Σ latency · N · BW), not the mean of per-pass ratios; warm-up passes dropped."""
    tiny: dict[str, Any] = {"latency_s": 0.001, "reqs": [[1, 10]], "sampled": 1, "experts_active": [8] * 48}
    big_reqs = [[1, 3000 + 100 * i] for i in range(16)]
    big: dict[str, Any] = {
        "latency_s": 0.05,
        "reqs": big_reqs,
        "sampled": 16,
        "experts_active": [min(128, 60 + i) for i in range(48)],
    }
    warm = {"warmup": True, "latency_s": 1e-6, "reqs": [[1, 1_000_000]], "sampled": 1, "experts_active": [128] * 48}
    model = qwen3_model()
    r_tiny = ref_pass(model, tiny["reqs"], 1, tiny["experts_active"])
    r_big = ref_pass(model, big_reqs, 16, big["experts_active"])
    mbu = (r_tiny["bytes"] + r_big["bytes"]) / ((0.001 + 0.05) * 1 * BW)
    mfu = (r_tiny["flops"] + r_big["flops"]) / ((0.001 + 0.05) * 1 * PEAK)
    per_pass_mbu = [r_tiny["bytes"] / (0.001 * BW), r_big["bytes"] / (0.05 * BW)]
    mean_of_ratios = sum(per_pass_mbu) / 2
    assert not math.isclose(mbu, mean_of_ratios, rel_tol=1e-3)  # the case discriminates

    structure = model_structure(load("qwen3-30b-a3b.json"))
    out = score([warm, tiny, warm, big], structure=structure)
    assert out["pass_records"] == {"total": 4, "warmup": 2, "scored": 2}
    decode = out["phases"]["decode"]
    assert decode["passes"] == 2
    check_phase(decode, [r_tiny, r_big], [0.001, 0.05])
    assert decode["s_mbu"] == approx(mbu)
    assert decode["s_mfu"] == approx(mfu)
    # the distribution is reported too: p50 of two values is their mean (type 7)
    assert decode["s_mbu_p50"] == approx(pct(per_pass_mbu, 50))
    assert decode["s_mbu_p90"] == approx(pct(per_pass_mbu, 90))
    assert decode["step_latency_s"]["p50"] == approx(pct([0.001, 0.05], 50))


# ---------------------------------------------------------------------------------------------------------
# Case 5: unmeasured experts (experts_active null).
# ---------------------------------------------------------------------------------------------------------


def test_unmeasured_experts_null_by_default() -> None:
    structure = model_structure(load("qwen3-30b-a3b.json"))
    unmeasured = {**QWEN_DECODE, "experts_active": None}
    out = score([unmeasured], structure=structure)
    decode = out["phases"]["decode"]
    assert decode["bytes"] is None
    assert decode["s_mbu"] is None
    assert decode["s_mbu_p50"] is None
    assert decode["bytes_by_part"]["routed_experts"] is None
    assert decode["expert_activation_source"] == "none"
    assert out["experts"]["estimate_policy"] == "null_when_unmeasured"
    # FLOPs do not depend on routing: still the hand value (k experts per token)
    ref = ref_pass(qwen3_model(), QWEN_DECODE["reqs"], 3, None)
    assert decode["flops"] == approx(ref["flops"])
    assert decode["s_mfu"] == approx(ref["flops"] / (0.02 * PEAK))
    # the non-routed parts are still known
    assert decode["bytes_by_part"]["kv_cache"] == approx(ref["kv_cache"])
    assert any("experts_active" in note for note in out["notes"])


def test_unmeasured_experts_uniform_estimate() -> None:
    """With expert_estimate: a_l = E·(1 − (1 − k/E)^T) per MoE layer = 128·(1 − (120/128)^3) for T = 3
    = 128·(1 − 0.823974609375) = 22.5312500 experts, on each of the 48 MoE layers."""
    structure = model_structure(load("qwen3-30b-a3b.json"))
    per_layer = 128 * (1 - (1 - 8 / 128) ** 3)
    assert per_layer == approx(22.53125)
    unmeasured = {**QWEN_DECODE, "experts_active": None}
    out = score([unmeasured], structure=structure, expert_estimate=True)
    ref = ref_pass(qwen3_model(), QWEN_DECODE["reqs"], 3, [per_layer] * 48)
    decode = out["phases"]["decode"]
    assert decode["expert_activation_source"] == "uniform_estimate"
    assert out["experts"]["estimate_policy"] == "uniform_estimate_when_unmeasured"
    assert decode["bytes_by_part"]["routed_experts"] == approx(2 * 4_718_592 * 48 * per_layer)
    check_phase(decode, [ref], [0.02])
    assert out["experts"]["decode"]["estimated_active"] == approx(per_layer)
    # one measured pass beside an estimated one: the phase says `mixed`
    out = score([QWEN_DECODE, unmeasured], structure=structure, expert_estimate=True)
    assert out["phases"]["decode"]["expert_activation_source"] == "mixed"
    measured = ref_pass(qwen3_model(), QWEN_DECODE["reqs"], 3, QWEN_ACTIVE)
    check_phase(out["phases"]["decode"], [measured, ref], [0.02, 0.02])


# ---------------------------------------------------------------------------------------------------------
# Case 6: request latency and throughput.
# ---------------------------------------------------------------------------------------------------------

REQUESTS: list[dict[str, Any]] = [
    # warm-up: excluded whatever its size (it would otherwise widen the window to 100 s)
    {
        "id": "w0",
        "warmup": True,
        "prompt_tokens": 4,
        "output_tokens": 50,
        "t_submit_ns": 0,
        "t_first_token_ns": 1 * S,
        "t_done_ns": 100 * S,
        "token_times_ns": [1 * S, 100 * S],
        "error": None,
    },
    {
        "id": "r1",
        "warmup": False,
        "prompt_tokens": 10,
        "output_tokens": 4,
        "t_submit_ns": 1000 * MS,
        "t_first_token_ns": 1250 * MS,
        "t_done_ns": 2000 * MS,
        "token_times_ns": [1250 * MS, 1500 * MS, 1750 * MS, 2000 * MS],
        "error": None,
    },
    {
        "id": "r2",
        "warmup": False,
        "prompt_tokens": 20,
        "output_tokens": 3,
        "t_submit_ns": 1100 * MS,
        "t_first_token_ns": 1600 * MS,
        "t_done_ns": 2600 * MS,
        "token_times_ns": [1600 * MS, 1900 * MS, 2600 * MS],
        "error": None,
    },
    # errored: counted in the error rate, never in latency or token throughput
    {
        "id": "r3",
        "warmup": False,
        "prompt_tokens": 7,
        "output_tokens": None,
        "t_submit_ns": 1200 * MS,
        "t_first_token_ns": 1210 * MS,
        "t_done_ns": 2200 * MS,
        "error": "timeout",
    },
    # one output token: a TTFT, no TPOT, no inter-token gap
    {
        "id": "r4",
        "warmup": False,
        "prompt_tokens": 5,
        "output_tokens": 1,
        "t_submit_ns": 1300 * MS,
        "t_first_token_ns": 1400 * MS,
        "t_done_ns": 1400 * MS,
        "token_times_ns": [1400 * MS],
        "error": None,
    },
]


def test_request_latency_by_hand() -> None:
    """TTFT = t_first − t_submit (queueing included): r1 0.25, r2 0.5, r4 0.1 s.
    TPOT = (e2e − TTFT)/(out − 1): r1 (1.0 − 0.25)/3 = 0.25, r2 (1.5 − 0.5)/2 = 0.5.
    ITL gaps: r1 0.25, 0.25, 0.25; r2 0.3, 0.7.  e2e: r1 1.0, r2 1.5, r4 0.1.
    Window: first measured submit 1.0 s → last measured done 2.6 s = 1.6 s; 3 completed, 1 errored of 4.
    """
    out = score(None, structure=None, requests=REQUESTS)
    assert out["requests"] == {
        "total": 5,
        "measured": 4,
        "warmup": 1,
        "completed": 3,
        "errors": 1,
        "error_rate": approx(1 / 4),
    }
    lat = out["latency"]
    expected = {
        "ttft_s": [0.25, 0.5, 0.1],
        "tpot_s": [(1.0 - 0.25) / 3, (1.5 - 0.5) / 2],
        "itl_s": [0.25, 0.25, 0.25, 0.3, 0.7],
        "e2e_latency_s": [1.0, 1.5, 0.1],
    }
    for key, values in expected.items():
        stats = lat[key]
        assert stats["count"] == len(values), key
        assert stats["mean"] == approx(sum(values) / len(values)), key
        for q in (50, 90, 99):
            assert stats[f"p{q}"] == approx(pct(values, q)), (key, q)
        assert stats["max"] == approx(max(values)), key
    tp = out["throughput"]
    wall = 2.6 - 1.0
    assert tp["wall_s"] == approx(wall)
    assert tp["requests_per_s"] == approx(3 / wall)
    assert tp["output_tokens"] == 4 + 3 + 1
    assert tp["input_tokens"] == 10 + 20 + 5
    assert tp["output_tokens_per_s"] == approx(8 / wall)
    assert tp["input_tokens_per_s"] == approx(35 / wall)


# ---------------------------------------------------------------------------------------------------------
# Case 7: energy (counter, trapezoid with uneven spacing, per-phase attribution, none).
# ---------------------------------------------------------------------------------------------------------

# One request over [0, 10 s] with 5 output tokens; timed passes: prefill [0, 2 s] (T = 8), decode [2, 6 s] and
# [7, 10 s] (T = 1 each); [6, 7 s] is an idle gap.
E_REQUESTS = [
    {
        "id": "e1",
        "warmup": False,
        "prompt_tokens": 8,
        "output_tokens": 5,
        "t_submit_ns": 0,
        "t_first_token_ns": 2 * S,
        "t_done_ns": 10 * S,
        "error": None,
    }
]
E_PASSES = [
    {"t_start_ns": 0, "t_end_ns": 2 * S, "reqs": [[8, 0]], "sampled": 1, "experts_active": [2, 2, 2, 2]},
    {"t_start_ns": 2 * S, "t_end_ns": 6 * S, "reqs": [[1, 8]], "sampled": 1, "experts_active": [2, 2, 2, 2]},
    {"t_start_ns": 7 * S, "t_end_ns": 10 * S, "reqs": [[1, 9]], "sampled": 1, "experts_active": [2, 2, 2, 2]},
]


def trapezoid_energy(times_s: Sequence[float], power_w: Sequence[float], a: float, b: float) -> float:
    """∫_a^b P dt with P linear between samples (trapezoid rule), by hand, clipped to the samples' span."""
    total = 0.0
    for j in range(len(times_s) - 1):
        t0, t1, p0, p1 = times_s[j], times_s[j + 1], power_w[j], power_w[j + 1]
        lo, hi = max(a, t0), min(b, t1)
        if hi <= lo:
            continue
        p_lo = p0 + (p1 - p0) * (lo - t0) / (t1 - t0)
        p_hi = p0 + (p1 - p0) * (hi - t0) / (t1 - t0)
        total += 0.5 * (p_lo + p_hi) * (hi - lo)
    return total


def test_energy_counter() -> None:
    """Counter readings at 0, 2, 6, 7, 10 s: 1000, 1500, 2700, 2900, 3800 J (power_w a deliberately wrong
    50 W, to show the counter is used). Window [0, 10 s]: 3800 − 1000 = 2800 J; prefill 1500 − 1000 = 500 J;
    decode (2700 − 1500) + (3800 − 2900) = 2100 J; unattributed (gap 6–7 s) 200 J.
    """
    times = [0, 2, 6, 7, 10]
    counter = [1000.0, 1500.0, 2700.0, 2900.0, 3800.0]
    power = [{"t_ns": t * S, "gpu": 0, "power_w": 50.0, "energy_j": e} for t, e in zip(times, counter, strict=True)]
    out = score(E_PASSES, structure=model_structure(TINY_GPT_OSS), requests=E_REQUESTS, power=power)
    energy = out["energy"]
    assert energy["energy_source"] == "counter"
    assert energy["energy_j"] == approx(2800.0)
    assert energy["energy_kwh"] == approx(2800.0 / 3.6e6)
    assert energy["energy_per_output_token_j"] == approx(2800.0 / 5)
    assert energy["energy_per_request_j"] == approx(2800.0 / 1)
    assert energy["mean_power_w"] == approx(2800.0 / 10)
    assert energy["phase_energy_j"] == {"prefill": approx(500.0), "decode": approx(2100.0)}
    assert energy["phase_energy_per_token_j"] == {"prefill": approx(500.0 / 8), "decode": approx(2100.0 / 2)}
    assert energy["unattributed_energy_j"] == approx(200.0)
    # sampling period: median of the gaps 2, 4, 1, 3 s = 2.5 s
    assert energy["sampling_period_s"] == approx(2.5)


def test_energy_trapezoid_uneven_two_gpus() -> None:
    """GPU 0 samples at 0, 0.5, 3, 3.2, 8, 10 s: 100, 300, 200, 400, 250, 150 W. Trapezoid over [0, 10]:
    ½(100+300)·0.5 + ½(300+200)·2.5 + ½(200+400)·0.2 + ½(400+250)·4.8 + ½(250+150)·2
    = 100 + 625 + 60 + 1560 + 400 = 2745 J. GPU 1 at 0, 4, 10 s: 200, 200, 500 W → 800 + 2100 = 2900 J.
    Per pass, P is linear between samples, interpolated at the pass edges (2, 6, 7 s).
    """
    g0_t, g0_p = [0, 0.5, 3, 3.2, 8, 10], [100.0, 300.0, 200.0, 400.0, 250.0, 150.0]
    g1_t, g1_p = [0, 4, 10], [200.0, 200.0, 500.0]
    assert trapezoid_energy(g0_t, g0_p, 0, 10) == approx(2745.0)
    assert trapezoid_energy(g1_t, g1_p, 0, 10) == approx(2900.0)
    power = [{"t_ns": round(t * S), "gpu": 0, "power_w": p} for t, p in zip(g0_t, g0_p, strict=True)]
    power += [{"t_ns": round(t * S), "gpu": 1, "power_w": p} for t, p in zip(g1_t, g1_p, strict=True)]

    def both(a: float, b: float) -> float:
        return trapezoid_energy(g0_t, g0_p, a, b) + trapezoid_energy(g1_t, g1_p, a, b)

    ceilings = Ceilings(2, BW, PEAK, "bfloat16", "H100 SXM5 datasheet")
    out = score(E_PASSES, structure=model_structure(TINY_GPT_OSS), requests=E_REQUESTS, power=power, ceilings=ceilings)
    energy = out["energy"]
    assert energy["energy_source"] == "sampled"
    total = 2745.0 + 2900.0
    assert energy["energy_j"] == approx(total)
    assert energy["energy_per_output_token_j"] == approx(total / 5)
    prefill = both(0, 2)
    decode = both(2, 6) + both(7, 10)
    assert energy["phase_energy_j"] == {"prefill": approx(prefill), "decode": approx(decode)}
    assert energy["unattributed_energy_j"] == approx(both(6, 7))
    assert energy["coverage_fraction"] == approx(1.0)
    # mean power: Σ_g E_g / covered seconds = 274.5 + 290 W
    assert energy["mean_power_w"] == approx(274.5 + 290.0)


def test_no_power_is_null_not_zero() -> None:
    cost = CostInputs(num_gpus=1, pricing="rental", usd_per_gpu_hour=2.0, usd_per_kwh=0.1)
    out = score(E_PASSES, structure=model_structure(TINY_GPT_OSS), requests=E_REQUESTS, cost=cost)
    energy = out["energy"]
    assert energy["energy_source"] == "none"
    for key in ("energy_j", "energy_kwh", "mean_power_w", "energy_per_output_token_j", "energy_per_request_j"):
        assert energy[key] is None, key
    assert energy["phase_energy_j"] is None
    assert out["cost"]["energy_usd"] is None
    assert out["cost"]["total_usd"] is None
    assert out["cost"]["usd_per_1m_output_tokens"] is None
    assert out["cost"]["gpu_usd"] == approx(1 * 2.0 * 10 / 3600)


def test_power_outside_window_is_null_not_zero() -> None:
    # samples only in [20 s, 21 s], the window is [0, 10 s]: nothing measured the window
    power = [{"t_ns": 20 * S, "gpu": 0, "power_w": 300.0}, {"t_ns": 21 * S, "gpu": 0, "power_w": 300.0}]
    cost = CostInputs(num_gpus=1, pricing="rental", usd_per_gpu_hour=2.0, usd_per_kwh=0.1)
    out = score(E_PASSES, structure=model_structure(TINY_GPT_OSS), requests=E_REQUESTS, power=power, cost=cost)
    energy = out["energy"]
    assert energy["energy_j"] is None
    assert energy["mean_power_w"] is None
    assert energy["energy_per_output_token_j"] is None
    assert out["cost"]["energy_usd"] is None


# ---------------------------------------------------------------------------------------------------------
# Case 8: cost.
# ---------------------------------------------------------------------------------------------------------

COUNTER_POWER = [
    {"t_ns": t * S, "gpu": 0, "power_w": 280.0, "energy_j": e}
    for t, e in zip([0, 2, 6, 7, 10], [1000.0, 1500.0, 2700.0, 2900.0, 3800.0], strict=True)
]


def test_cost_rental() -> None:
    """N = 2, 2.5 USD/GPU-h, 0.15 USD/kWh; wall 10 s, energy 2800 J = 2800/3.6e6 kWh, 5 output tokens.
    total = 2·2.5·(10/3600) + (2800/3.6e6)·0.15 USD; per 1M output tokens = total/5·1e6; per request total/1.
    """
    cost = CostInputs(
        num_gpus=2,
        pricing="rental",
        usd_per_gpu_hour=2.5,
        gpu_purchase_usd=30_000.0,
        host_purchase_usd=20_000.0,
        usd_per_kwh=0.15,
    )
    out = score(E_PASSES, structure=model_structure(TINY_GPT_OSS), requests=E_REQUESTS, power=COUNTER_POWER, cost=cost)
    c = out["cost"]
    wall_h = 10 / 3600
    energy_usd = 2800.0 / 3.6e6 * 0.15
    total = 2 * 2.5 * wall_h + energy_usd
    assert c["usd_per_gpu_hour"] == approx(2.5)
    assert c["usd_per_gpu_hour_source"] == "rental"
    assert c["wall_h"] == approx(wall_h)
    assert c["energy_usd"] == approx(energy_usd)
    assert c["energy_cost_source"] == "measured"
    assert c["total_usd"] == approx(total)
    assert c["usd_per_1m_output_tokens"] == approx(total / 5 * 1e6)
    assert c["usd_per_request"] == approx(total / 1)
    # deployment capital = N GPUs + host = 2·30,000 + 20,000
    assert c["deployment_capital_usd"] == approx(80_000.0)
    assert c["inputs"]["usd_per_kwh"] == 0.15


def test_cost_amortized() -> None:
    """(30,000 + 20,000/2) / (4 years · 8766 h · 0.6) = 40,000 / 21,038.4 = 1.90128...USD per GPU-hour."""
    cost = CostInputs(
        num_gpus=2,
        pricing="amortized",
        gpu_purchase_usd=30_000.0,
        host_purchase_usd=20_000.0,
        lifetime_years=4.0,
        utilization=0.6,
        usd_per_kwh=0.15,
    )
    out = score(E_PASSES, structure=model_structure(TINY_GPT_OSS), requests=E_REQUESTS, power=COUNTER_POWER, cost=cost)
    c = out["cost"]
    per_gpu_hour = (30_000.0 + 20_000.0 / 2) / (4.0 * 8766 * 0.6)
    total = 2 * per_gpu_hour * 10 / 3600 + 2800.0 / 3.6e6 * 0.15
    assert c["usd_per_gpu_hour"] == approx(per_gpu_hour)
    assert c["usd_per_gpu_hour_source"] == "amortized"
    assert c["total_usd"] == approx(total)
    assert c["usd_per_1m_output_tokens"] == approx(total / 5 * 1e6)


# ---------------------------------------------------------------------------------------------------------
# Case 9: CSV export.
# ---------------------------------------------------------------------------------------------------------


def test_export_row_units_and_nulls() -> None:
    """Units in the column names; a figure that was not measured is None (empty cell), never 0."""
    structure = model_structure(load("qwen3-30b-a3b.json"))
    unmeasured = {**QWEN_DECODE, "experts_active": None}
    out = score([unmeasured], structure=structure, requests=REQUESTS)  # no power, no cost, no mixed pass
    row = summary_row(MANIFEST, out)
    for name in ("ttft_p50_s", "decode_s_mbu", "energy_per_output_token_j", "usd_per_1m_output_tokens"):
        assert name in row, name
    assert row["ttft_p50_s"] == approx(0.25)
    assert row["tpot_mean_s"] == approx((0.25 + 0.5) / 2)
    assert row["wall_s"] == approx(1.6)
    assert row["decode_s_mfu"] == approx(out["phases"]["decode"]["s_mfu"])
    assert row["error_rate"] == approx(0.25)
    # not measured → None
    assert row["decode_s_mbu"] is None  # experts not measured
    assert row["mixed_s_mbu"] is None  # no mixed pass
    assert row["mixed_passes"] is None
    assert row["energy_j"] is None  # no power
    assert row["energy_per_output_token_j"] is None
    assert row["usd_per_1m_output_tokens"] is None  # no cost inputs
    assert row["dtype_embeddings"] == "bfloat16"  # defaults to weights
    # every time column says seconds; every energy figure joules; no nested values leaked
    for name, value in row.items():
        assert not isinstance(value, dict | list), name
        if any(part in name for part in ("ttft", "tpot", "itl", "e2e_latency", "step_latency", "wall")):
            assert name.endswith("_s"), name
        if name.endswith("energy_j") or "energy_per" in name:
            assert name.endswith("_j"), name
    # a run with no measured request: error rate is None, not 0
    empty = summary_row(MANIFEST, score(None, structure=None))
    assert empty["error_rate"] is None
    assert empty["ttft_p50_s"] is None
    assert empty["wall_s"] is None


# ---------------------------------------------------------------------------------------------------------
# Edge cases that must not crash (and must not report zeros for unknowns).
# ---------------------------------------------------------------------------------------------------------


def test_empty_run() -> None:
    structure = model_structure(load("qwen3-30b-a3b.json"))
    cost = CostInputs(num_gpus=1, pricing="rental", usd_per_gpu_hour=2.0, usd_per_kwh=0.1)
    out = score([], structure=structure, cost=cost)
    assert out["phases"] == {}
    assert out["pass_records"] == {"total": 0, "warmup": 0, "scored": 0}
    assert out["requests"]["error_rate"] is None
    assert out["throughput"]["wall_s"] is None
    assert out["latency"]["ttft_s"]["count"] == 0
    assert out["energy"]["energy_j"] is None
    assert out["cost"]["total_usd"] is None
    # only warm-up passes: phases empty as well
    out = score([{**QWEN_DECODE, "warmup": True}], structure=structure)
    assert out["phases"] == {}
    assert out["pass_records"] == {"total": 1, "warmup": 1, "scored": 0}


def test_all_requests_failed() -> None:
    reqs = [
        {"id": "f1", "warmup": False, "t_submit_ns": 0, "t_done_ns": 1 * S, "error": "boom", "output_tokens": None},
        {"id": "f2", "warmup": False, "t_submit_ns": 1 * MS, "error": "refused"},
    ]
    cost = CostInputs(num_gpus=1, pricing="rental", usd_per_gpu_hour=2.0, usd_per_kwh=0.1)
    power = [{"t_ns": 0, "gpu": 0, "power_w": 100.0}, {"t_ns": 1 * S, "gpu": 0, "power_w": 100.0}]
    out = score(None, structure=None, requests=reqs, power=power, cost=cost)
    assert out["requests"]["completed"] == 0
    assert out["requests"]["errors"] == 2
    assert out["requests"]["error_rate"] == approx(1.0)
    for key in ("ttft_s", "tpot_s", "itl_s", "e2e_latency_s"):
        assert out["latency"][key]["count"] == 0
        assert out["latency"][key]["p50"] is None
    assert out["throughput"]["output_tokens"] is None
    assert out["throughput"]["output_tokens_per_s"] is None
    assert out["energy"]["energy_per_output_token_j"] is None
    assert out["energy"]["energy_per_request_j"] is None
    assert out["cost"]["usd_per_1m_output_tokens"] is None
    assert out["cost"]["usd_per_request"] is None


def dense_only_structure() -> ModelStructure:
    """A model with no MoE layer (families refuse such configs, so built directly): 2 dense layers,
    d = 8, H = Hkv = 2, dh = 4: attn 8·2·4 + 2·8·2·4 + 2·4·8 = 64 + 128 + 64 = 256, KV elems 2·2·4 = 16,
    dense FFN 3·8·16 = 384, V = 10 (E = 2, k = 1 only to satisfy ModelStructure; no layer routes)."""
    layer = LayerStructure(
        index=0,
        kind="dense",
        attention="mha",
        attn_params=256,
        ffn_params=384,
        router_params=0,
        num_heads=2,
        qk_head_dim=4,
        v_head_dim=4,
        kv_elems_per_token=16,
    )
    return ModelStructure(
        model_type="toy-dense",
        hidden_size=8,
        vocab_size=10,
        num_experts=2,
        top_k=1,
        expert_params=24,
        tie_word_embeddings=False,
        layers=(layer, LayerStructure(**{**layer.__dict__, "index": 1})),
    )


def dense_only_model() -> dict[str, Any]:
    base = {"attn": 256, "ffn": 384, "router": 0, "moe": False, "H": 2, "dqk": 4, "dv": 4, "kv": 16, "window": None}
    return {"d": 8, "V": 10, "E": 2, "k": 1, "expert": 24, "layers": [dict(base), dict(base)]}


def test_model_without_moe_layers_measured_empty_list() -> None:
    out = score(
        [{"latency_s": 0.01, "reqs": [[1, 3]], "sampled": 1, "experts_active": []}], structure=dense_only_structure()
    )
    ref = ref_pass(dense_only_model(), [[1, 3]], 1, [])
    decode = out["phases"]["decode"]
    assert decode["expert_activation_source"] == "not_applicable"
    check_phase(decode, [ref], [0.01])


def test_model_without_moe_layers_null_experts() -> None:
    out = score(
        [{"latency_s": 0.01, "reqs": [[1, 3]], "sampled": 1, "experts_active": None}],
        structure=dense_only_structure(),
    )
    ref = ref_pass(dense_only_model(), [[1, 3]], 1, [])
    decode = out["phases"]["decode"]
    assert decode["expert_activation_source"] == "not_applicable"
    assert decode["bytes"] == approx(ref["bytes"])
    assert decode["s_mbu"] == approx(ref["bytes"] / (0.01 * BW))


def test_missing_peak_is_an_error() -> None:
    with pytest.raises(CapbenchError):
        Ceilings(1, BW, 0.0, "bfloat16", "broken profile")
    with pytest.raises(CapbenchError):
        Ceilings(1, float("nan"), PEAK, "bfloat16", "broken profile")


def test_no_ceilings_is_null_not_zero() -> None:
    structure = model_structure(load("qwen3-30b-a3b.json"))
    out = score([QWEN_DECODE], structure=structure, ceilings=None)
    decode = out["phases"]["decode"]
    assert decode["s_mbu"] is None
    assert decode["s_mfu"] is None
    assert decode["bytes"] is not None  # bytes and FLOPs do not need the ceilings
    assert out["hardware"]["null_reason"]


def test_full_precision_no_rounding() -> None:
    """A value whose 2-decimal rounding would differ a lot (pitfall 8): S-MBU kept at full precision."""
    structure = model_structure(load("qwen3-30b-a3b.json"))
    out = score([QWEN_DECODE], structure=structure)
    ref = ref_pass(qwen3_model(), QWEN_DECODE["reqs"], 3, QWEN_ACTIVE)
    s_mfu = out["phases"]["decode"]["s_mfu"]
    assert s_mfu == approx(ref["flops"] / (0.02 * PEAK))
    assert s_mfu != round(s_mfu, 2)
