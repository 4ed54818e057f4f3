"""The one NVML error map: what each failure means and how it reads."""

from __future__ import annotations

import pytest

from capbench.errors import CapbenchError
from capbench.telemetry.errors import (
    FeatureNotSupportedError,
    NvmlOutcome,
    SensorUnavailableError,
    classify_nvml_error,
    describe_nvml_error,
    map_nvml_error,
    nvml_error_code,
    unavailable_with_fix,
)
from capbench.testing.fake_nvml import (
    DRIVER_NOT_LOADED,
    FUNCTION_NOT_FOUND,
    GPU_IS_LOST,
    LIBRARY_NOT_FOUND,
    NO_PERMISSION,
    NOT_SUPPORTED,
    UNKNOWN,
    FakeNVMLError,
)

pynvml = pytest.importorskip("pynvml")


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (LIBRARY_NOT_FOUND, NvmlOutcome.NO_SENSOR),
        (DRIVER_NOT_LOADED, NvmlOutcome.NO_SENSOR),
        (NO_PERMISSION, NvmlOutcome.NO_SENSOR),
        (18, NvmlOutcome.NO_SENSOR),  # library / kernel driver version mismatch
        (NOT_SUPPORTED, NvmlOutcome.NOT_SUPPORTED),
        (FUNCTION_NOT_FOUND, NvmlOutcome.NOT_SUPPORTED),
        (GPU_IS_LOST, NvmlOutcome.ERROR),
        (UNKNOWN, NvmlOutcome.ERROR),
        (10, NvmlOutcome.ERROR),  # timeout
    ],
)
def test_classification_by_code_for_real_and_fake_errors(code: int, outcome: NvmlOutcome) -> None:
    assert classify_nvml_error(FakeNVMLError(code)) is outcome
    assert classify_nvml_error(pynvml.NVMLError(code)) is outcome


def test_non_nvml_exceptions_are_errors() -> None:
    assert nvml_error_code(RuntimeError("x")) is None
    assert classify_nvml_error(RuntimeError("x")) is NvmlOutcome.ERROR
    odd = RuntimeError("x")
    odd.value = True  # type: ignore[attr-defined]
    assert nvml_error_code(odd) is None


def test_library_not_found_reads_well() -> None:
    mapped = map_nvml_error(pynvml.NVMLError(LIBRARY_NOT_FOUND), "initializing NVML")
    assert isinstance(mapped, SensorUnavailableError) and isinstance(mapped, CapbenchError)
    assert mapped.reason.startswith("NVML unavailable: ")
    assert "no NVIDIA driver" in mapped.reason
    assert "NVMLError_LibraryNotFound: NVML Shared Library Not Found" in mapped.reason


@pytest.mark.parametrize(
    ("code", "words"),
    [(DRIVER_NOT_LOADED, "driver is not loaded"), (NO_PERMISSION, "permission"), (18, "versions")],
)
def test_no_sensor_reasons(code: int, words: str) -> None:
    mapped = map_nvml_error(FakeNVMLError(code), "initializing NVML")
    assert isinstance(mapped, SensorUnavailableError)
    assert words in mapped.reason


def test_not_supported_is_a_feature_error() -> None:
    mapped = map_nvml_error(pynvml.NVMLError(NOT_SUPPORTED), "reading GPU 0's energy counter")
    assert isinstance(mapped, FeatureNotSupportedError)
    assert str(mapped).startswith("reading GPU 0's energy counter: not supported")


def test_other_errors_keep_nvmls_message() -> None:
    mapped = map_nvml_error(pynvml.NVMLError(GPU_IS_LOST), "reading GPU 1's power")
    assert type(mapped) is CapbenchError
    assert str(mapped) == "NVML failed while reading GPU 1's power: NVMLError_GpuIsLost: GPU is lost (NVML error 15)"
    assert describe_nvml_error(ValueError("bad")) == "ValueError: bad"


def test_requested_sensor_error_names_reason_and_fix() -> None:
    err = unavailable_with_fix("NVML unavailable: no driver")
    assert err.reason == "NVML unavailable: no driver"
    assert "pip install 'capbench[gpu]'" in str(err) and "NVIDIA driver" in str(err)
    assert "no driver" in str(err)
