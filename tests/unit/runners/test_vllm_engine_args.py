"""Engine arguments pass through unchanged; the ones capbench manages are refused with a pointer."""

from __future__ import annotations

import pytest

from capbench.config import build_run_spec
from capbench.errors import ConfigError
from capbench.runners.vllm.engine_args import check_engine_args, parse_engine_args, to_cli_args


def test_cli_values_are_typed() -> None:
    args = parse_engine_args(
        ["max-num-seqs=8", "enable_prefix_caching=false", 'compilation_config={"mode": 0}', "kv-cache-dtype=fp8"]
    )
    assert args == {
        "max_num_seqs": 8,
        "enable_prefix_caching": False,
        "compilation_config": {"mode": 0},
        "kv_cache_dtype": "fp8",
    }
    assert parse_engine_args(None) is None


@pytest.mark.parametrize("item", ["max_num_seqs", "=3", ""])
def test_malformed_engine_arg(item: str) -> None:
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_engine_args([item])


def test_to_cli_args() -> None:
    argv = to_cli_args(
        {
            "max_num_seqs": 8,
            "enable_prefix_caching": False,
            "trust-remote-code": True,
            "served_model_name": ["a", "b"],
            "compilation_config": {"mode": 0},
            "seed": None,
        }
    )
    assert argv == [
        "--max-num-seqs",
        "8",
        "--no-enable-prefix-caching",
        "--trust-remote-code",
        "--served-model-name",
        "a",
        "b",
        "--compilation-config",
        '{"mode": 0}',
    ]


@pytest.mark.parametrize("key", ["model", "port", "--host", "enforce-eager", "dtype"])
def test_managed_keys_refused(key: str) -> None:
    with pytest.raises(ConfigError, match="set by capbench"):
        check_engine_args({key: "x"})


def test_spec_validation_for_vllm() -> None:
    spec = build_run_spec(None, {"runner": "vllm", "model": "/m", "engine_args": {"max-num-seqs": 4}})
    assert spec.engine_args == {"max_num_seqs": 4}
    assert (
        build_run_spec(None, {"runner": "vllm", "base_url": "http://127.0.0.1:1/v1"}).base_url == "http://127.0.0.1:1"
    )
    with pytest.raises(ConfigError, match="needs model"):
        build_run_spec(None, {"runner": "vllm"})
    with pytest.raises(ConfigError, match="only used when capbench launches"):
        build_run_spec(None, {"runner": "vllm", "base_url": "http://h:1", "enforce_eager": True})
    with pytest.raises(ConfigError, match="only used by runner 'vllm'"):
        build_run_spec(None, {"runner": "hf", "engine_args": {"a": 1}})
    with pytest.raises(ConfigError, match="set by capbench"):
        build_run_spec(None, {"runner": "vllm", "model": "/m", "engine_args": {"port": 1}})


def test_flags_add_to_the_files_engine_args(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "run.yaml"
    config.write_text("runner: vllm\nmodel: /m\nengine_args:\n  max_num_seqs: 4\n  block_size: 16\n")
    spec = build_run_spec(config, {"engine_args": {"max_num_seqs": 8}})
    assert spec.engine_args == {"max_num_seqs": 8, "block_size": 16}
