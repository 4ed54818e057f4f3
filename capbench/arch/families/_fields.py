"""Reading fields out of a ``config.json`` with the error messages a user can act on.

Every family module reads its config through a :class:`ConfigReader`, so a missing or malformed field is a
:class:`~capbench.errors.CapbenchError` that names the field, the accepted aliases and the ``model_type``.

Field aliases: transformers renames some keys across versions (``num_experts`` / ``num_local_experts``,
``num_nextn_predict_layers`` / ``num_mtp_layers``, ``torch_dtype`` / ``dtype``). A reader method takes the
accepted spellings in order of preference; when several are present they must agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from capbench.errors import CapbenchError

_MISSING = object()


class ConfigReader:
    """Typed, validated access to one ``config.json`` mapping (or one nested sub-mapping of it).

    Args:
        config: the parsed JSON object.
        model_type: the family being read, for error messages.
        where: how to name this mapping in messages (``"config.json"``, ``"config.json ffn_config"``).
    """

    def __init__(self, config: Mapping[str, Any], model_type: str, where: str = "config.json") -> None:
        self._config = config
        self.model_type = model_type
        self.where = where

    # ----------------------------------------------------------------- raw access
    def has(self, name: str) -> bool:
        """Whether ``name`` is present (a JSON ``null`` counts as present)."""
        return name in self._config

    def _lookup(self, names: tuple[str, ...]) -> tuple[str, Any]:
        """The first present alias and its value, checking that present aliases agree."""
        found = [(name, self._config[name]) for name in names if name in self._config]
        if not found:
            return names[0], _MISSING
        non_null = [(name, value) for name, value in found if value is not None]
        if any(value != non_null[0][1] for _, value in non_null[1:]):
            shown = ", ".join(f"{name}={value!r}" for name, value in non_null)
            raise CapbenchError(
                f"{self.where} for model_type {self.model_type!r} has conflicting aliases: {shown}. "
                "Keep one of them (they name the same field)."
            )
        return non_null[0] if non_null else found[0]

    def _missing(self, names: tuple[str, ...]) -> CapbenchError:
        also = f" (also accepted: {', '.join(repr(n) for n in names[1:])})" if len(names) > 1 else ""
        return CapbenchError(
            f"{self.where} for model_type {self.model_type!r} is missing the required field "
            f"{names[0]!r}{also}. Add it to the config (see the model's published config.json)."
        )

    def _as_int(self, name: str, value: Any, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise CapbenchError(
                f"{self.where} for model_type {self.model_type!r}: field {name!r} must be an integer, got {value!r}"
            )
        if value < minimum:
            raise CapbenchError(
                f"{self.where} for model_type {self.model_type!r}: field {name!r} must be >= {minimum}, got {value!r}"
            )
        return int(value)

    # ----------------------------------------------------------------- integers
    def require_int(self, *names: str, minimum: int = 1) -> int:
        """A required integer (>= ``minimum``); absent or null is an error naming the field."""
        name, value = self._lookup(names)
        if value is _MISSING or value is None:
            raise self._missing(names)
        return self._as_int(name, value, minimum)

    def int_or(self, default: int, *names: str, minimum: int = 0) -> int:
        """An integer that defaults to ``default`` when absent or null."""
        name, value = self._lookup(names)
        if value is _MISSING or value is None:
            return default
        return self._as_int(name, value, minimum)

    def nullable_int(self, *names: str, minimum: int = 1) -> int | None:
        """A required key whose value may be ``null`` (meaning "not used"); absent is an error."""
        name, value = self._lookup(names)
        if value is _MISSING:
            raise self._missing(names)
        if value is None:
            return None
        return self._as_int(name, value, minimum)

    def optional_int(self, *names: str, minimum: int = 1) -> int | None:
        """An integer, or ``None`` when absent or null."""
        name, value = self._lookup(names)
        if value is _MISSING or value is None:
            return None
        return self._as_int(name, value, minimum)

    def int_list(self, name: str) -> tuple[int, ...]:
        """A list of non-negative integers; absent or null is the empty tuple."""
        _, value = self._lookup((name,))
        if value is _MISSING or value is None:
            return ()
        if not isinstance(value, list):
            raise CapbenchError(
                f"{self.where} for model_type {self.model_type!r}: field {name!r} must be a list of "
                f"integers, got {value!r}"
            )
        return tuple(self._as_int(name, item, 0) for item in value)

    # ----------------------------------------------------------------- other types
    def bool_or(self, default: bool, name: str) -> bool:
        """A boolean that defaults to ``default`` when absent or null."""
        _, value = self._lookup((name,))
        if value is _MISSING or value is None:
            return default
        if not isinstance(value, bool):
            raise CapbenchError(
                f"{self.where} for model_type {self.model_type!r}: field {name!r} must be true or false, got {value!r}"
            )
        return value

    def str_list(self, name: str) -> tuple[str, ...] | None:
        """A list of strings, or ``None`` when absent or null."""
        _, value = self._lookup((name,))
        if value is _MISSING or value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise CapbenchError(
                f"{self.where} for model_type {self.model_type!r}: field {name!r} must be a list of "
                f"strings, got {value!r}"
            )
        return tuple(value)

    def sub(self, name: str) -> ConfigReader:
        """A nested mapping (e.g. DBRX's ``ffn_config``) as its own reader; absent is an error."""
        _, value = self._lookup((name,))
        if value is _MISSING or value is None:
            raise self._missing((name,))
        if not isinstance(value, Mapping):
            raise CapbenchError(
                f"{self.where} for model_type {self.model_type!r}: field {name!r} must be an object, got {value!r}"
            )
        return ConfigReader(value, self.model_type, f"{self.where} {name}")
