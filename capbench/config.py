"""What to run: :class:`RunSpec`, validated from YAML with command-line overrides on top.

Every field has a description (shown by ``capbench run --help``). Unknown keys and wrong types are errors
that name the key and what is allowed (:func:`format_validation_error`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from capbench.errors import ConfigError

RUNNER_NAMES: tuple[str, ...] = ("hf",)
"""Runners this build of capbench knows (see :mod:`capbench.runners`)."""


class RunSpec(BaseModel):
    """One benchmark run."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    runner: str = Field("hf", description=f"serving backend: one of {', '.join(RUNNER_NAMES)}")
    model: str | None = Field(
        None,
        description="Hugging Face model directory (local); empty = the embedded tiny MoE built locally",
    )
    prompts: str | None = Field(
        None, description='JSONL file of prompts (one {"prompt": ...} per line); empty = the shipped set'
    )
    num_requests: int = Field(16, ge=1, description="measured requests (warm-up requests come on top)")
    batch_size: int = Field(4, ge=1, description="requests the in-process runner serves together (static batch)")
    max_tokens: int = Field(32, ge=1, description="most new tokens generated per request")
    warmup: int = Field(2, ge=0, description="warm-up requests run first and excluded from metrics by id")
    ignore_eos: bool = Field(False, description="keep generating after the end-of-sequence token")
    seed: int = Field(0, description="seed for the embedded model's weights, prompt order and sampling")
    temperature: float = Field(0.0, ge=0.0, description="sampling temperature; 0 = greedy")
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="weight and activation dtype of the in-process runner"
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="where the in-process runner computes; auto = cuda when available, else cpu"
    )
    record_experts: bool = Field(
        True, description="measure expert activation with router hooks (false: experts_active is null)"
    )
    hardware: str | None = Field(
        None,
        description="hardware profile id or YAML file for S-MBU/S-MFU; empty = match the GPU, else probe the CPU",
    )
    hardware_overrides: dict[str, float] = Field(
        default_factory=dict, description="override profile figures, e.g. memory_bandwidth_bytes_per_s"
    )
    probe: bool = Field(
        True, description="on CPU, measure this machine's bandwidth and FLOP/s once (cached) as the ceiling"
    )
    usd_per_gpu_hour: float | None = Field(
        None,
        ge=0,
        description="price of one GPU-hour (on CPU: of the machine) for cost; empty = the profile's rental price",
    )
    usd_per_kwh: float | None = Field(
        None, ge=0, description="electricity price for the energy cost; empty = included in a rental price"
    )
    out: str | None = Field(None, description="run directory to create; empty = runs/<time>-<run id>")

    @field_validator("runner")
    @classmethod
    def _known_runner(cls, value: str) -> str:
        if value not in RUNNER_NAMES:
            raise ValueError(f"unknown runner {value!r}; valid runners: {', '.join(RUNNER_NAMES)}")
        return value


def _describe_error(err: Mapping[str, Any], model: type[BaseModel]) -> str:
    key = ".".join(str(part) for part in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        allowed = ", ".join(sorted(model.model_fields))
        return f"unknown key '{key}'; allowed keys: {allowed}"
    if err["type"] == "missing":
        return f"'{key}' is required"
    got = err.get("input")
    return f"'{key}': {err['msg']} (got {got!r})"


def format_validation_error(exc: ValidationError, model: type[BaseModel], source: str) -> str:
    """One line per problem, each naming the key; unknown keys list the allowed ones."""
    lines = [_describe_error(err, model) for err in exc.errors()]
    return f"invalid {source}:\n  " + "\n  ".join(lines)


def load_yaml_mapping(path: Path) -> dict[str, Any]:
    """Read a YAML file that must hold a mapping; a clear error otherwise."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of run settings, not {type(data).__name__}")
    return data


def build_run_spec(config_path: Path | None = None, overrides: Mapping[str, Any] | None = None) -> RunSpec:
    """The run spec from an optional YAML file with ``overrides`` (e.g. from the command line) on top."""
    data: dict[str, Any] = load_yaml_mapping(config_path) if config_path is not None else {}
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    source = f"run config {config_path}" if config_path is not None else "run settings"
    try:
        return RunSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, RunSpec, source)) from exc
