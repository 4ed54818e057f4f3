"""The embedded default on a CUDA GPU: records, the NVML GPU name and the matched profile (run by hand)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from capbench.cli import main
from capbench.records import read_run

pytestmark = pytest.mark.gpu


def test_embedded_default_on_cuda(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    code = main(["run", "--device", "cuda", "--out", str(out), "--num-requests", "8", "--max-tokens", "16", "--quiet"])
    assert code == 0
    run = read_run(out)
    hw = run.manifest["hardware"]
    assert hw["device"] == "cuda" and hw["num_gpus"] == 1
    assert hw["gpu_name"] and hw["driver"]
    passes = list(run.iter_passes())
    assert passes and all(p["experts_active"] and min(p["experts_active"]) >= 1 for p in passes)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["requests"]["completed"] == 8
    if hw["profile"] is not None:  # a GPU capbench ships a profile for: S-MBU against its datasheet ceiling
        assert 0 < summary["phases"]["decode"]["s_mbu"] < 1
    else:
        assert summary["phases"]["decode"]["s_mbu"] is None
