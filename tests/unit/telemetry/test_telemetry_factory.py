"""open_power_sensor: NVML when it works, the null sensor with the reason when not, a clear error on request."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from capbench.errors import CapbenchError
from capbench.hardware.gpus import describe_gpus
from capbench.telemetry import (
    NullSensor,
    NvmlSensor,
    SensorUnavailableError,
    nvml_inventory,
    open_power_sensor,
)
from capbench.telemetry.errors import describe_nvml_error
from capbench.telemetry.sensor import PowerSensor
from capbench.testing.fake_nvml import (
    DRIVER_NOT_LOADED,
    LIBRARY_NOT_FOUND,
    NO_PERMISSION,
    FakeGpu,
    FakeNvml,
    two_gpus,
)
from tests.support.paths import REPO

NO_ENV: dict[str, str] = {}


def test_auto_opens_nvml_when_it_finds_a_gpu() -> None:
    sensor = open_power_sensor("auto", None, 20.0, nvml=two_gpus(), environ=NO_ENV)
    try:
        assert isinstance(sensor, NvmlSensor) and sensor.available
        assert sensor.stats().rate_hz == 20.0
    finally:
        sensor.close()


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (LIBRARY_NOT_FOUND, "NVMLError"),
        (DRIVER_NOT_LOADED, "driver is not loaded"),
        (NO_PERMISSION, "permission"),
    ],
)
def test_auto_without_nvml_is_the_null_sensor_with_the_reason(code: int, words: str) -> None:
    sensor = open_power_sensor("auto", nvml=FakeNvml(init_error=code), environ=NO_ENV)
    assert isinstance(sensor, NullSensor) and isinstance(sensor, PowerSensor)
    assert not sensor.available and sensor.unavailable_reason and words in sensor.unavailable_reason
    records: list[dict[str, object]] = []
    with sensor:  # the whole lifecycle works and yields nothing: energy null, never 0
        sensor.start(records.append)
        assert sensor.sample_now() == [] and sensor.read_energy_j() == {}
        sensor.stop()
        sensor.stop()
    assert records == [] and sensor.drain() == [] and sensor.devices() == []
    assert describe_gpus(sensor.devices()) == []
    info = sensor.info()
    assert info["available"] is False and info["unavailable_reason"] == sensor.unavailable_reason
    assert info["samples"] == 0 and info["period_s_measured"] is None


def test_auto_with_no_gpu_or_nothing_selected_is_the_null_sensor() -> None:
    sensor = open_power_sensor("auto", nvml=FakeNvml(gpus=[]), environ=NO_ENV)
    assert isinstance(sensor, NullSensor) and "sees no GPU" in (sensor.unavailable_reason or "")
    fake = two_gpus()
    sensor = open_power_sensor("auto", nvml=fake, environ={"CUDA_VISIBLE_DEVICES": "-1"})
    assert isinstance(sensor, NullSensor) and "CUDA_VISIBLE_DEVICES" in (sensor.unavailable_reason or "")
    assert fake.shutdowns == fake.inits == 1
    sensor = open_power_sensor("auto", [], nvml=two_gpus(), environ=NO_ENV)
    assert isinstance(sensor, NullSensor) and "empty GPU list" in (sensor.unavailable_reason or "")


def test_auto_when_no_gpu_measures_power_is_the_null_sensor() -> None:
    fake = FakeNvml(gpus=[FakeGpu(power_supported=False, energy_mj=None)])
    sensor = open_power_sensor("auto", nvml=fake, environ=NO_ENV)
    assert isinstance(sensor, NullSensor) and "neither power nor an energy counter" in (sensor.unavailable_reason or "")


def test_nvml_requested_without_nvml_is_a_clear_error() -> None:
    with pytest.raises(SensorUnavailableError) as info:
        open_power_sensor("nvml", nvml=FakeNvml(init_error=LIBRARY_NOT_FOUND), environ=NO_ENV)
    message = str(info.value)
    assert "power sensor 'nvml' was requested" in message
    assert "libnvidia-ml.so.1" in message and "pip install 'capbench[gpu]'" in message
    assert isinstance(info.value, CapbenchError)


def test_none_is_the_null_sensor() -> None:
    sensor = open_power_sensor("none", nvml=two_gpus(), environ=NO_ENV)
    assert isinstance(sensor, NullSensor) and "off" in (sensor.unavailable_reason or "")


def test_unknown_kind() -> None:
    with pytest.raises(CapbenchError, match="unknown power sensor 'rapl'"):
        open_power_sensor("rapl")  # type: ignore[arg-type]


def test_nvidia_ml_py_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    sensor = open_power_sensor("auto")
    assert isinstance(sensor, NullSensor)
    assert "pip install 'capbench[gpu]'" in (sensor.unavailable_reason or "")
    with pytest.raises(SensorUnavailableError, match="nvidia-ml-py") as raised:
        open_power_sensor("nvml")
    with pytest.raises(SensorUnavailableError) as listed:
        nvml_inventory()
    assert listed.value.reason == raised.value.reason  # one message, however NVML is reached


def _real_nvml_init_error() -> BaseException | None:
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return exc
    pynvml.nvmlShutdown()
    return None


def test_real_pynvml_without_a_driver_gives_the_null_sensor() -> None:
    error = _real_nvml_init_error()
    if error is None:
        pytest.skip("NVML works on this machine")
    sensor = open_power_sensor("auto")
    assert isinstance(sensor, NullSensor)
    assert sensor.unavailable_reason == f"NVML unavailable: {describe_nvml_error(error)}"
    if type(error).__name__ == "NVMLError_LibraryNotFound":  # the project's CPU machines
        assert "NVMLError_LibraryNotFound" in sensor.unavailable_reason
        assert "no NVIDIA driver" in sensor.unavailable_reason
    with pytest.raises(SensorUnavailableError, match="pip install 'capbench\\[gpu\\]'"):
        open_power_sensor("nvml")


def test_real_nvml_inventory_says_why_it_is_unavailable() -> None:
    error = _real_nvml_init_error()
    if error is None:
        assert nvml_inventory().driver is not None
        return
    with pytest.raises(SensorUnavailableError) as raised:
        nvml_inventory()
    assert raised.value.reason == f"NVML unavailable: {describe_nvml_error(error)}"


def test_nvml_inventory_lists_every_gpu_whatever_the_selection() -> None:
    fake = two_gpus(energy_mj=None)
    inventory = nvml_inventory(fake)
    assert [d.name for d in inventory.devices] == ["NVIDIA H100 80GB HBM3", "NVIDIA Fake Board"]
    assert inventory.driver == "550.54.15" and inventory.nvml_version == "12.550.54.15"
    assert [d.energy_counter_supported for d in inventory.devices] == [True, False]
    assert fake.inits == fake.shutdowns == 1
    with pytest.raises(SensorUnavailableError, match="driver is not loaded"):
        nvml_inventory(FakeNvml(init_error=DRIVER_NOT_LOADED))


def test_record_script_exits_cleanly_without_a_gpu(tmp_path: Path) -> None:
    if _real_nvml_init_error() is None:
        pytest.skip("a GPU is present: the script would record")
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "record_power_trace.py"), "--out-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert "no NVIDIA GPU to record" in done.stdout
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []
