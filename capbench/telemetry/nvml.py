"""GPU power and energy through NVML (``pynvml`` from the ``nvidia-ml-py`` distribution).

What is read, per selected GPU, every ``1 / rate_hz`` seconds (default 10 Hz):

- ``nvmlDeviceGetPowerUsage``: board power in milliwatts -> ``power_w`` (W). On recent GPUs and drivers
  this is an average over the last ~1 s, not an instantaneous value; the energy counter is exact.
- ``nvmlDeviceGetTotalEnergyConsumption``: energy in millijoules since the driver loaded -> ``energy_j``
  (J), where the GPU supports it (Volta and later). Support is detected once per GPU when the sensor opens:
  ``NotSupported`` switches the counter off for that GPU and its samples carry no ``energy_j``.

The timestamp is :func:`capbench.clock.now_ns` taken right after the GPU's reads (power, then energy), so
it is on the same clock as the request and pass timestamps. Rounds are scheduled on absolute times
(``t0 + k / rate_hz``): a slow round never shifts later rounds, and rounds whose time passed are skipped,
never run in a burst (:func:`capbench.telemetry.sensor.next_tick`). A failed read is counted per GPU and
its message kept (:meth:`NvmlSensor.stats`); it never stops sampling.

GPU selection (:func:`select_gpus`), first that applies: explicit NVML indices; ``CUDA_VISIBLE_DEVICES``
(integers and GPU UUIDs, read the way CUDA reads it); every GPU. The NVML module is a constructor argument
(``nvml=``), so tests pass a fake and the real ``pynvml`` is imported only when none is given.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NoReturn, Protocol, TypeVar

from capbench.clock import now_ns
from capbench.errors import CapbenchError
from capbench.telemetry.errors import (
    NOT_INSTALLED_REASON,
    NvmlOutcome,
    SensorUnavailableError,
    classify_nvml_error,
    describe_nvml_error,
    map_nvml_error,
    nvml_error_code,
)
from capbench.telemetry.sensor import DEFAULT_MAX_BUFFERED, BufferedSensor, GpuDevice, PowerSample, next_tick

T = TypeVar("T")
MAX_RATE_HZ = 1000.0


class NvmlApi(Protocol):
    """The part of the ``pynvml`` module capbench uses (what a test double must provide).

    Every function raises an exception with an integer ``value`` (the NVML return code) on failure;
    ``NVMLError`` is their common base class.
    """

    NVMLError: type[Exception]

    def nvmlInit(self) -> None: ...  # noqa: N802
    def nvmlShutdown(self) -> None: ...  # noqa: N802
    def nvmlDeviceGetCount(self) -> int: ...  # noqa: N802
    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any: ...  # noqa: N802
    def nvmlDeviceGetName(self, handle: Any) -> str | bytes: ...  # noqa: N802
    def nvmlDeviceGetUUID(self, handle: Any) -> str | bytes: ...  # noqa: N802
    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> Any: ...  # noqa: N802 — .total in bytes
    def nvmlDeviceGetEnforcedPowerLimit(self, handle: Any) -> int: ...  # noqa: N802 — mW
    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int: ...  # noqa: N802 — mW
    def nvmlDeviceGetTotalEnergyConsumption(self, handle: Any) -> int: ...  # noqa: N802 — mJ
    def nvmlSystemGetDriverVersion(self) -> str | bytes: ...  # noqa: N802
    def nvmlSystemGetNVMLVersion(self) -> str | bytes: ...  # noqa: N802


def load_nvml() -> Any:
    """Import the real ``pynvml``; :class:`SensorUnavailableError` when nvidia-ml-py is not installed."""
    try:
        import pynvml
    except ImportError as exc:
        raise SensorUnavailableError(NOT_INSTALLED_REASON) from exc
    return pynvml


def _text(value: str | bytes) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _optional(call: Callable[[], T]) -> T | None:
    """``call()``, or ``None`` when it raises (for descriptive fields NVML may not provide)."""
    try:
        return call()
    except Exception:
        return None


# -- GPU selection ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GpuSelection:
    """Which NVML indices to sample, chosen how (``explicit`` | ``CUDA_VISIBLE_DEVICES`` | ``all``)."""

    indices: list[int]
    source: str
    notes: list[str] = field(default_factory=list)


def _resolve_cuda_entry(entry: str, uuids: Sequence[str | None]) -> int | None:
    if re.fullmatch(r"\d+", entry):
        index = int(entry)
        return index if index < len(uuids) else None
    key = entry.lower()
    if not key.startswith("gpu-"):
        key = "gpu-" + key
    matches = [i for i, uuid in enumerate(uuids) if uuid and uuid.lower().startswith(key)]
    return matches[0] if len(matches) == 1 else None  # CUDA accepts a unique UUID prefix


def parse_cuda_visible_devices(value: str, uuids: Sequence[str | None]) -> tuple[list[int], list[str]]:
    """The NVML indices ``CUDA_VISIBLE_DEVICES=value`` makes visible, in CUDA's order, and notes.

    ``uuids[i]`` is NVML GPU i's UUID (``GPU-...``). Entries are device ordinals or GPU UUIDs (a unique
    prefix, with or without ``GPU-``). As in CUDA, the first entry that names no GPU (``-1``, an index out
    of range, an unknown UUID) ends the list: it and every later entry are ignored; an empty value hides
    every GPU. A repeated GPU is ignored. MIG instances (``MIG-...``) are not mapped: power is a whole-GPU
    quantity and capbench does not attribute it to instances.
    """
    if not value.strip():
        return [], ["CUDA_VISIBLE_DEVICES is empty: no GPU is visible"]
    selected: list[int] = []
    notes: list[str] = []
    for entry in (e.strip() for e in value.split(",")):
        if entry.upper().startswith("MIG-"):
            notes.append(
                f"CUDA_VISIBLE_DEVICES entry {entry!r} is a MIG instance, which capbench does not map to a GPU "
                "for power; it and the entries after it are ignored"
            )
            break
        index = _resolve_cuda_entry(entry, uuids)
        if index is None:
            notes.append(
                f"CUDA_VISIBLE_DEVICES entry {entry!r} names no GPU; it and the entries after it are ignored, "
                "as CUDA does"
            )
            break
        if index in selected:
            notes.append(f"CUDA_VISIBLE_DEVICES entry {entry!r} repeats GPU {index}; ignored")
            continue
        selected.append(index)
    return selected, notes


def select_gpus(
    gpus: Sequence[int] | None,
    uuids: Sequence[str | None],
    environ: Mapping[str, str] | None = None,
    names: Sequence[str] | None = None,
) -> GpuSelection:
    """Which of the ``len(uuids)`` NVML GPUs to sample.

    ``gpus`` given: those NVML indices (as ``nvidia-smi`` numbers GPUs), in that order; an index NVML does
    not have, or a repeated one, is a :class:`CapbenchError`. Else ``CUDA_VISIBLE_DEVICES`` when set
    (:func:`parse_cuda_visible_devices`). Else every GPU. ``names`` (per NVML index) only serves a warning
    note when CUDA's device order may differ from NVML's.
    """
    count = len(uuids)
    if gpus is not None:
        indices: list[int] = []
        for g in gpus:
            if isinstance(g, bool) or not isinstance(g, int) or not 0 <= g < count:
                raise CapbenchError(
                    f"GPU index {g!r} does not exist: NVML sees {count} GPU(s), indices 0 to {count - 1}"
                )
            if g in indices:
                raise CapbenchError(f"GPU index {g} is listed twice in the GPU selection {list(gpus)}")
            indices.append(g)
        return GpuSelection(indices, "explicit")
    env = os.environ if environ is None else environ
    value = env.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return GpuSelection(list(range(count)), "all")
    indices, notes = parse_cuda_visible_devices(value, uuids)
    uses_ordinals = any(re.fullmatch(r"\d+", e.strip()) for e in value.split(","))
    if uses_ordinals and env.get("CUDA_DEVICE_ORDER") != "PCI_BUS_ID" and names and len(set(names)) > 1:
        notes.append(
            "CUDA numbers GPUs fastest first unless CUDA_DEVICE_ORDER=PCI_BUS_ID, NVML by PCI bus; on this "
            "machine of mixed GPU models the CUDA_VISIBLE_DEVICES numbers may name other GPUs than CUDA uses "
            "(set CUDA_DEVICE_ORDER=PCI_BUS_ID or list GPU UUIDs)"
        )
    return GpuSelection(indices, "CUDA_VISIBLE_DEVICES", notes)


# -- device description ----------------------------------------------------------------------------------


def _uuid_of(nvml: Any, handle: Any) -> str:
    return _text(nvml.nvmlDeviceGetUUID(handle))


def _supported(call: Callable[[], object]) -> bool:
    """Probe a reading once: ``False`` when NVML says the feature is absent or no-permission, else ``True``.

    Any other failure keeps the feature on (the reads will count their errors) rather than silently
    losing a measurement the GPU has.
    """
    try:
        call()
    except Exception as exc:
        return classify_nvml_error(exc) is NvmlOutcome.ERROR
    return True


def describe_device(nvml: Any, handle: Any, index: int, driver: str | None) -> GpuDevice:
    """A :class:`GpuDevice` for NVML GPU ``index``: identity, memory, power limit, and what it can measure."""
    limit_mw = _optional(lambda: nvml.nvmlDeviceGetEnforcedPowerLimit(handle))
    memory = _optional(lambda: nvml.nvmlDeviceGetMemoryInfo(handle).total)
    uuid = _optional(lambda: nvml.nvmlDeviceGetUUID(handle))
    return GpuDevice(
        index=index,
        name=_text(nvml.nvmlDeviceGetName(handle)),
        uuid=None if uuid is None else _text(uuid),
        memory_bytes=None if memory is None else int(memory),
        driver_version=driver,
        power_limit_w=None if limit_mw is None else limit_mw / 1000.0,
        power_supported=_supported(lambda: nvml.nvmlDeviceGetPowerUsage(handle)),
        energy_counter_supported=_supported(lambda: nvml.nvmlDeviceGetTotalEnergyConsumption(handle)),
    )


def _unavailable(exc: BaseException, doing: str) -> SensorUnavailableError:
    """At open, any NVML failure means no sensor: the reason is the mapped error's text."""
    mapped = map_nvml_error(exc, doing)
    if isinstance(mapped, SensorUnavailableError):
        return mapped
    return SensorUnavailableError(f"NVML unavailable: {mapped}")


