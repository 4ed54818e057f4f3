"""Run set-up rules without torch: which URLs are local, how many GPUs a run counts."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from capbench.run.power import is_local_url
from capbench.summary.score import device_count


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000", "http://127.0.1.1:1", "http://0.0.0.0:80"],
)
def test_loopback_urls_are_local(url: str) -> None:
    assert is_local_url(url)


def test_this_hosts_name_is_local() -> None:
    assert is_local_url(f"http://{socket.gethostname()}:8000")


def test_a_documentation_address_is_not_local() -> None:
    assert not is_local_url("http://192.0.2.10:8000")  # TEST-NET-1, never assigned to a host


@pytest.mark.parametrize(
    ("hardware", "expected"),
    [
        ({"device": "cuda", "num_gpus": 1}, 1),
        ({"device": "server", "num_gpus": 8}, 8),
        ({"device": "cpu", "num_gpus": 0}, 1),  # an in-process CPU run is one device
        ({"device": "server", "num_gpus": None}, None),  # unknown: never guessed
        ({}, None),
    ],
)
def test_device_count(hardware: dict[str, object], expected: int | None) -> None:
    assert device_count({"hardware": hardware}) == expected


def test_a_remote_server_is_not_sampled_with_this_machines_gpus() -> None:
    from capbench.config import RunSpec
    from capbench.run.power import open_run_sensor

    spec = RunSpec(runner="openai", base_url="http://192.0.2.10:8000")
    sensor = open_run_sensor(spec, "server")
    assert not sensor.available and "not on this machine" in (sensor.unavailable_reason or "")


def test_the_demo_model_has_one_name_on_every_runner(tmp_path: Path) -> None:
    from capbench.config import RunSpec
    from capbench.models.demo import DEMO_MODEL_NAME, demo_model_dir
    from capbench.run.plan import resolve_model

    demo = demo_model_dir()
    assert resolve_model(RunSpec()).name == DEMO_MODEL_NAME  # the embedded default
    assert resolve_model(RunSpec(model=str(demo))).name == DEMO_MODEL_NAME  # hf, the same directory by path
    assert resolve_model(RunSpec(runner="vllm", model=str(demo))).name == DEMO_MODEL_NAME
    other = tmp_path / "my-moe"
    other.mkdir()
    (other / "config.json").write_text('{"model_type": "qwen3_moe"}')
    (other / "tokenizer.json").write_text("{}")
    (other / "model.safetensors").write_bytes(b"")
    assert resolve_model(RunSpec(runner="vllm", model=str(other))).name == "my-moe"
