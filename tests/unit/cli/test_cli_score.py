"""`capbench score` on a directory holding only run.json and passes.jsonl (docs/records.md contract)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from capbench.cli import main
from tests.support.paths import DATA

SHARED_MODELS = DATA / "models"


def write_minimal_run(run_dir: Path, hardware: dict[str, object]) -> None:
    config = json.loads((SHARED_MODELS / "qwen3-30b-a3b.json").read_text())
    run_dir.mkdir()
    manifest = {
        "schema_version": 1,
        "run_id": "minimal",
        "status": "complete",
        "model": {"name": "Qwen3-30B-A3B", "config": config},
        "engine": {"name": "vllm", "version": "0.32.0"},
        "hardware": hardware,
        "dtypes": {"weights": "bfloat16", "experts": "bfloat16", "kv": "bfloat16", "compute": "bfloat16"},
    }
    (run_dir / "run.json").write_text(json.dumps(manifest))
    active = [64] * 48
    passes = [
        {"latency_s": 0.050, "reqs": [[512, 0], [256, 0]], "sampled": 2, "experts_active": [128] * 48},
        {
            "t_start_ns": 100,
            "t_end_ns": 20_000_100,
            "reqs": [[1, 512], [1, 256]],
            "sampled": 2,
            "experts_active": active,
        },
        {"latency_s": 0.021, "reqs": [[1, 513], [1, 257]], "sampled": 2, "experts_active": active},
    ]
    (run_dir / "passes.jsonl").write_text("".join(json.dumps(p) + "\n" for p in passes))


def test_score_needs_only_manifest_and_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    write_minimal_run(run_dir, {"profile": "h100-sxm", "num_gpus": 1})
    assert sorted(p.name for p in run_dir.iterdir()) == ["passes.jsonl", "run.json"]
    assert main(["score", str(run_dir), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary["phases"]) == {"prefill", "decode", "all"}
    for phase in summary["phases"].values():
        assert {"s_mbu", "s_mfu", "tokens_per_s", "passes"} <= set(phase)
        assert 0 < phase["s_mbu"] < 1 and 0 < phase["s_mfu"] < 1
    assert summary["phases"]["decode"]["passes"] == 2
    # Decode: 2 tokens per pass over 0.020 s and 0.021 s.
    assert summary["phases"]["decode"]["tokens_per_s"] == pytest.approx(4 / 0.041)
    assert summary["hardware"]["profile"] == "h100-sxm"
    assert json.loads((run_dir / "summary.json").read_text())["phases"] == summary["phases"]


def test_hardware_flag_and_override_change_the_ceiling(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    write_minimal_run(run_dir, {"profile": None, "num_gpus": 1})
    assert main(["score", str(run_dir), "--json", "--no-write"]) == 0
    unscored = json.loads(capsys.readouterr().out)
    assert unscored["phases"]["decode"]["s_mbu"] is None  # no profile: null with a note, never 0
    assert any("hardware" in note for note in unscored["notes"])
    assert not (run_dir / "summary.json").exists()

    assert main(["score", str(run_dir), "--json", "--hardware", "h100-sxm", "--no-write"]) == 0
    h100 = json.loads(capsys.readouterr().out)["phases"]["decode"]["s_mbu"]
    bw = "memory_bandwidth_bytes_per_s=1.675e12"  # half of 3.35e12: S-MBU doubles
    assert main(["score", str(run_dir), "--json", "--hardware", "h100-sxm", "--hardware-override", bw]) == 0
    assert json.loads(capsys.readouterr().out)["phases"]["decode"]["s_mbu"] == pytest.approx(2 * h100)


def test_missing_peak_for_the_compute_dtype_gives_null_s_mfu(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A profile without a peak for the compute dtype: S-MFU is null with a note, never scored against another
    dtype's peak; S-MBU (bandwidth) is still measured."""
    run_dir = tmp_path / "run"
    write_minimal_run(run_dir, {"profile": "a100-sxm4-80gb", "num_gpus": 1})
    manifest = json.loads((run_dir / "run.json").read_text())
    manifest["dtypes"]["compute"] = "fp8"  # an A100 has no fp8 tensor cores
    (run_dir / "run.json").write_text(json.dumps(manifest))
    assert main(["score", str(run_dir), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["hardware"]["ceilings"]["peak_flops_per_s"] is None
    assert all(phase["s_mfu"] is None for phase in summary["phases"].values())
    assert any(phase["s_mbu"] is not None for phase in summary["phases"].values())
    note = next(n for n in summary["notes"] if "S-MFU is null" in n)
    assert "a100-sxm4-80gb" in note and "--hardware-override peak_flops_per_s.fp8=VALUE" in note


def test_not_a_run_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["score", str(tmp_path)]) == 2
    assert "run.json is missing" in capsys.readouterr().err
