"""User profile files: validation names the offending key; profiles round-trip through YAML unchanged."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from capbench.errors import CapbenchError
from capbench.hardware import (
    DTYPE_KEYS,
    HardwareProfile,
    get_profile,
    list_profiles,
    load_profile_file,
    profile_from_dict,
    profile_to_yaml,
    resolve_profile,
    save_profile_file,
)


def minimal() -> dict[str, Any]:
    """A valid user profile with the fewest keys."""
    return {
        "id": "my-gpu",
        "name": "My GPU",
        "vendor": "Acme",
        "memory_bytes": 17179869184,
        "memory_bandwidth_bytes_per_s": "1.5e12",
        "peak_flops_per_s": {"bf16": 2.0e14},
        "sources": {
            "memory_bytes": "vendor sheet, 2026",
            "memory_bandwidth_bytes_per_s": "vendor sheet, 2026",
            "peak_flops_per_s.bf16": "vendor sheet, 2026 (dense)",
        },
    }


def write(tmp_path: Path, data: object, name: str = "my-gpu.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_minimal_user_profile_loads_with_defaults(tmp_path: Path) -> None:
    profile = load_profile_file(write(tmp_path, minimal()))
    assert profile.memory_bandwidth_bytes_per_s == 1.5e12  # numeric strings are accepted
    assert profile.aliases == () and profile.tdp_w is None and profile.rental_usd_per_gpu_hour is None
    assert profile.measured is False and profile.version == 1 and profile.notes == ""
    assert resolve_profile(str(tmp_path / "my-gpu.yaml")) == profile


def test_unknown_top_level_key_is_named(tmp_path: Path) -> None:
    data = {**minimal(), "memory_bandwith_bytes_per_s": 1e12}
    with pytest.raises(CapbenchError, match=r"unknown key 'memory_bandwith_bytes_per_s'") as err:
        load_profile_file(write(tmp_path, data))
    assert str(tmp_path / "my-gpu.yaml") in str(err.value)
    assert "memory_bandwidth_bytes_per_s" in str(err.value)  # lists the valid keys


@pytest.mark.parametrize("value", [-3.35e12, 0, "-1e12", "fast", float("nan"), float("inf"), True, None, [1]])
def test_bad_bandwidth_is_rejected_with_the_key_named(tmp_path: Path, value: object) -> None:
    data = {**minimal(), "memory_bandwidth_bytes_per_s": value}
    with pytest.raises(CapbenchError, match="memory_bandwidth_bytes_per_s"):
        load_profile_file(write(tmp_path, data))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"peak_flops_per_s": {"bfloat16": 1e14}}, "unknown dtype key 'bfloat16'"),
        ({"peak_flops_per_s": {"bf16": 0}}, r"peak_flops_per_s\.bf16 must be a finite number > 0"),
        ({"peak_flops_per_s": {}}, "non-empty mapping"),
        ({"tdp_w": -5}, "tdp_w"),
        ({"rental_usd_per_gpu_hour": "cheap"}, "rental_usd_per_gpu_hour"),
        ({"memory_bytes": 1.5}, "whole number"),
        ({"id": "My GPU"}, "id 'My GPU' must match"),
        ({"name": ""}, "name must be a non-empty string"),
        ({"aliases": "NVIDIA X"}, "aliases must be a list"),
        ({"measured": "yes"}, "measured must be true or false"),
        ({"version": 0}, "version must be an integer >= 1"),
        ({"sources": {"memory_bytes": "x", "memory_bandwidth_bytes_per_s": "y"}}, "'peak_flops_per_s.bf16' has no"),
        ({"tdp_w": 300}, "'tdp_w' has no entry in sources"),
    ],
)
def test_invalid_fields(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    with pytest.raises(CapbenchError, match=message):
        load_profile_file(write(tmp_path, {**minimal(), **change}))


def test_sources_keys_are_checked(tmp_path: Path) -> None:
    data = minimal()
    data["sources"] = {**data["sources"], "bandwidth": "typo"}
    with pytest.raises(CapbenchError, match="unknown key 'bandwidth' in sources"):
        load_profile_file(write(tmp_path, data))
    data["sources"] = {**minimal()["sources"], "peak_flops_per_s.fp8": "no such peak"}
    with pytest.raises(CapbenchError, match="peak_flops_per_s has no such dtype"):
        load_profile_file(write(tmp_path, data))


def test_missing_required_key(tmp_path: Path) -> None:
    data = minimal()
    del data["vendor"]
    with pytest.raises(CapbenchError, match="missing required key 'vendor'"):
        load_profile_file(write(tmp_path, data))


def test_file_problems(tmp_path: Path) -> None:
    with pytest.raises(CapbenchError, match="cannot read hardware profile file"):
        load_profile_file(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: [unclosed\n", encoding="utf-8")
    with pytest.raises(CapbenchError, match="not valid YAML"):
        load_profile_file(bad)
    with pytest.raises(CapbenchError, match="expected a mapping"):
        load_profile_file(write(tmp_path, ["a", "list"]))


@pytest.mark.parametrize("profile", list_profiles(), ids=lambda p: p.id)
def test_shipped_profiles_round_trip_through_yaml(tmp_path: Path, profile: HardwareProfile) -> None:
    path = save_profile_file(profile, tmp_path / "sub" / f"{profile.id}.yaml")
    again = load_profile_file(path)
    assert again == profile
    assert again.to_dict() == profile.to_dict()
    assert not list(path.parent.glob(".*.tmp"))  # the temporary file was renamed away


positive = st.floats(min_value=1e-6, max_value=1e20, allow_nan=False, allow_infinity=False)


@given(
    peaks=st.dictionaries(st.sampled_from(DTYPE_KEYS), positive, min_size=1),
    bandwidth=positive,
    memory=st.integers(min_value=1, max_value=2**50),
    tdp=st.none() | positive,
    rental=st.none() | positive,
    measured=st.booleans(),
    version=st.integers(min_value=1, max_value=1000),
    notes=st.text(max_size=40),
)
def test_any_valid_profile_round_trips(
    peaks: dict[str, float],
    bandwidth: float,
    memory: int,
    tdp: float | None,
    rental: float | None,
    measured: bool,
    version: int,
    notes: str,
) -> None:
    figures = {"memory_bytes": memory, "memory_bandwidth_bytes_per_s": bandwidth, "tdp_w": tdp}
    figures["rental_usd_per_gpu_hour"] = rental
    sources = {k: "test" for k, v in figures.items() if v is not None}
    sources.update({f"peak_flops_per_s.{k}": "test" for k in peaks})
    profile = HardwareProfile(
        id="prop-1",
        name="Property",
        vendor="Test",
        aliases=("Test GPU",),
        memory_bytes=memory,
        memory_bandwidth_bytes_per_s=bandwidth,
        peak_flops_per_s=peaks,
        tdp_w=tdp,
        purchase_usd=None,
        rental_usd_per_gpu_hour=rental,
        sources=sources,
        measured=measured,
        version=version,
        notes=notes,
    )
    again = profile_from_dict(yaml.safe_load(profile_to_yaml(profile)), "roundtrip")
    assert again == profile


def test_to_dict_is_si_and_ordered() -> None:
    data = get_profile("h100-sxm").to_dict()
    assert list(data)[:5] == ["id", "name", "vendor", "aliases", "memory_bytes"]
    assert data["peak_flops_per_s"]["bf16"] == 989.4e12
    assert data["memory_bandwidth_bytes_per_s"] == 3.35e12


def test_direct_construction_rejects_unknown_dtypes_and_zero() -> None:
    base = get_profile("l40s")
    with pytest.raises(CapbenchError, match="unknown dtype keys"):
        dataclasses.replace(base, peak_flops_per_s={"bfloat16": 1e14})
    with pytest.raises(CapbenchError, match="finite and > 0"):
        dataclasses.replace(base, peak_flops_per_s={"bf16": 0.0})
    with pytest.raises(CapbenchError, match="finite and > 0"):
        dataclasses.replace(base, memory_bandwidth_bytes_per_s=0.0)