def _reraise_at_open(exc: BaseException, doing: str) -> NoReturn:
    """Raise what an exception at open becomes: NVML failures no sensor, anything else unchanged."""
    if isinstance(exc, CapbenchError) or nvml_error_code(exc) is None:
        raise exc
    raise _unavailable(exc, doing) from exc


def _shutdown_quietly(nvml: Any) -> None:
    with contextlib.suppress(Exception):
        nvml.nvmlShutdown()


@dataclass(frozen=True)
class NvmlInventory:
    """Every GPU NVML sees (no selection applied), the driver and the NVML library version."""

    devices: list[GpuDevice]
    driver: str | None
    nvml_version: str | None


def init_nvml(nvml: Any = None) -> Any:
    """The NVML module (``nvml``, default: import ``pynvml``), initialized; errors mapped by :mod:`errors`."""
    api = load_nvml() if nvml is None else nvml
    try:
        api.nvmlInit()
    except Exception as exc:
        _reraise_at_open(exc, "initializing NVML")
    return api


def nvml_inventory(nvml: Any = None) -> NvmlInventory:
    """Initialize NVML, describe every GPU, shut NVML down. :class:`SensorUnavailableError` when NVML cannot."""
    api = init_nvml(nvml)
    try:
        driver = _optional(lambda: _text(api.nvmlSystemGetDriverVersion()))
        version = _optional(lambda: _text(api.nvmlSystemGetNVMLVersion()))
        count = int(api.nvmlDeviceGetCount())
        devices = [describe_device(api, api.nvmlDeviceGetHandleByIndex(i), i, driver) for i in range(count)]
        return NvmlInventory(devices, driver, version)
    except Exception as exc:
        _reraise_at_open(exc, "listing the GPUs")
    finally:
        _shutdown_quietly(api)


