"""A fake NVML module: GPUs with scripted power, energy and failures, for tests of the power sensor without a GPU.

:class:`FakeNvml` is injected into the sensor (``NvmlSensor.open(nvml=FakeNvml(...))``); the real pynvml is
never patched. It raises :class:`FakeNVMLError` carrying NVML's integer return codes, as pynvml does. The tests
keep it to the real ``pynvml``'s interface (tests/unit/telemetry/test_fake_nvml.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace

UNINITIALIZED = 1
INVALID_ARGUMENT = 2
NOT_SUPPORTED = 3
NO_PERMISSION = 4
DRIVER_NOT_LOADED = 9
LIBRARY_NOT_FOUND = 12
FUNCTION_NOT_FOUND = 13
GPU_IS_LOST = 15
UNKNOWN = 999

_MESSAGES = {
    UNINITIALIZED: "Uninitialized",
    INVALID_ARGUMENT: "Invalid Argument",
    NOT_SUPPORTED: "Not Supported",
    NO_PERMISSION: "Insufficient Permissions",
    DRIVER_NOT_LOADED: "Driver Not Loaded",
    LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    FUNCTION_NOT_FOUND: "Function Not Found",
    GPU_IS_LOST: "GPU is lost",
    UNKNOWN: "Unknown Error",
}


class FakeNVMLError(Exception):
    """Like ``pynvml.NVMLError``: the NVML return code in ``value``."""

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return _MESSAGES.get(self.value, f"NVML error {self.value}")


@dataclass
class FakeGpu:
    """One fake GPU. Power in mW; the energy counter (mJ) grows by ``energy_step_mj`` per read."""

    name: str = "NVIDIA H100 80GB HBM3"
    uuid: str = "GPU-00000000-0000-0000-0000-000000000000"
    memory_total: int = 80 * 2**30
    power_mw: int | Callable[[], int] = 250_000
    power_limit_mw: int | None = 700_000
    power_supported: bool = True
    energy_mj: int | None = 5_000_000_000  # None: no counter (NotSupported)
    energy_step_mj: int = 0
    fail_power: int = 0  # the next N power reads fail with fail_code
    fail_energy: int = 0
    fail_code: int = GPU_IS_LOST
    power_exception: Exception | None = None  # raised on every power read when set (a non-NVML failure)
    power_reads: int = 0
    energy_reads: int = 0


@dataclass(frozen=True)
class FakeHandle:
    index: int


@dataclass
class FakeNvml:
    """The subset of pynvml capbench uses (:class:`capbench.telemetry.nvml.NvmlApi`)."""

    gpus: list[FakeGpu] = field(default_factory=lambda: [FakeGpu()])
    driver: str = "550.54.15"
    nvml_version: str = "12.550.54.15"
    init_error: int | None = None
    inits: int = 0
    shutdowns: int = 0
    NVMLError: type[Exception] = FakeNVMLError

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def _check(self) -> None:
        if self.inits <= self.shutdowns:
            raise FakeNVMLError(UNINITIALIZED)

    def _gpu(self, handle: FakeHandle) -> FakeGpu:
        self._check()
        return self.gpus[handle.index]

    def nvmlInit(self) -> None:  # noqa: N802
        if self.init_error is not None:
            raise FakeNVMLError(self.init_error)
        self.inits += 1

    def nvmlShutdown(self) -> None:  # noqa: N802
        self._check()
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        self._check()
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeHandle:  # noqa: N802
        self._check()
        if not 0 <= index < len(self.gpus):
            raise FakeNVMLError(INVALID_ARGUMENT)
        return FakeHandle(index)

    def nvmlDeviceGetName(self, handle: FakeHandle) -> str:  # noqa: N802
        return self._gpu(handle).name

    def nvmlDeviceGetUUID(self, handle: FakeHandle) -> bytes:  # noqa: N802
        return self._gpu(handle).uuid.encode()  # old pynvml returns bytes: the sensor must cope

    def nvmlDeviceGetMemoryInfo(self, handle: FakeHandle) -> SimpleNamespace:  # noqa: N802
        total = self._gpu(handle).memory_total
        return SimpleNamespace(total=total, free=total, used=0)

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: FakeHandle) -> int:  # noqa: N802
        limit = self._gpu(handle).power_limit_mw
        if limit is None:
            raise FakeNVMLError(NOT_SUPPORTED)
        return limit

    def nvmlDeviceGetPowerUsage(self, handle: FakeHandle) -> int:  # noqa: N802
        gpu = self._gpu(handle)
        with self._lock:
            gpu.power_reads += 1
            if not gpu.power_supported:
                raise FakeNVMLError(NOT_SUPPORTED)
            if gpu.power_exception is not None:
                raise gpu.power_exception
            if gpu.fail_power > 0:
                gpu.fail_power -= 1
                raise FakeNVMLError(gpu.fail_code)
        return gpu.power_mw() if callable(gpu.power_mw) else gpu.power_mw

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: FakeHandle) -> int:  # noqa: N802
        gpu = self._gpu(handle)
        with self._lock:
            gpu.energy_reads += 1
            if gpu.energy_mj is None:
                raise FakeNVMLError(NOT_SUPPORTED)
            if gpu.fail_energy > 0:
                gpu.fail_energy -= 1
                raise FakeNVMLError(gpu.fail_code)
            value = gpu.energy_mj
            gpu.energy_mj += gpu.energy_step_mj
            return value

    def nvmlSystemGetDriverVersion(self) -> str:  # noqa: N802
        self._check()
        return self.driver

    def nvmlSystemGetNVMLVersion(self) -> str:  # noqa: N802
        self._check()
        return self.nvml_version


def two_gpus(**second: object) -> FakeNvml:
    """GPU 0: an H100 with an energy counter; GPU 1: an unknown board, set up by ``second``."""
    gpu1 = FakeGpu(name="NVIDIA Fake Board", uuid="GPU-11111111-2222-3333-4444-555555555555", power_mw=90_500)
    for key, value in second.items():
        setattr(gpu1, key, value)
    return FakeNvml(gpus=[FakeGpu(uuid="GPU-aaaaaaaa-0000-0000-0000-000000000000"), gpu1])


# -- the fake keeps to the real interface ----------------------------------------------------------------
