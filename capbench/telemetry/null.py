"""The null sensor: no GPU power telemetry here, and why.

:func:`capbench.telemetry.open_power_sensor` returns it in ``"auto"`` mode when NVML cannot be used (and for
``"none"``), so a run completes without a sensor: ``power.jsonl`` stays absent and energy is null, never 0.
Every method is a cheap no-op; ``unavailable_reason`` says why there is no sensor.
"""

from __future__ import annotations

from typing import Any, Self

from capbench.telemetry.sensor import Delivery, GpuDevice, PowerSample, SensorStats, Sink


class NullSensor:
    """A :class:`~capbench.telemetry.sensor.PowerSensor` that measures nothing and carries the reason."""

    kind = "none"

    def __init__(self, reason: str) -> None:
        self.unavailable_reason: str | None = reason

    @property
    def available(self) -> bool:
        return False

    def devices(self) -> list[GpuDevice]:
        return []

    def start(self, sink: Sink | None = None, *, delivery: Delivery = "drain") -> None:
        """Nothing to sample; the sink is never called."""

    def drain(self) -> list[dict[str, Any]]:
        return []

    def stop(self) -> None:
        """Nothing to stop."""

    def close(self) -> None:
        """Nothing to release."""

    def sample_now(self, *, record: bool = True) -> list[PowerSample]:
        return []

    def read_energy_j(self) -> dict[int, float | None]:
        return {}

    def stats(self) -> SensorStats:
        return SensorStats()

    def info(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "available": False,
            "unavailable_reason": self.unavailable_reason,
            "delivery": None,
            "gpus": [],
            **SensorStats().to_dict(),
            "notes": [],
        }

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"NullSensor(reason={self.unavailable_reason!r})"
