"""Reading settings files: YAML that refuses a key given twice, and validation errors as one line per problem.

Shared by run configs (:mod:`capbench.config`) and sweep files (:mod:`capbench.sweep.spec`).
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from capbench.errors import ConfigError


def _describe_error(err: Mapping[str, Any], model: type[BaseModel]) -> str:
    key = ".".join(str(part) for part in err["loc"])
    if not key:  # a rule across several keys: its message names them
        return str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        allowed = ", ".join(sorted(model.model_fields))
        return f"unknown key '{key}'; allowed keys: {allowed}"
    if err["type"] == "missing":
        return f"'{key}' is required"
    got = err.get("input")
    return f"'{key}': {err['msg']} (got {got!r})"


def leaf_types(annotation: Any) -> set[Any]:
    """The plain types a (possibly Optional / union / Literal) annotation admits."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return {type(a) for a in args}
    if not args:
        return {annotation}
    if typing.get_origin(annotation) in (list, dict, tuple, set):
        return {typing.get_origin(annotation)}
    out: set[Any] = set()
    for arg in args:
        out |= leaf_types(arg)
    return out


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a mapping"}


def type_name(annotation: Any) -> str:
    names = sorted(_TYPE_NAMES.get(t, getattr(t, "__name__", str(t))) for t in leaf_types(annotation))
    return " or ".join(n for n in names if n != "NoneType") or "a value"


class DuplicateKeyError(yaml.YAMLError):
    """A YAML mapping gives one key twice."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice in one mapping (the last one would silently win)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise DuplicateKeyError(f"line {line}: the key {key!r} is given twice (first on line {seen[key]})")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def load_yaml_text(text: str) -> Any:
    """Parse YAML like ``yaml.safe_load``, but a key given twice in a mapping is an error."""
    return yaml.load(text, Loader=_UniqueKeyLoader)


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
        data = load_yaml_text(text)
    except DuplicateKeyError as exc:
        raise ConfigError(f"{path}, {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of run settings, not {type(data).__name__}")
    return data
