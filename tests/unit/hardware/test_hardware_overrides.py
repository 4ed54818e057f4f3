"""Overriding profile figures: ``--set KEY=VALUE`` parsing, application, provenance, bad input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from capbench.errors import CapbenchError
from capbench.hardware import (
    OVERRIDE_KEYS,
    apply_overrides,
    get_profile,
    overridden_keys,
    parse_overrides,
)


def test_parse_overrides() -> None:
    parsed = parse_overrides(["tdp_w=650", " peak_flops_per_s.bf16 = 1.2e15 ", "purchase_usd=25000"])
    assert parsed == {"tdp_w": "650", "peak_flops_per_s.bf16": "1.2e15", "purchase_usd": "25000"}
    assert parse_overrides([]) == {}


@pytest.mark.parametrize("item", ["tdp_w", "=650", "tdp_w=", "  =  "])
def test_parse_overrides_malformed(item: str) -> None:
    with pytest.raises(CapbenchError, match="KEY=VALUE"):
        parse_overrides([item])


def test_parse_overrides_duplicate() -> None:
    with pytest.raises(CapbenchError, match="more than once"):
        parse_overrides(["tdp_w=1", "tdp_w=2"])


def test_apply_valid_overrides_records_provenance() -> None:
    base = get_profile("h100-sxm")
    result = apply_overrides(
        base,
        {
            "memory_bandwidth_bytes_per_s": "3.0e12",
            "peak_flops_per_s.bfloat16": 900e12,
            "tdp_w": "650",
            "rental_usd_per_gpu_hour": "2.5",
            "purchase_usd": 25000,
            "memory_bytes": "85899345920",
        },
    )
    assert result.memory_bandwidth_bytes_per_s == 3.0e12
    assert result.peak_flops("bf16") == 900e12
    assert result.tdp_w == 650.0
    assert result.rental_usd_per_gpu_hour == 2.5
    assert result.purchase_usd == 25000.0
    assert result.memory_bytes == 85899345920 and isinstance(result.memory_bytes, int)
    # untouched figures and the original profile are unchanged
    assert result.peak_flops("fp8") == base.peak_flops("fp8") == 1978.9e12
    assert base.peak_flops("bf16") == 989.4e12 and base.tdp_w == 700
    assert result.sources["peak_flops_per_s.fp8"] == base.sources["peak_flops_per_s.fp8"]
    # provenance: marked as an override, keeps the old value and its source
    bf16_source = result.sources["peak_flops_per_s.bf16"]
    assert bf16_source.startswith("override (command line); was 9.894e+14 (H100 whitepaper")
    assert result.sources["purchase_usd"].startswith("override (command line); was absent")
    assert set(overridden_keys(result)) == {
        "memory_bandwidth_bytes_per_s",
        "peak_flops_per_s.bf16",
        "tdp_w",
        "rental_usd_per_gpu_hour",
        "purchase_usd",
        "memory_bytes",
    }
    assert overridden_keys(base) == ()


def test_override_adds_an_absent_dtype_and_takes_an_origin() -> None:
    a100 = get_profile("a100-sxm4-80gb")
    result = apply_overrides(a100, {"peak_flops_per_s.float8_e4m3fn": "600e12"}, origin="run.yaml")
    assert result.peak_flops("fp8") == 600e12
    assert result.sources["peak_flops_per_s.fp8"] == "override (run.yaml); was absent"
    assert list(result.peak_flops_per_s) == ["fp32", "tf32", "bf16", "fp16", "fp8", "int8"]


def test_no_overrides_returns_the_same_profile() -> None:
    profile = get_profile("l40s")
    assert apply_overrides(profile, {}) is profile


@pytest.mark.parametrize("key", ["tdp", "peak_flops_per_s.complex64", "peak_flops_per_s", "name", "bf16"])
def test_unknown_key_lists_valid_keys(key: str) -> None:
    with pytest.raises(CapbenchError) as err:
        apply_overrides(get_profile("h100-sxm"), {key: "1"})
    message = str(err.value)
    assert f"unknown override key {key!r}" in message
    for valid in ("memory_bandwidth_bytes_per_s", "peak_flops_per_s.bf16", "tdp_w", "rental_usd_per_gpu_hour"):
        assert valid in message


@pytest.mark.parametrize("value", ["fast", "", "nan", "inf", "-1", "0", True])
def test_bad_values_are_rejected_with_the_key_named(value: object) -> None:
    with pytest.raises(CapbenchError, match="tdp_w"):
        apply_overrides(get_profile("h100-sxm"), {"tdp_w": value})  # type: ignore[dict-item]


def test_memory_bytes_must_be_whole() -> None:
    with pytest.raises(CapbenchError, match="whole number"):
        apply_overrides(get_profile("h100-sxm"), {"memory_bytes": "1.5"})


def test_override_keys_cover_every_dtype() -> None:
    assert "peak_flops_per_s.fp4" in OVERRIDE_KEYS and "tdp_w" in OVERRIDE_KEYS


@given(st.floats(min_value=1e-3, max_value=1e18, allow_nan=False, allow_infinity=False))
def test_any_positive_bandwidth_round_trips_through_text(value: float) -> None:
    result = apply_overrides(get_profile("h100-sxm"), parse_overrides([f"memory_bandwidth_bytes_per_s={value!r}"]))
    assert result.memory_bandwidth_bytes_per_s == value
