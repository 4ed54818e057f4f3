"""A sweep file and its expansion into points (one validated :class:`~capbench.config.RunSpec` each).

A sweep file (YAML)::

    name: demo-moe-cpu
    base: {task: auto, usd_per_gpu_hour: 0.09}      # any run setting (or base_config: a run YAML)
    axes:                                            # the grid: every combination, in this order
      top_k: [1, 2]
      dtype: [float32, bfloat16]
      concurrency: [4, 16]
      engine_args.max_num_seqs: [8, 64]              # a dotted key sets one engine argument
    exclude: [{top_k: 1, dtype: bfloat16}]           # drop grid points matching every key of an entry
    include: [{top_k: 8, concurrency: 16}]           # extra points (base + these settings), after the grid

Expansion: the Cartesian product of ``axes`` (first axis slowest), minus points matching an ``exclude``
entry, then the ``include`` entries; each point is ``base`` updated with its assignment and validated as a
run (every point before any runs). A point's id is the first 12 hex digits of the SHA-256 of its resolved run
settings (canonical JSON, keys sorted, the settings base and assignment give, ``out`` left out), so the same
configuration always has the same id, whichever axis or include produced it; duplicates collapse to the
first. A setting given at its default value is part of the configuration (and of the point's config.yaml):
some runners treat "not given" as "the engine's own default".
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from capbench.config import RunSpec, build_run_spec
from capbench.errors import ConfigError
from capbench.settings_files import format_validation_error, load_yaml_mapping

POINT_ID_HEX = 12
"""Hex digits of the SHA-256 a point id keeps (48 bits: a collision needs ~10^7 points)."""

NOT_SWEEPABLE = frozenset({"out"})
"""Run settings a sweep sets itself: each point's run directory."""


_SAFE_NAME = re.compile(r"(?!.*\.\.)[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")


class SweepSpec(BaseModel):
    """A sweep file: a base run configuration, the axes to vary, and explicit include/exclude lists."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(
        None,
        description="a name for the sweep (shown in its manifest and summary; the default output directory is "
        "runs/sweep-<name>): letters, digits, '.', '_' and '-', not starting with '.'",
    )

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str | None) -> str | None:
        """The name becomes a directory name: no path separators, no '..', nothing hidden or empty."""
        if value is not None and not _SAFE_NAME.fullmatch(value):
            raise ValueError(
                f"name {value!r} must be letters, digits, '.', '_' and '-' (no '/', no '..', not starting with '.'), "
                "because it names the output directory"
            )
        return value

    base_config: str | None = Field(None, description="a run YAML the base starts from (relative to this file)")
    base: dict[str, Any] = Field(default_factory=dict, description="run settings every point shares")
    axes: dict[str, list[Any]] = Field(default_factory=dict, description="run setting -> the values to sweep")
    include: list[dict[str, Any]] = Field(default_factory=list, description="extra points: settings over base")
    exclude: list[dict[str, Any]] = Field(
        default_factory=list, description="grid points to drop: those matching every key of an entry"
    )

    @field_validator("axes")
    @classmethod
    def _axes(cls, value: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in value.items():
            if not values:
                raise ValueError(f"axis {key!r} has no values")
            seen = [json.dumps(v, sort_keys=True, default=str) for v in values]
            if len(set(seen)) != len(seen):
                raise ValueError(f"axis {key!r} lists a value twice: {values}")
        return value


@dataclass(frozen=True)
class Point:
    """One configuration of the grid: its id, the settings that made it, and the validated run spec."""

    id: str
    assignment: dict[str, Any]
    spec: RunSpec
    origin: str
    """``grid`` or ``include[i]``."""

    def config(self) -> dict[str, Any]:
        """The point's run settings as a run YAML mapping (without ``out``; the sweep sets it)."""
        return self.spec.model_dump(mode="json", exclude={"out"}, exclude_unset=True)

    def config_yaml(self) -> str:
        return yaml.safe_dump(self.config(), sort_keys=True)

    def label(self) -> str:
        """The assignment as ``key=value`` pairs (what distinguishes the point), or ``base`` when empty."""
        return assignment_label(self.assignment)


def assignment_label(assignment: Mapping[str, Any]) -> str:
    """``key=value, ...`` (strings bare, anything else as JSON), or ``base`` for an empty assignment."""
    return ", ".join(f"{k}={_show(v)}" for k, v in assignment.items()) or "base"


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def point_id(spec: RunSpec) -> str:
    """SHA-256 (first :data:`POINT_ID_HEX` hex digits) of the canonical JSON of the settings given, without ``out``.

    A setting given at its default value counts as given: for some runners "not given" means the engine's own
    default (a launched vLLM without ``dtype`` computes in the model's dtype, not in the field's default).
    """
    settings = spec.model_dump(mode="json", exclude={"out"}, exclude_unset=True)
    canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:POINT_ID_HEX]


def load_sweep(path: Path) -> SweepSpec:
    """Read and validate a sweep file; errors name the key and the file."""
    data = load_yaml_mapping(path)
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, SweepSpec, f"sweep file {path}")) from exc


def _apply(settings: dict[str, Any], key: str, value: Any) -> None:
    """``settings[key] = value``; a dotted key (``engine_args.X``, ``slo.X``, ...) sets one entry of a mapping."""
    head, dot, tail = key.partition(".")
    if head in NOT_SWEEPABLE:
        raise ConfigError(f"the sweep sets each point's {head!r} itself; remove it from the sweep file")
    if not dot:
        settings[key] = value
        return
    if head not in RunSpec.model_fields or not tail:
        raise ConfigError(f"unknown sweep key {key!r}: a dotted key is <mapping setting>.<entry>, e.g. engine_args.X")
    current = settings.get(head)
    if current is not None and not isinstance(current, dict):
        raise ConfigError(f"{head} is not a mapping setting, so {key!r} cannot set one entry of it")
    inner = dict(current or {})
    inner[tail] = value
    settings[head] = inner


def _matches(assignment: Mapping[str, Any], pattern: Mapping[str, Any]) -> bool:
    return all(key in assignment and assignment[key] == value for key, value in pattern.items())


def expand(sweep: SweepSpec, *, base_dir: Path | None = None) -> list[Point]:
    """Every point of ``sweep`` in order (grid, then includes), validated; duplicates keep the first.

    ``base_dir`` resolves a relative ``base_config`` (the sweep file's folder). Raises :class:`ConfigError`
    naming the point when any point is not a valid run, an exclude key is not an axis, or nothing remains.
    """
    base: dict[str, Any] = {}
    if sweep.base_config is not None:
        config = Path(sweep.base_config)
        if not config.is_absolute() and base_dir is not None:
            config = base_dir / config
        base = load_yaml_mapping(config)
    for key, value in sweep.base.items():
        _apply(base, key, value)
    for i, pattern in enumerate(sweep.exclude):
        unknown = sorted(set(pattern) - set(sweep.axes))
        if unknown:
            raise ConfigError(f"exclude[{i}] names {unknown}, which are not axes ({sorted(sweep.axes)})")
    assignments: list[tuple[dict[str, Any], str]] = []
    keys = list(sweep.axes)
    for values in itertools.product(*(sweep.axes[k] for k in keys)):
        assignment = dict(zip(keys, values, strict=True))
        if not any(_matches(assignment, pattern) for pattern in sweep.exclude):
            assignments.append((assignment, "grid"))
    assignments.extend((dict(entry), f"include[{i}]") for i, entry in enumerate(sweep.include))
    points: list[Point] = []
    seen: set[str] = set()
    for assignment, origin in assignments:
        settings = json.loads(json.dumps(base))  # a deep copy
        for key, value in assignment.items():
            _apply(settings, key, value)
        label = assignment_label(assignment)
        try:
            spec = build_run_spec(None, settings)
        except ConfigError as exc:
            raise ConfigError(f"sweep point {label} ({origin}) is not a valid run: {exc}") from exc
        pid = point_id(spec)
        if pid not in seen:
            seen.add(pid)
            points.append(Point(pid, assignment, spec, origin))
    if not points:
        raise ConfigError("the sweep has no points (every grid point was excluded and nothing is included)")
    return points
