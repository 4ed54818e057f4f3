"""Matching device names (as NVML / amd-smi / torch report them) to profiles: exact aliases only."""

from __future__ import annotations

import pytest

from capbench.hardware import get_profile, match_gpu_name, normalize_device_name


@pytest.mark.parametrize(
    ("device_name", "profile_id"),
    [
        ("NVIDIA A100-SXM4-80GB", "a100-sxm4-80gb"),
        ("NVIDIA A100 80GB PCIe", "a100-pcie-80gb"),
        ("NVIDIA H100 80GB HBM3", "h100-sxm"),
        ("NVIDIA H100 PCIe", "h100-pcie"),
        ("NVIDIA H200", "h200-sxm"),
        ("NVIDIA B200", "b200"),
        ("NVIDIA GH200 480GB", "gh200"),
        ("NVIDIA L40S", "l40s"),
        ("NVIDIA GeForce RTX 4090", "rtx-4090"),
        ("AMD Instinct MI300X", "mi300x"),
        ("AMD Instinct MI325X", "mi325x"),
    ],
)
def test_exact_aliases_match(device_name: str, profile_id: str) -> None:
    profile = match_gpu_name(device_name)
    assert profile is not None and profile.id == profile_id


@pytest.mark.parametrize(
    "device_name",
    ["nvidia h100 80gb hbm3", "  NVIDIA   H100 80GB\tHBM3  ", "NVIDIA H100 80GB HBM3\n"],
)
def test_case_and_whitespace_are_normalized(device_name: str) -> None:
    assert match_gpu_name(device_name) is get_profile("h100-sxm")


@pytest.mark.parametrize(
    "device_name",
    [
        "NVIDIA H100 NVL",  # different SKU (94 GB, 3.9 TB/s), must not become h100-pcie
        "NVIDIA A100-SXM4-40GB",  # 40 GB part, 1.555 TB/s, must not become the 80 GB profile
        "NVIDIA A100-PCIE-40GB",
        "NVIDIA H200 NVL",
        "NVIDIA GH200 144G HBM3e",
        "NVIDIA H100",
        "H100",
        "NVIDIA H100 80GB HBM3 MIG 1g.10gb",
        "NVIDIA GeForce RTX 4090 D",
        "AMD Instinct MI300A",
        "NVIDIA H800",
        "",
        "   ",
    ],
)
def test_near_misses_do_not_match(device_name: str) -> None:
    assert match_gpu_name(device_name) is None


def test_match_against_given_profiles_only() -> None:
    only = [get_profile("l40s")]
    assert match_gpu_name("NVIDIA L40S", only) is only[0]
    assert match_gpu_name("NVIDIA H100 80GB HBM3", only) is None


def test_normalize_device_name() -> None:
    assert normalize_device_name("  NVIDIA\t H100  PCIe ") == "nvidia h100 pcie"
