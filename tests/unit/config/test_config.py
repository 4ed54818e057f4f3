"""RunSpec validation: YAML + overrides, unknown keys and wrong types named in the error."""

from pathlib import Path

import pytest

from capbench.config import RunSpec, build_run_spec
from capbench.errors import ConfigError


def test_defaults_are_the_embedded_run() -> None:
    spec = build_run_spec()
    assert spec.runner == "hf"
    assert spec.model is None
    # the embedded demo model answers every held-out sample of its task, 4 at a time
    assert spec.effective_task == "capbench_arithmetic"
    assert spec.effective_num_requests is None and spec.effective_concurrency == 4
    prompts = spec.model_copy(update={"task": "none"})
    assert prompts.effective_task is None and prompts.effective_num_requests == 16


def test_yaml_then_overrides(tmp_path: Path) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text("num_requests: 5\nconcurrency: 2\nmax_tokens: 7\n")
    spec = build_run_spec(cfg, {"concurrency": "3", "seed": None})
    assert (spec.num_requests, spec.concurrency, spec.max_tokens) == (5, 3, 7)


def test_unknown_key_names_key_and_lists_allowed(tmp_path: Path) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text("concurency: 2\n")
    with pytest.raises(ConfigError) as info:
        build_run_spec(cfg)
    message = str(info.value)
    assert "unknown key 'concurency'" in message
    assert "concurrency" in message and "max_tokens" in message
    assert str(cfg) in message


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"concurrency": "four"}, "'concurrency'"),
        ({"concurrency": 0}, "greater than or equal to 1"),
        ({"concurrency": 2, "request_rate": 5}, "not both"),
        ({"num_requests": 2, "duration_s": 5}, "not both"),
        ({"runner": "openai"}, "needs base_url"),
        ({"base_url": "http://127.0.0.1:1"}, "base_url: not used by runner 'hf'"),
        ({"slo": {"ttft": 1}}, "unknown SLO 'ttft'"),
        ({"slo": {"ttft_s": 0}}, "positive number of seconds"),
        ({"gpus": [0, 0]}, "distinct non-negative"),
        ({"dtype": "int3"}, "'float32', 'bfloat16' or 'float16'"),
        ({"runner": "nope"}, "valid runners: hf, openai"),
        ({"temperature": -1}, "'temperature'"),
    ],
)
def test_wrong_values_are_named(override: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_run_spec(overrides=override)
    assert expected in str(info.value)


def test_yaml_must_be_a_mapping(tmp_path: Path) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        build_run_spec(cfg)


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        build_run_spec(bad)
    with pytest.raises(ConfigError, match="cannot read config file"):
        build_run_spec(tmp_path / "missing.yaml")


def test_every_field_has_a_description() -> None:
    assert all(field.description for field in RunSpec.model_fields.values())
