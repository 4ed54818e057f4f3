"""What a local checkpoint really stores: tensor names, shapes and dtypes from its safetensors headers.

A safetensors file starts with an 8-byte little-endian header length N and N bytes of JSON
(``{name: {"dtype", "shape", "data_offsets"}, "__metadata__": {...}}``), so the whole index of a checkpoint of
any size is read without touching a weight. Sharded checkpoints (``model-00001-of-00003.safetensors``) are read
shard by shard. Standard library only.

:func:`stored_group_dtypes` turns the index into each weight group's stored dtype
(:func:`capbench.arch.checkpoint.group_dtypes_from_tensors`), and :func:`loaded_group_dtypes` does the same
for a model already in memory (its parameters' dtypes, which a runtime may change from the checkpoint's).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from capbench.arch.checkpoint import group_dtypes_from_tensors
from capbench.errors import CapbenchError

MAX_HEADER_BYTES = 100 * 2**20
"""A header longer than this is not a safetensors header (the format itself caps it at 100 MB)."""

TensorIndex = dict[str, tuple[list[int], str]]


def read_safetensors_header(path: Path) -> TensorIndex:
    """``{name: (shape, safetensors dtype)}`` of one ``.safetensors`` file; a clear error when it is not one."""
    try:
        with path.open("rb") as handle:
            prefix = handle.read(8)
            if len(prefix) != 8:
                raise CapbenchError(f"{path} is not a safetensors file (shorter than its 8-byte header length)")
            (length,) = struct.unpack("<Q", prefix)
            if length > MAX_HEADER_BYTES:
                raise CapbenchError(f"{path} is not a safetensors file (header length {length} bytes)")
            raw = handle.read(length)
    except OSError as exc:
        raise CapbenchError(f"cannot read {path}: {exc}") from exc
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CapbenchError(f"{path} has a damaged safetensors header: {exc}") from exc
    if not isinstance(header, dict):
        raise CapbenchError(f"{path} has a damaged safetensors header (not a JSON object)")
    out: TensorIndex = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("shape"), list) or "dtype" not in entry:
            raise CapbenchError(f"{path}: tensor {name!r} has no dtype/shape in the header")
        out[name] = ([int(s) for s in entry["shape"]], str(entry["dtype"]))
    return out


def checkpoint_files(model_dir: Path) -> list[Path]:
    """The ``.safetensors`` files of a model directory, sorted (empty when there are none)."""
    return sorted(p for p in model_dir.glob("*.safetensors") if p.is_file())


def read_checkpoint_index(model_dir: Path) -> TensorIndex | None:
    """Every tensor of the checkpoint in ``model_dir``; None when it holds no safetensors file."""
    files = checkpoint_files(model_dir)
    if not files:
        return None
    index: TensorIndex = {}
    for path in files:
        index.update(read_safetensors_header(path))
    return index


def stored_group_dtypes(model_dir: Path | None) -> dict[str, str] | None:
    """Each weight group's dtype as the checkpoint in ``model_dir`` stores it; None without a safetensors
    checkpoint (then the config alone decides, :func:`capbench.arch.dtypes.dtypes_from_config`)."""
    if model_dir is None or not Path(model_dir).is_dir():
        return None
    index = read_checkpoint_index(Path(model_dir))
    return group_dtypes_from_tensors(index) if index else None


def loaded_group_dtypes(named_parameters: Iterable[tuple[str, Any]]) -> dict[str, str]:
    """Each weight group's dtype in a loaded torch model (``model.named_parameters()``): what every forward pass
    reads, which can differ from the checkpoint (e.g. routers kept in float32)."""
    index: TensorIndex = {name: (list(param.shape), str(param.dtype)) for name, param in named_parameters}
    return group_dtypes_from_tensors(index)
