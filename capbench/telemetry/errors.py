"""The one place that turns NVML (vendor) errors into capbench outcomes.

Every NVML call in capbench goes through :func:`classify_nvml_error` / :func:`map_nvml_error` when it fails, so
the same failure always reads the same way. Three outcomes:

- ``NO_SENSOR`` — power cannot be measured on this machine at all: the NVML library is missing (no NVIDIA
  driver), the driver is not loaded, the process lacks permission, or the library and kernel driver versions
  differ. The run goes on without a sensor and says why (:class:`SensorUnavailableError` carries the reason).
- ``NOT_SUPPORTED`` — one feature is absent on one device (e.g. the total-energy counter on a pre-Volta GPU,
  or a function the installed driver does not export). The feature is switched off for that device.
- ``ERROR`` — anything else (GPU lost, timeout, unknown): a :class:`capbench.errors.CapbenchError` carrying
  NVML's own message.

Errors are recognized by their integer NVML return code (the exception's ``value`` attribute, which
``pynvml.NVMLError`` and every subclass carry), not by class, so a test double only needs that attribute.
The codes are NVML's public C API (``nvmlReturn_t`` in ``nvml.h``); they never change meaning.
"""

from __future__ import annotations

from enum import StrEnum

from capbench.errors import CapbenchError

# nvmlReturn_t codes (nvml.h) that the map distinguishes.
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_OPERATING_SYSTEM = 17
NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18

INSTALL_FIX = (
    "install the NVIDIA driver (it provides libnvidia-ml.so.1) and the NVML bindings: pip install 'capbench[gpu]'"
)
NOT_INSTALLED_REASON = "nvidia-ml-py (module pynvml) is not installed (pip install 'capbench[gpu]')"


class NvmlOutcome(StrEnum):
    """What an NVML failure means for capbench."""

    NO_SENSOR = "no_sensor"
    NOT_SUPPORTED = "not_supported"
    ERROR = "error"


# code -> (outcome, readable explanation). Codes not listed are ERROR with NVML's message.
_MAP: dict[int, tuple[NvmlOutcome, str]] = {
    NVML_ERROR_LIBRARY_NOT_FOUND: (
        NvmlOutcome.NO_SENSOR,
        "the NVML library (libnvidia-ml.so.1) was not found: no NVIDIA driver is installed on this machine",
    ),
    NVML_ERROR_DRIVER_NOT_LOADED: (
        NvmlOutcome.NO_SENSOR,
        "the NVIDIA kernel driver is not loaded (no NVIDIA GPU, or the driver failed to start)",
    ),
    NVML_ERROR_NO_PERMISSION: (
        NvmlOutcome.NO_SENSOR,
        "this process lacks permission to query the GPU through NVML (check /dev/nvidia* access)",
    ),
    NVML_ERROR_LIB_RM_VERSION_MISMATCH: (
        NvmlOutcome.NO_SENSOR,
        "the NVML library and the loaded kernel driver have different versions (driver updated without a reboot?)",
    ),
    NVML_ERROR_OPERATING_SYSTEM: (
        NvmlOutcome.NO_SENSOR,
        "the operating system blocked the NVML request (container without GPU access?)",
    ),
    NVML_ERROR_NOT_SUPPORTED: (NvmlOutcome.NOT_SUPPORTED, "not supported by this device or driver"),
    NVML_ERROR_FUNCTION_NOT_FOUND: (
        NvmlOutcome.NOT_SUPPORTED,
        "the installed NVIDIA driver does not provide this NVML function (driver too old)",
    ),
}


class SensorUnavailableError(CapbenchError):
    """No power sensor can be opened here; ``reason`` says why in one readable sentence."""

    def __init__(self, reason: str, message: str | None = None) -> None:
        super().__init__(message or reason)
        self.reason = reason


class FeatureNotSupportedError(CapbenchError):
    """One NVML feature is absent on one device (the caller switches that feature off)."""


def nvml_error_code(exc: BaseException) -> int | None:
    """The NVML return code an exception carries (its ``value``), or ``None`` for a non-NVML exception."""
    value = getattr(exc, "value", None)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def classify_nvml_error(exc: BaseException) -> NvmlOutcome:
    """``NO_SENSOR``, ``NOT_SUPPORTED`` or ``ERROR`` for an exception raised by an NVML call."""
    code = nvml_error_code(exc)
    if code is None:
        return NvmlOutcome.ERROR
    return _MAP.get(code, (NvmlOutcome.ERROR, ""))[0]


def describe_nvml_error(exc: BaseException) -> str:
    """A readable sentence: capbench's explanation where it has one, then NVML's own class and message."""
    code = nvml_error_code(exc)
    own = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if code is None:
        return own
    explanation = _MAP.get(code, (NvmlOutcome.ERROR, ""))[1]
    return f"{explanation} ({own})" if explanation else f"{own} (NVML error {code})"


def map_nvml_error(exc: BaseException, doing: str) -> CapbenchError:
    """The capbench error for an NVML failure while ``doing`` something (e.g. ``"reading GPU 0's power"``).

    ``NO_SENSOR`` -> :class:`SensorUnavailableError` (``reason`` = "NVML unavailable: ..."),
    ``NOT_SUPPORTED`` -> :class:`FeatureNotSupportedError`, anything else -> :class:`CapbenchError`. The
    caller raises it (``raise map_nvml_error(exc, ...) from exc``) or keeps it as a recorded error.
    """
    text = describe_nvml_error(exc)
    outcome = classify_nvml_error(exc)
    if outcome is NvmlOutcome.NO_SENSOR:
        return SensorUnavailableError(f"NVML unavailable: {text}")
    if outcome is NvmlOutcome.NOT_SUPPORTED:
        return FeatureNotSupportedError(f"{doing}: {text}")
    return CapbenchError(f"NVML failed while {doing}: {text}")


def unavailable_with_fix(reason: str) -> SensorUnavailableError:
    """The error for an explicitly requested NVML sensor that cannot open: the reason and how to fix it."""
    return SensorUnavailableError(
        reason,
        f"power sensor 'nvml' was requested, but {reason}. To fix: {INSTALL_FIX}; "
        "or choose the power sensor 'auto' (falls back to no sensor) or 'none'.",
    )
