"""Engine-step records on disk, compactly (schema version 3; docs/records.md ``passes.jsonl``).

A runner hands a pass record over with three lists of integers: ``reqs`` (``[n_i, c_i]`` per request),
``experts_active`` (per MoE layer, or null) and ``expert_tokens`` (per MoE layer, per expert, or null). As JSON
lists they are most of a step's line, and a reader converts each integer on its own. From schema version 3 the
files hold the same integers, exactly, each list as one string of base64 varints (:mod:`capbench.varints`):

- ``reqs_b64``: n_0, c_0, n_1, c_1, … (two integers per request);
- ``experts_active_b64``: one integer per MoE layer; null when routing was not measured;
- ``expert_tokens_b64``: layer 0's E counts, then layer 1's, …; null when not recorded. E is the count over
  the number of layers, which ``experts_active_b64`` gives (it is never null when this is not).

Every other field is unchanged. :func:`compact_pass` turns a record into that form, :func:`expand_pass` turns it
back; a reader decodes a block of records at once (:func:`capbench.varints.decode_varints`). vLLM's step
recorder writes the form itself (it runs where this package is not importable).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from capbench.errors import CapbenchError
from capbench.varints import decode_varints, encode_varints

COMPACT_PASS_FIELDS: Mapping[str, str] = {
    "reqs": "reqs_b64",
    "experts_active": "experts_active_b64",
    "expert_tokens": "expert_tokens_b64",
}
"""Each list field of a runner's pass record and the field that holds it on disk from schema version 3."""


def is_compact_pass(record: Mapping[str, Any]) -> bool:
    """Whether a pass record is in the on-disk form of schema version 3."""
    return "reqs_b64" in record


def routing_measured(record: Mapping[str, Any]) -> bool:
    """Whether a pass record, in either form, has its experts measured (``experts_active`` not null)."""
    return (record.get("experts_active_b64") if is_compact_pass(record) else record.get("experts_active")) is not None


def compact_pass(record: Mapping[str, Any]) -> dict[str, Any]:
    """The schema-3 form of a pass record (module docstring), fields in their order; a :class:`CapbenchError`
    naming the field when a list is not what the contract says (a runner bug, refused before it is written)."""
    if is_compact_pass(record):
        return dict(record)
    active = record.get("experts_active")
    out: dict[str, Any] = {}
    for key, value in record.items():
        name = COMPACT_PASS_FIELDS.get(key)
        if name is None:
            out[key] = value
            continue
        try:
            out[name] = None if value is None else _encode(key, value, active)
        except (TypeError, ValueError) as exc:
            raise CapbenchError(f"pass record {_where(record)}: {key} cannot be written: {exc}") from None
    return out


def _encode(key: str, value: Any, active: Any) -> str:
    table = np.asarray(value)
    if table.dtype.kind not in "iu" and table.size:
        raise ValueError(f"it must hold integers, got {table.dtype} values")
    if key == "reqs" and table.size and (table.ndim != 2 or table.shape[1] != 2):
        raise ValueError("it must be a list of [n, c] pairs")
    if key == "experts_active" and table.ndim != 1:
        raise ValueError("it must be a flat list, one count per MoE layer")
    if key == "expert_tokens" and (
        active is None or len(value) != len(active) or (len(value) and (table.ndim != 2 or not table.shape[1]))
    ):
        raise ValueError("it must be one list of E ≥ 1 counts per MoE layer, as many as experts_active has")
    return encode_varints(table)


def expand_pass(record: Mapping[str, Any]) -> dict[str, Any]:
    """A pass record with the runner's lists (the form of schema versions 1 and 2), whichever form it was read in.

    ``ValueError`` naming the field when a string does not decode or does not have the shape it must.
    """
    if not is_compact_pass(record):
        return dict(record)
    layers = None
    out: dict[str, Any] = {}
    fields = {name: key for key, name in COMPACT_PASS_FIELDS.items()}
    for name, value in record.items():
        key = fields.get(name)
        if key is None:
            out[name] = value
        elif value is None:
            out[key] = None
        else:
            values, _ = decode_varints([value], name)
            if key == "reqs":
                if values.size % 2:
                    raise ValueError(f"{name} holds {values.size} integers, not [n, c] pairs")
                out[key] = values.reshape(-1, 2).tolist()
            elif key == "experts_active":
                out[key] = values.tolist()
            else:
                layers = _layers(record)
                if layers is None or (values.size % layers if layers else values.size):
                    raise ValueError(f"{name} holds {values.size} counts, not E per layer of experts_active_b64")
                out[key] = values.reshape(layers, -1).tolist() if layers else []
    return out


def _layers(record: Mapping[str, Any]) -> int | None:
    """The number of MoE layers a compact record's ``experts_active_b64`` gives (None when it is null)."""
    active = record.get("experts_active_b64")
    return None if active is None else int(decode_varints([active], "experts_active_b64")[1][0])


def _where(record: Mapping[str, Any]) -> str:
    if "step" in record:
        return f"step {record.get('step')} (dp rank {record.get('dp_rank', 0)})"
    return f"starting at t_start_ns {record.get('t_start_ns')}"


__all__ = ["COMPACT_PASS_FIELDS", "compact_pass", "expand_pass", "is_compact_pass", "routing_measured"]