# -- the sensor ------------------------------------------------------------------------------------------


class NvmlSensor(BufferedSensor):
    """Samples the selected GPUs' power (and energy counter where supported) through NVML.

    Open it with :meth:`NvmlSensor.open` (or :func:`capbench.telemetry.open_power_sensor`); the thread
    model is :class:`capbench.telemetry.sensor.BufferedSensor`'s. :meth:`close` shuts NVML down.
    """

    kind = "nvml"

    def __init__(
        self,
        nvml: Any,
        devices: Sequence[GpuDevice],
        handles: Sequence[Any],
        *,
        rate_hz: float,
        selection: GpuSelection,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
    ) -> None:
        """Wrap an initialized NVML (use :meth:`open`); :meth:`close` calls ``nvmlShutdown`` once."""
        check_rate(rate_hz)
        super().__init__(rate_hz=rate_hz, max_buffered=max_buffered)
        self._nvml = nvml
        self._devices = list(devices)
        self._handles = list(handles)
        self.selection = selection
        self._notes.extend(selection.notes)
        for d in self._devices:
            if not d.power_supported:
                self._notes.append(f"GPU {d.index} ({d.name}) reports no power reading")
            if not d.energy_counter_supported:
                self._notes.append(f"GPU {d.index} ({d.name}) has no total-energy counter; energy from sampled power")

    @classmethod
    def open(
        cls,
        gpus: Sequence[int] | None = None,
        rate_hz: float = 10.0,
        *,
        nvml: Any = None,
        environ: Mapping[str, str] | None = None,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
    ) -> NvmlSensor:
        """Initialize NVML, select GPUs (:func:`select_gpus`) and detect what each can measure.

        Raises :class:`SensorUnavailableError` (with ``reason``) when NVML is missing or fails, finds no GPU,
        or the selection is empty; :class:`CapbenchError` for an invalid explicit ``gpus`` or ``rate_hz``.
        ``nvml``: the NVML module (default: import ``pynvml``); ``environ``: default ``os.environ``.
        """
        check_rate(rate_hz)
        api = init_nvml(nvml)
        try:
            count = int(api.nvmlDeviceGetCount())
            if count == 0:
                raise SensorUnavailableError("NVML unavailable: the NVIDIA driver is loaded but NVML sees no GPU")
            handles = [api.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            uuids = [_optional(partial(_uuid_of, api, h)) for h in handles]
            names = [_text(api.nvmlDeviceGetName(h)) for h in handles]
            selection = select_gpus(gpus, uuids, environ, names)
            if not selection.indices:
                why = "; ".join(selection.notes) or "an empty GPU list was given"
                raise SensorUnavailableError(f"no GPU selected for power telemetry: {why}")
            driver = _optional(lambda: _text(api.nvmlSystemGetDriverVersion()))
            devices = [describe_device(api, handles[i], i, driver) for i in selection.indices]
            if not any(d.power_supported or d.energy_counter_supported for d in devices):
                listed = ", ".join(f"GPU {d.index} ({d.name})" for d in devices)
                raise SensorUnavailableError(f"NVML reports neither power nor an energy counter for {listed}")
        except BaseException as exc:
            _shutdown_quietly(api)
            _reraise_at_open(exc, "listing the GPUs")
        return cls(
            api,
            devices,
            [handles[i] for i in selection.indices],
            rate_hz=rate_hz,
            selection=selection,
            max_buffered=max_buffered,
        )

    def devices(self) -> list[GpuDevice]:
        return list(self._devices)

    def info(self) -> dict[str, Any]:
        return {**super().info(), "selection": self.selection.source}

    def _read_gpu(self, device: GpuDevice, handle: Any) -> PowerSample | None:
        power_w: float | None = None
        energy_j: float | None = None
        if device.power_supported:
            try:
                power_w = self._nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0  # mW -> W
            except Exception as exc:
                self._count_error(device.index, f"power: {describe_nvml_error(exc)}")
        if device.energy_counter_supported:
            try:
                energy_j = self._nvml.nvmlDeviceGetTotalEnergyConsumption(handle) / 1000.0  # mJ -> J
            except Exception as exc:
                self._count_error(device.index, f"energy: {describe_nvml_error(exc)}")
        t_ns = now_ns()
        if power_w is None and energy_j is None:
            return None
        return PowerSample(t_ns, device.index, power_w, energy_j)

    def _read_all(self) -> list[PowerSample]:
        samples = (self._read_gpu(d, h) for d, h in zip(self._devices, self._handles, strict=True))
        return [s for s in samples if s is not None]

    def _run(self, stop_event: threading.Event) -> None:
        rate = self._stats.rate_hz or 10.0
        period_ns = max(1, round(1e9 / rate))
        t0 = now_ns()
        done = 0
        while not stop_event.is_set():
            self._count_round(now_ns())
            self._emit(self._read_all())
            self._deliver_from_sampler()
            done += 1
            while True:  # wait for the next tick on the absolute schedule; skip ticks already past
                now = now_ns()
                done, skipped = next_tick(t0, period_ns, done, now)
                self._count_missed(skipped)
                due = t0 + done * period_ns
                if stop_event.wait((due - now) / 1e9):
                    return
                if now_ns() >= due:
                    break

    def _release(self) -> None:
        _shutdown_quietly(self._nvml)


def check_rate(rate_hz: float) -> None:
    """A sampling rate must be a number in (0, 1000] Hz."""
    if isinstance(rate_hz, bool) or not isinstance(rate_hz, int | float) or not 0 < rate_hz <= MAX_RATE_HZ:
        raise CapbenchError(f"power sampling rate must be in (0, {MAX_RATE_HZ:g}] Hz, got {rate_hz!r}")
