"""``capbench model-info``: human and JSON output, model directories, bad input."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

import capbench.cli
from capbench.cli import model_info
from capbench.errors import CapbenchError
from tests.support.paths import DATA

MODELS = DATA / "models"


def run(argv: list[str]) -> int:
    """Parse ``argv`` with a parser holding only model-info (the dispatcher's other modules may not exist)."""
    parser = argparse.ArgumentParser(prog="capbench")
    model_info.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.handler(args))


def run_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert run([*argv, "--json"]) == 0
    info: dict[str, Any] = json.loads(capsys.readouterr().out)
    return info


def test_json_on_shared_config(capsys: pytest.CaptureFixture[str]) -> None:
    info = run_json(["model-info", str(MODELS / "qwen3-30b-a3b.json")], capsys)
    assert info["model_type"] == "qwen3_moe"
    assert (info["num_layers"], info["num_moe_layers"], info["num_experts"], info["top_k"]) == (
        48,
        48,
        128,
        8,
    )
    assert (info["total_params"], info["active_params"]) == (30_531_911_680, 3_352_821_760)
    assert info["kv_elements_per_token_per_layer"] == [2 * 4 * 128]
    assert info["kv_elements_per_token"] == 48 * 1024
    assert info["sliding_window_layers"] == []
    assert info["mla"] is False
    assert info["dtypes"]["weights"] == "bfloat16"
    bytes_ = info["weight_bytes"]
    assert bytes_["total"] == 2 * info["total_params"]  # bf16 throughout, full precision
    assert bytes_["embedding"] == bytes_["lm_head"] == 2 * 151936 * 2048
    parts = ("dense_weights", "routed_experts", "embedding", "lm_head")
    assert sum(bytes_[key] for key in parts) == bytes_["total"]


def test_json_mla_sliding_and_mxfp4(capsys: pytest.CaptureFixture[str]) -> None:
    deepseek = run_json(["model-info", str(MODELS / "deepseek-v2-lite.json")], capsys)
    assert deepseek["mla"] is True
    assert deepseek["kv_elements_per_token_per_layer"] == [576]
    gpt_oss = run_json(["model-info", str(MODELS / "gpt-oss-20b.json")], capsys)
    assert gpt_oss["sliding_window_layers"] == list(range(0, 24, 2))
    assert gpt_oss["sliding_windows"] == [128]
    assert gpt_oss["dtypes"]["experts"] == "mxfp4"
    assert gpt_oss["weight_bytes"]["routed_experts"] == gpt_oss["routed_expert_params_total"] * 4.25 / 8


def test_human_table_on_model_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(MODELS / "mixtral-8x7b.json", tmp_path / "config.json")
    assert run(["model-info", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for text in (
        "mixtral",
        "num_moe_layers",
        "46,702,526,464",
        "46.70 B",
        "12,879,659,008",
        "12.88 B",
        "kv_elements_per_token_per_layer",
        "2048",
        "sliding_window_layers",
        "none",
        "MHA/GQA",
        "bytes routed experts",
        "bytes total",
        "93.41 GB",
    ):
        assert text in out, text


def test_top_k_and_kv_dtype_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(MODELS / "mixtral-8x7b.json")
    plain = run_json(["model-info", path], capsys)
    dense = run_json(["model-info", path, "--top-k", "8", "--kv-dtype", "fp8"], capsys)
    assert dense["top_k"] == 8
    assert dense["active_params"] == dense["total_params"]
    assert dense["dtypes"]["kv"] == "float8_e4m3fn"
    assert dense["kv_bytes_per_token"] == plain["kv_bytes_per_token"] / 2


@pytest.mark.parametrize("top_k", ["0", "9"])
def test_bad_top_k(top_k: str) -> None:
    with pytest.raises(CapbenchError, match="--top-k"):
        run(["model-info", str(MODELS / "mixtral-8x7b.json"), "--top-k", top_k])


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(CapbenchError, match="no such file"):
        run(["model-info", str(tmp_path / "missing.json")])
    with pytest.raises(CapbenchError, match=r"has no config\.json"):
        run(["model-info", str(tmp_path)])
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CapbenchError, match="cannot read"):
        run(["model-info", str(tmp_path)])
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(CapbenchError, match="JSON object"):
        run(["model-info", str(tmp_path)])
    with pytest.raises(CapbenchError, match="unknown dtype"):
        run(["model-info", str(MODELS / "mixtral-8x7b.json"), "--kv-dtype", "fp7"])


def test_through_the_dispatcher(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(capbench.cli, "SUBCOMMANDS", ("model_info",))
    assert capbench.cli.main(["model-info", str(MODELS / "olmoe-1b-7b.json"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total_params"] == 6_919_028_736
    assert capbench.cli.main(["model-info", str(MODELS / "olmoe-1b-7b.json"), "--top-k", "65"]) == 2
    assert "capbench model-info: error: --top-k" in capsys.readouterr().err


def test_describe_indices() -> None:
    assert model_info.describe_indices([]) == "none"
    assert model_info.describe_indices([0, 1, 2]) == "0, 1, 2"
    assert model_info.describe_indices([0, 2, 4, 6, 8]) == "0, 2, …, 8"
    assert model_info.describe_indices([0, 1, 5, 6]) == "0, 1, 5, 6"
