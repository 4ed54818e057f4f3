"""The fake NVML (capbench.testing.fake_nvml) keeps to the real ``pynvml``'s interface and error codes."""

from __future__ import annotations

import pytest

from capbench.telemetry import errors
from capbench.telemetry.nvml import NvmlApi
from capbench.testing.fake_nvml import (
    DRIVER_NOT_LOADED,
    FUNCTION_NOT_FOUND,
    GPU_IS_LOST,
    INVALID_ARGUMENT,
    LIBRARY_NOT_FOUND,
    NO_PERMISSION,
    NOT_SUPPORTED,
    UNINITIALIZED,
    UNKNOWN,
    FakeNvml,
    FakeNVMLError,
)

pynvml = pytest.importorskip("pynvml")


def _api_names() -> list[str]:
    return [name for name in dir(NvmlApi) if name.startswith("nvml")]


def test_every_function_the_sensor_uses_exists_in_real_pynvml_and_in_the_fake() -> None:
    names = _api_names()
    assert "nvmlDeviceGetTotalEnergyConsumption" in names
    for name in [*names, "NVMLError"]:
        assert callable(getattr(pynvml, name)), name
        assert hasattr(FakeNvml(), name), name


def test_fake_functions_exist_in_real_pynvml() -> None:
    for name in dir(FakeNvml):
        if name.startswith("nvml") and callable(getattr(FakeNvml, name)):
            assert callable(getattr(pynvml, name)), name


def test_error_codes_are_nvmls() -> None:
    for name, value in [
        ("NVML_ERROR_UNINITIALIZED", UNINITIALIZED),
        ("NVML_ERROR_INVALID_ARGUMENT", INVALID_ARGUMENT),
        ("NVML_ERROR_NOT_SUPPORTED", NOT_SUPPORTED),
        ("NVML_ERROR_NO_PERMISSION", NO_PERMISSION),
        ("NVML_ERROR_DRIVER_NOT_LOADED", DRIVER_NOT_LOADED),
        ("NVML_ERROR_LIBRARY_NOT_FOUND", LIBRARY_NOT_FOUND),
        ("NVML_ERROR_FUNCTION_NOT_FOUND", FUNCTION_NOT_FOUND),
        ("NVML_ERROR_GPU_IS_LOST", GPU_IS_LOST),
        ("NVML_ERROR_UNKNOWN", UNKNOWN),
    ]:
        assert getattr(pynvml, name) == value, name
        own = getattr(errors, name, None)
        assert own is None or own == value, name


def test_capbench_error_constants_match_pynvml() -> None:
    for name in dir(errors):
        if name.startswith("NVML_ERROR_"):
            assert getattr(errors, name) == getattr(pynvml, name), name


def test_real_pynvml_errors_carry_the_code_in_value() -> None:
    exc = pynvml.NVMLError(LIBRARY_NOT_FOUND)
    assert isinstance(exc, pynvml.NVMLError_LibraryNotFound)
    assert exc.value == LIBRARY_NOT_FOUND


def test_fake_requires_init() -> None:
    fake = FakeNvml()
    with pytest.raises(FakeNVMLError) as info:
        fake.nvmlDeviceGetCount()
    assert info.value.value == UNINITIALIZED
    fake.nvmlInit()
    assert fake.nvmlDeviceGetCount() == 1
