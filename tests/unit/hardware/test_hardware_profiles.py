"""The shipped hardware profiles: they load, carry the spec's reference figures, cite every figure, never 0."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from capbench.errors import CapbenchError
from capbench.hardware import (
    DTYPE_KEYS,
    HardwareProfile,
    canonical_dtype,
    get_profile,
    list_profiles,
    normalize_device_name,
    resolve_profile,
)
from tests.support.paths import REPO

EXPECTED_IDS = {
    "a100-sxm4-80gb",
    "a100-pcie-80gb",
    "h100-sxm",
    "h100-pcie",
    "h200-sxm",
    "b200",
    "mi300x",
    "mi325x",
    "l40s",
    "rtx-4090",
    "gh200",
}
PROFILES_DIR = REPO / "hardware_profiles"
GIB = 2**30


def test_every_shipped_profile_loads() -> None:
    profiles = list_profiles()
    assert {p.id for p in profiles} >= EXPECTED_IDS
    assert [p.id for p in profiles] == sorted(p.id for p in profiles)
    files = {f.stem for f in PROFILES_DIR.glob("*.yaml")}
    assert files == {p.id for p in profiles}
    for profile in profiles:
        assert not profile.measured
        assert profile.version >= 1
        assert profile.aliases, f"{profile.id} has no device-name alias"


def test_spec_reference_figures_exactly() -> None:
    """docs/metrics.md §6: H100 SXM5 bf16 989.4, fp8 1978.9 TFLOP/s, 3.35 TB/s; H200 SXM bf16 989.4, 4.8 TB/s;
    A100 SXM4 80GB bf16 312, tf32 156, fp32 19.5 TFLOP/s, 2.039 TB/s (TB = 1e12 bytes)."""
    h100 = get_profile("h100-sxm")
    assert h100.peak_flops("bf16") == 989.4e12
    assert h100.peak_flops("fp8") == 1978.9e12
    assert h100.memory_bandwidth_bytes_per_s == 3.35e12
    h200 = get_profile("h200-sxm")
    assert h200.peak_flops("bf16") == 989.4e12
    assert h200.memory_bandwidth_bytes_per_s == 4.8e12
    a100 = get_profile("a100-sxm4-80gb")
    assert a100.peak_flops("bf16") == 312e12
    assert a100.peak_flops("tf32") == 156e12
    assert a100.peak_flops("fp32") == 19.5e12
    assert a100.memory_bandwidth_bytes_per_s == 2.039e12


@pytest.mark.parametrize("profile", list_profiles(), ids=lambda p: p.id)
def test_no_zero_and_every_figure_cited(profile: HardwareProfile) -> None:
    assert profile.peak_flops_per_s, "a profile needs at least one peak"
    for key, value in profile.peak_flops_per_s.items():
        assert key in DTYPE_KEYS
        assert math.isfinite(value) and value > 0, (profile.id, key)
    assert profile.memory_bandwidth_bytes_per_s > 0 and profile.memory_bytes > 0
    for key in profile.figure_keys():
        assert profile.sources.get(key, "").strip(), f"{profile.id}: {key} has no source"
    for key in ("purchase_usd", "rental_usd_per_gpu_hour", "tdp_w"):
        value = getattr(profile, key)
        assert value is None or value > 0
        # a missing price still says why it is missing
        assert profile.sources.get(key, "").strip(), f"{profile.id}: {key} has no source or note"


@pytest.mark.parametrize("profile", list_profiles(), ids=lambda p: p.id)
def test_dense_peaks_are_consistent(profile: HardwareProfile) -> None:
    """Sanity against sparse figures sneaking in: each narrower tensor format is at most ~2x the wider one.

    The 2.5% slack covers the L40S datasheet, whose dense bf16 (362.05) is a little under half its fp8 (733)."""
    peaks = profile.peak_flops_per_s
    slack = 1.025
    assert peaks["bf16"] == peaks["fp16"]
    assert peaks["tf32"] <= peaks["bf16"] / 2 * slack
    if "fp8" in peaks:
        assert peaks["fp8"] <= 2 * peaks["bf16"] * slack
    if "fp4" in peaks:
        assert peaks["fp4"] <= 2 * peaks["fp8"] * slack
    assert profile.memory_bytes % GIB == 0  # datasheet capacities are whole GiB


def test_sparse_only_sources_say_they_were_halved() -> None:
    """Every NVIDIA figure taken from a sparsity (*) column says so."""
    for profile in list_profiles():
        for key, text in profile.sources.items():
            if "with sparsity" in text and "dense" not in text:
                assert "halved" in text, (profile.id, key)


def test_absent_and_present_dtypes() -> None:
    assert "fp8" not in get_profile("a100-sxm4-80gb").peak_flops_per_s
    assert "fp4" not in get_profile("h100-sxm").peak_flops_per_s
    assert get_profile("b200").peak_flops("nvfp4") == 9.0e15
    assert get_profile("mi300x").peak_flops("fp8") == 2614.9e12


@pytest.mark.parametrize(
    ("spelling", "key"),
    [
        ("bfloat16", "bf16"),
        ("bf16", "bf16"),
        ("torch.bfloat16", "bf16"),
        ("BF16", "bf16"),
        ("float16", "fp16"),
        ("half", "fp16"),
        ("torch.float16", "fp16"),
        ("float32", "fp32"),
        ("fp32", "fp32"),
        ("fp8", "fp8"),
        ("fp8_e4m3", "fp8"),
        ("float8_e4m3fn", "fp8"),
        ("torch.float8_e5m2", "fp8"),
        ("int8", "int8"),
        ("fp4", "fp4"),
        ("nvfp4", "fp4"),
        ("mxfp4", "fp4"),
        ("tf32", "tf32"),
        (" Float16 ", "fp16"),
        ("FP8-E4M3", "fp8"),
    ],
)
def test_dtype_spellings(spelling: str, key: str) -> None:
    assert canonical_dtype(spelling) == key


def test_peak_flops_accepts_spellings() -> None:
    h100 = get_profile("h100-sxm")
    assert h100.peak_flops("torch.bfloat16") == h100.peak_flops("bfloat16") == 989.4e12
    assert h100.peak_flops("float8_e4m3fn") == 1978.9e12
    assert h100.peak_flops("half") == 989.4e12


def test_absent_dtype_raises_naming_profile_dtype_and_what_exists() -> None:
    with pytest.raises(CapbenchError) as err:
        get_profile("a100-sxm4-80gb").peak_flops("float8_e4m3fn")
    message = str(err.value)
    assert "a100-sxm4-80gb" in message and "'fp8'" in message
    assert "fp32, tf32, bf16, fp16, int8" in message


def test_unknown_dtype_spelling_raises() -> None:
    with pytest.raises(CapbenchError, match=r"unknown dtype 'complex64'.*bf16: bf16, bfloat16"):
        get_profile("h100-sxm").peak_flops("complex64")


def test_unknown_id_lists_valid_ids_and_how_to_add() -> None:
    with pytest.raises(CapbenchError) as err:
        get_profile("h800")
    message = str(err.value)
    assert "unknown hardware profile 'h800'" in message
    assert "h100-sxm" in message and "mi300x" in message
    assert "YAML" in message and "docs/hardware.md" in message


def test_resolve_profile_by_id_and_path() -> None:
    assert resolve_profile("h100-sxm") is get_profile("h100-sxm")
    assert resolve_profile(PROFILES_DIR / "l40s.yaml") == get_profile("l40s")
    assert resolve_profile(str(PROFILES_DIR / "l40s.yaml")) == get_profile("l40s")


def test_aliases_are_unique_across_profiles() -> None:
    seen: dict[str, str] = {}
    for profile in list_profiles():
        for alias in profile.aliases:
            name = normalize_device_name(alias)
            assert name not in seen, f"{alias!r} in {profile.id} and {seen[name]}"
            seen[name] = profile.id


def test_profiles_are_hashable_and_frozen() -> None:
    profile = get_profile("h100-sxm")
    assert hash(profile) == hash(get_profile("h100-sxm"))
    with pytest.raises(AttributeError):
        profile.tdp_w = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        profile.peak_flops_per_s["bf16"] = 1.0  # type: ignore[index]


def test_importing_hardware_and_its_cli_does_not_import_torch() -> None:
    code = (
        "import sys, capbench.hardware, capbench.cli.profiles; "
        "capbench.hardware.list_profiles(); print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
