"""Golden parameter counts of published MoE configs (docs/metrics.md §1).

The configs in tests/data/models/ are published config.json files: the five of shared/models
(Mixtral-8x7B, Qwen1.5-MoE-A2.7B, Qwen3-30B-A3B, DeepSeek-V2-Lite, OLMoE-1B-7B, copied verbatim) plus
gpt-oss-20b, gpt-oss-120b, dbrx-instruct and DeepSeek-V3, written from the files their model repositories
publish.
Counts are weights only: biases, norms and gpt-oss attention sinks are excluded.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from capbench.arch.families import model_structure
from tests.support.paths import DATA

MODELS = DATA / "models"


def load(name: str) -> dict[str, Any]:
    config: dict[str, Any] = json.loads((MODELS / name).read_text())
    return config


# (file, total B, active B): the check values of docs/metrics.md §1.
CHECK_VALUES = [
    ("mixtral-8x7b.json", 46.70, 12.88),
    ("qwen1.5-moe-a2.7b.json", 14.32, 2.69),
    ("qwen3-30b-a3b.json", 30.53, 3.35),
    ("deepseek-v2-lite.json", 15.71, 2.66),
    ("olmoe-1b-7b.json", 6.92, 1.28),
]


@pytest.mark.parametrize(("name", "total_b", "active_b"), CHECK_VALUES)
def test_check_values(name: str, total_b: float, active_b: float) -> None:
    structure = model_structure(load(name))
    assert abs(round(structure.total_params / 1e9, 2) - total_b) < 0.005
    assert abs(round(structure.active_params / 1e9, 2) - active_b) < 0.005


def test_mixtral_8x7b_exact() -> None:
    # d=4096, L=32, H=32, Hkv=8, dh=4096/32=128, E=8, k=2, f_e=14336, V=32000, untied.
    attn = 4096 * 32 * 128 + 2 * 4096 * 8 * 128 + 32 * 128 * 4096  # 41,943,040
    expert = 3 * 4096 * 14336  # 176,160,768
    router = 4096 * 8  # 32,768
    embed = 32000 * 4096  # 131,072,000 (embedding and lm_head each)
    total = 32 * (attn + 8 * expert + router) + 2 * embed
    active = total - 32 * (8 - 2) * expert
    assert (attn, expert, total, active) == (41_943_040, 176_160_768, 46_702_526_464, 12_879_659_008)
    structure = model_structure(load("mixtral-8x7b.json"))
    assert structure.total_params == total
    assert structure.active_params == active
    assert structure.num_moe_layers == 32
    assert {layer.kv_elems_per_token for layer in structure.layers} == {2 * 8 * 128}
    assert all(layer.sliding_window is None for layer in structure.layers)  # "sliding_window": null


def test_deepseek_v2_lite_exact() -> None:
    # d=2048, L=27, H=16, MLA with q_lora_rank=null, r_kv=512, nope=128, rope=64, v=128; layer 0 dense
    # (first_k_dense_replace=1, f=10944), layers 1..26 MoE: E=64, k=6, f_e=1408, 2 shared experts; V=102400.
    q = 2048 * 16 * (128 + 64)  # 6,291,456
    kv = 2048 * (512 + 64) + 512 * 16 * (128 + 128)  # 1,179,648 + 2,097,152
    o = 16 * 128 * 2048  # 4,194,304
    attn = q + kv + o  # 13,762,560
    expert = 3 * 2048 * 1408  # 8,650,752
    shared = 3 * 2048 * (2 * 1408)  # 17,301,504
    router = 2048 * 64  # 131,072
    dense = 3 * 2048 * 10944  # 67,239,936
    embed = 102400 * 2048  # 209,715,200
    total = 27 * attn + 26 * (64 * expert + shared + router) + dense + 2 * embed
    active = total - 26 * (64 - 6) * expert
    assert (attn, total, active) == (13_762_560, 15_706_357_760, 2_661_023_744)
    structure = model_structure(load("deepseek-v2-lite.json"))
    assert structure.total_params == total
    assert structure.active_params == active
    assert [layer.kind for layer in structure.layers[:2]] == ["dense", "moe"]
    assert structure.num_moe_layers == 26
    assert {layer.attention for layer in structure.layers} == {"mla"}
    assert {layer.kv_elems_per_token for layer in structure.layers} == {512 + 64}
    assert (structure.layers[0].qk_head_dim, structure.layers[0].v_head_dim) == (192, 128)


def test_qwen1_5_moe_exact() -> None:
    # d=2048, L=24 all MoE, H=Hkv=16, dh=128, E=60, k=4, f_e=1408, one shared expert f_sh=5632, V=151936.
    attn = 4 * 2048 * 2048  # q, k, v, o: 16,777,216
    expert = 3 * 2048 * 1408  # 8,650,752
    shared = 3 * 2048 * 5632  # 34,603,008 (the 1-wide shared_expert_gate is not counted, per the spec)
    router = 2048 * 60
    embed = 151936 * 2048
    total = 24 * (attn + 60 * expert + shared + router) + 2 * embed
    assert total == 14_315_487_232
    structure = model_structure(load("qwen1.5-moe-a2.7b.json"))
    assert structure.total_params == total
    assert structure.active_params == total - 24 * 56 * expert == 2_688_876_544
    assert {layer.ffn_params for layer in structure.layers} == {shared}


def test_qwen3_30b_a3b_uses_explicit_head_dim() -> None:
    # head_dim=128 while d/H = 2048/32 = 64: the explicit value must win.
    structure = model_structure(load("qwen3-30b-a3b.json"))
    attn = 2048 * 32 * 128 + 2 * 2048 * 4 * 128 + 32 * 128 * 2048  # 18,874,368
    assert {layer.attn_params for layer in structure.layers} == {attn}
    assert {layer.kv_elems_per_token for layer in structure.layers} == {2 * 4 * 128}
    assert structure.total_params == 30_531_911_680
    assert structure.active_params == 3_352_821_760
    assert {layer.ffn_params for layer in structure.layers} == {0}  # no shared expert


def test_olmoe_exact() -> None:
    attn = 4 * 2048 * 2048
    expert = 3 * 2048 * 1024
    total = 16 * (attn + 64 * expert + 2048 * 64) + 2 * 50304 * 2048
    structure = model_structure(load("olmoe-1b-7b.json"))
    assert structure.total_params == total == 6_919_028_736
    assert structure.active_params == total - 16 * 56 * expert == 1_281_884_160


# ----------------------------------------------------------------------------------------------- gpt-oss
GPT_OSS_ATTN = 2880 * 64 * 64 + 2 * 2880 * 8 * 64 + 64 * 64 * 2880  # 26,542,080 (H·dh = 4096 ≠ d = 2880)
GPT_OSS_EXPERT = 3 * 2880 * 2880  # 24,883,200: gate_up 2880×5760 + down 2880×2880
GPT_OSS_EMBED = 201088 * 2880  # 579,133,440


@pytest.mark.parametrize(
    ("name", "layers", "experts", "published_total_b", "published_active_b"),
    [("gpt-oss-20b.json", 24, 32, 20.91, 3.61), ("gpt-oss-120b.json", 36, 128, 116.83, 5.13)],
)
def test_gpt_oss(name: str, layers: int, experts: int, published_total_b: float, published_active_b: float) -> None:
    """gpt-oss model card (Table 1): 20b 20.91 B total / 3.61 B active, 120b 116.83 B / 5.13 B.

    Ours: 20b 20,907,786,240 / 4,186,275,840; 120b 116,788,838,400 / 5,710,233,600. Two documented gaps:
    - total: the card counts biases and sinks; the expert biases alone are (2·2880 + 2880)·E·L = 6.6 M (20b)
      and 39.8 M (120b), so ours is 2–45 M lower: within 0.05 B.
    - active: the card's active count leaves out the embedding table (a lookup, not a matmul), ours includes
      it (docs/metrics.md: parameters a token can touch). ours − V·d = 3.607 B (20b) and 5.131 B (120b)
      agree with 3.61 and 5.13 within 0.005 B.
    """
    structure = model_structure(load(name))
    router = 2880 * experts
    total = layers * (GPT_OSS_ATTN + experts * GPT_OSS_EXPERT + router) + 2 * GPT_OSS_EMBED
    active = total - layers * (experts - 4) * GPT_OSS_EXPERT
    assert structure.total_params == total
    assert structure.active_params == active
    assert abs(total / 1e9 - published_total_b) < 0.05
    assert abs((active - GPT_OSS_EMBED) / 1e9 - published_active_b) < 0.005
    windows = [layer.sliding_window for layer in structure.layers]
    assert windows == [128, None] * (layers // 2)
    assert {layer.kv_elems_per_token for layer in structure.layers} == {2 * 8 * 64}


def test_gpt_oss_exact_values() -> None:
    assert model_structure(load("gpt-oss-20b.json")).total_params == 20_907_786_240
    assert model_structure(load("gpt-oss-20b.json")).active_params == 4_186_275_840
    assert model_structure(load("gpt-oss-120b.json")).total_params == 116_788_838_400
    assert model_structure(load("gpt-oss-120b.json")).active_params == 5_710_233_600


# ----------------------------------------------------------------------------------------------- DBRX
def test_dbrx_instruct() -> None:
    """Databricks: 132 B total, 36 B active. Ours 131.60 B / 36.47 B (no biases in DBRX; norms excluded).

    d=6144, L=40, H=48, Hkv=8 (attn_config.kv_n_heads), dh=128, E=16, k=4, f_e=10752, V=100352.
    """
    attn = 6144 * 48 * 128 + 2 * 6144 * 8 * 128 + 48 * 128 * 6144  # Wqkv + out_proj: 88,080,384
    expert = 3 * 6144 * 10752  # w1, v1, w2: 198,180,864
    total = 40 * (attn + 16 * expert + 6144 * 16) + 2 * 100352 * 6144
    active = total - 40 * 12 * expert
    assert (total, active) == (131_596_025_856, 36_469_211_136)
    structure = model_structure(load("dbrx-instruct.json"))
    assert (structure.total_params, structure.active_params) == (total, active)
    assert abs(total / 1e9 - 132) < 0.5  # published figures are rounded to whole billions
    assert abs(active / 1e9 - 36) < 0.5


# ----------------------------------------------------------------------------------------------- DeepSeek-V3
def test_deepseek_v3() -> None:
    """DeepSeek: "671B of the Main Model weights and 14B of the MTP Module" (685 B on the Hub), 37 B active.

    The 671 B figure is already the main model without MTP (num_hidden_layers=61 excludes the MTP layer), so
    excluding MTP we expect ≈671 B, not 671 − 14. Ours: 671,025,397,760 total (671.03 B) and 37,551,276,032
    active (37.55 B; the published 37 B is rounded down — without the 0.93 B embedding it is 36.62 B).
    """
    d, heads, r_q, r_kv, nope, rope, v = 7168, 128, 1536, 512, 128, 64, 128
    attn = (d * r_q + r_q * heads * (nope + rope)) + (d * (r_kv + rope) + r_kv * heads * (nope + v)) + heads * v * d
    assert attn == 187_105_280
    expert = 3 * d * 2048  # 44,040,192
    moe_layer = 256 * expert + 1 * expert + d * 256  # routed + 1 shared expert + router
    dense_layer = 3 * d * 18432
    total = 61 * attn + 3 * dense_layer + 58 * moe_layer + 2 * 129280 * d
    active = total - 58 * (256 - 8) * expert
    assert (total, active) == (671_025_397_760, 37_551_276_032)
    structure = model_structure(load("deepseek-v3.json"))
    assert (structure.total_params, structure.active_params) == (total, active)
    assert abs(total / 1e9 - 671) < 0.1
    assert abs(active / 1e9 - 37) < 1.0
    assert structure.num_layers == 61
    assert structure.num_moe_layers == 58


def test_mtp_layers_are_excluded() -> None:
    config = load("deepseek-v3.json")
    without_mtp = model_structure({**config, "num_nextn_predict_layers": 0})
    assert model_structure(config) == without_mtp
    renamed = {k: v for k, v in config.items() if k != "num_nextn_predict_layers"} | {"num_mtp_layers": 1}
    assert model_structure(renamed) == without_mtp
