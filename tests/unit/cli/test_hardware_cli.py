"""``capbench profiles list|show|match`` through a local parser (the dispatcher may list modules not yet written)."""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest

from capbench.cli import profiles
from capbench.errors import CapbenchError
from tests.support.paths import REPO

PROFILES_DIR = REPO / "hardware_profiles"


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="capbench")
    profiles.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.handler(args))


def run_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> Any:
    assert run([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_list_json_is_si_full_precision(capsys: pytest.CaptureFixture[str]) -> None:
    data = run_json(["profiles", "list"], capsys)
    by_id = {p["id"]: p for p in data}
    assert by_id["h100-sxm"]["peak_flops_per_s"]["bf16"] == 989.4e12
    assert by_id["a100-sxm4-80gb"]["memory_bandwidth_bytes_per_s"] == 2.039e12
    assert "fp8" not in by_id["a100-sxm4-80gb"]["peak_flops_per_s"]


def test_list_table(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert run(["profiles", "list"]) == 0
    out = capsys.readouterr().out
    assert "h100-sxm" in out and "989.4" in out and "3.35" in out


def test_show_with_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    data = run_json(
        ["profiles", "show", "h100-sxm", "--set", "peak_flops_per_s.bf16=1e15", "--set", "tdp_w=650"], capsys
    )
    assert data["peak_flops_per_s"]["bf16"] == 1e15 and data["tdp_w"] == 650
    assert data["sources"]["tdp_w"].startswith("override (command line)")


def test_show_table_marks_overrides(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert run(["profiles", "show", "mi300x", "--set", "tdp_w=700"]) == 0
    out = capsys.readouterr().out
    assert "1,307" in out and "TFLOP/s" in out and "TB/s" in out and "* overridden" in out


def test_show_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    data = run_json(["profiles", "show", str(PROFILES_DIR / "b200.yaml")], capsys)
    assert data["id"] == "b200" and data["peak_flops_per_s"]["fp4"] == 9e15


def test_show_errors() -> None:
    with pytest.raises(CapbenchError, match="valid ids"):
        run(["profiles", "show", "h900"])
    with pytest.raises(CapbenchError, match="unknown override key 'tdp'"):
        run(["profiles", "show", "h100-sxm", "--set", "tdp=1"])
    with pytest.raises(CapbenchError, match="tdp_w must be a positive number"):
        run(["profiles", "show", "h100-sxm", "--set", "tdp_w=lots"])


def test_match(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["profiles", "match", "NVIDIA H100 80GB HBM3"]) == 0
    assert capsys.readouterr().out.strip() == "h100-sxm"
    assert run(["profiles", "match", "NVIDIA H100 NVL"]) == 1
    assert "no profile matches 'NVIDIA H100 NVL'" in capsys.readouterr().err
    assert run_json(["profiles", "match", "AMD Instinct MI300X"], capsys)["id"] == "mi300x"


@pytest.mark.parametrize("action", ["list", "show", "probe", "match"])
def test_help(action: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run(["profiles", action, "--help"])
    assert exit_info.value.code == 0
    assert "--json" in capsys.readouterr().out
