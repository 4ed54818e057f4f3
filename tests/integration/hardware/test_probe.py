"""The hardware probe on this machine's CPU (uses torch): plausible figures, loadable YAML, a reused cache."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

import capbench.hardware.probe as probe_module
from capbench.cli import profiles as profiles_cli
from capbench.errors import CapbenchError
from capbench.hardware import HardwareProfile, cached_probe_profile, load_profile_file, save_profile_file

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def quick_cpu_profile() -> HardwareProfile:
    return probe_module.probe(device="cpu", quick=True)


def test_quick_cpu_probe_is_physically_plausible(quick_cpu_profile: HardwareProfile) -> None:
    profile = quick_cpu_profile
    assert profile.measured is True
    assert profile.id.startswith("probe-cpu-") and profile.id.endswith("-quick")
    assert 1e9 <= profile.memory_bandwidth_bytes_per_s <= 1e13
    assert 1e9 <= profile.peak_flops("fp32") <= 1e14
    for value in profile.peak_flops_per_s.values():
        assert 1e9 <= value <= 1e15
    assert profile.memory_bytes > 2**28
    assert profile.tdp_w is None and profile.purchase_usd is None and profile.rental_usd_per_gpu_hour is None
    for key in profile.figure_keys():
        assert "probe" in profile.sources[key] or "meminfo" in profile.sources[key]
    assert "Bandwidth: copy" in profile.notes and "torch threads" in profile.notes


def test_probe_yaml_is_loadable(quick_cpu_profile: HardwareProfile, tmp_path: Path) -> None:
    path = save_profile_file(quick_cpu_profile, tmp_path / "probe.yaml")
    assert load_profile_file(path) == quick_cpu_profile


def test_cache_is_reused_without_a_second_probe(
    quick_cpu_profile: HardwareProfile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, bool]] = []

    def counting_probe(device: str = "cpu", quick: bool = False) -> HardwareProfile:
        calls.append((device, quick))
        return quick_cpu_profile  # same identity as this machine's quick probe

    monkeypatch.setattr(probe_module, "probe", counting_probe)
    announced: list[str] = []
    first = cached_probe_profile("cpu", cache_dir=tmp_path, quick=True, on_measure=lambda: announced.append("1"))
    second = cached_probe_profile("cpu", cache_dir=tmp_path, quick=True, on_measure=lambda: announced.append("2"))
    assert calls == [("cpu", True)]
    assert announced == ["1"]  # "measuring..." only when it measures, not when the cached profile is used
    assert first == second == quick_cpu_profile
    assert (tmp_path / f"{quick_cpu_profile.id}.yaml").is_file()
    cached_probe_profile("cpu", cache_dir=tmp_path, quick=True, refresh=True)
    assert len(calls) == 2


def test_cache_dir_from_environment_and_corrupt_cache(
    quick_cpu_profile: HardwareProfile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def counting_probe(device: str = "cpu", quick: bool = False) -> HardwareProfile:
        calls.append(device)
        return quick_cpu_profile

    monkeypatch.setattr(probe_module, "probe", counting_probe)
    monkeypatch.setenv("CAPBENCH_CACHE_DIR", str(tmp_path))
    cache_file = tmp_path / "profiles" / f"{quick_cpu_profile.id}.yaml"
    cache_file.parent.mkdir()
    cache_file.write_text("id: [broken\n", encoding="utf-8")
    with pytest.warns(UserWarning, match="ignoring unreadable cached probe"):
        profile = cached_probe_profile("cpu", quick=True)
    assert calls == ["cpu"] and profile == quick_cpu_profile
    assert load_profile_file(cache_file) == quick_cpu_profile  # rewritten
    cached_probe_profile("cpu", quick=True)
    assert calls == ["cpu"]


def test_unknown_or_missing_device() -> None:
    import torch

    with pytest.raises(CapbenchError, match="unknown probe device 'tpu'"):
        probe_module.probe(device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(CapbenchError, match="no CUDA/ROCm device"):
            probe_module.probe(device="cuda")


def test_cli_probe_quick_writes_json_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CAPBENCH_CACHE_DIR", str(tmp_path / "cache"))
    parser = argparse.ArgumentParser(prog="capbench")
    profiles_cli.register(parser.add_subparsers(dest="command", required=True))
    out = tmp_path / "me.yaml"
    args = parser.parse_args(["profiles", "probe", "--quick", "--out", str(out), "--json"])
    assert args.handler(args) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert data["measured"] is True and data["peak_flops_per_s"]["fp32"] > 0
    assert load_profile_file(out).to_dict() == data
    cached = tmp_path / "cache" / "profiles" / f"{data['id']}.yaml"
    assert cached.is_file() and str(out) in captured.err
