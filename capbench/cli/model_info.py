"""``capbench model-info``: the structure, parameter counts and weight bytes of a model from its config.json.

Reads ``CONFIG_JSON`` or ``MODEL_DIR/config.json`` (no weights, no network) and prints what the metrics use:
layers, experts, total and active parameters, KV-cache elements per token, sliding-window layers, MLA or
not, the dtype of each weight group and the bytes each group occupies. Given a model directory with a
safetensors checkpoint, the dtypes of the groups left in float come from the tensors' own headers (a float32
router in a bfloat16 checkpoint counts 4 bytes per weight); ``dtype_source`` says which. ``--json`` prints the
same at full precision. Formulas: docs/metrics.md §1 and §2 ("Byte widths").
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from capbench.arch.dtypes import byte_widths, dtypes_from_config, weight_bytes, weight_group_dtypes
from capbench.arch.families import model_structure
from capbench.errors import CapbenchError

HELP = "Show a model's structure, parameter counts and weight bytes from its config.json."


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``model-info`` subcommand."""
    parser = subparsers.add_parser("model-info", help=HELP, description=HELP)
    parser.add_argument(
        "config",
        metavar="CONFIG_JSON_OR_MODEL_DIR",
        help="a Hugging Face config.json, or a model directory containing one",
    )
    parser.add_argument("--json", action="store_true", help="print full-precision JSON instead of a table")
    parser.add_argument(
        "--top-k",
        type=int,
        default=None,
        metavar="K",
        help="experts per token to assume (default: the config's)",
    )
    parser.add_argument(
        "--kv-dtype",
        default=None,
        metavar="NAME",
        help="the engine's KV-cache dtype, e.g. fp8 (default: the checkpoint's float dtype)",
    )
    parser.set_defaults(handler=handle)


def load_config(path: Path) -> dict[str, Any]:
    """The parsed ``config.json`` at ``path`` (a file, or a directory holding ``config.json``)."""
    file = path / "config.json" if path.is_dir() else path
    if not file.is_file():
        where = f"directory {path} has no config.json" if path.is_dir() else f"no such file: {path}"
        raise CapbenchError(f"cannot read the model config: {where}")
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CapbenchError(f"cannot read the model config {file}: {exc}") from exc
    if not isinstance(config, dict):
        raise CapbenchError(f"{file} must hold a JSON object, got {type(config).__name__}")
    return config


def model_info(
    config: Mapping[str, Any],
    top_k: int | None = None,
    kv_dtype: str | None = None,
    stored: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Everything ``model-info`` reports, as a JSON-ready dict (parameter counts exact, bytes in bytes).

    ``stored``: each weight group's dtype as the checkpoint's tensors hold it
    (:func:`capbench.models.checkpoint.stored_group_dtypes`), or None to go by the config alone.
    """
    structure = model_structure(config)
    if top_k is not None:
        if not 1 <= top_k <= structure.num_experts:
            raise CapbenchError(f"--top-k must be between 1 and num_experts ({structure.num_experts}), got {top_k}")
        structure = structure.with_top_k(top_k)
    dtypes = dtypes_from_config(config, kv_dtype, stored=stored)
    widths = byte_widths(dtypes)
    groups = weight_group_dtypes(config, stored=stored)
    group_bytes = weight_bytes(structure, groups)
    layers = structure.layers
    kv_per_layer = sorted({layer.kv_elems_per_token for layer in layers})
    kv_elems_per_token = sum(layer.kv_elems_per_token for layer in layers)
    sliding = [layer.index for layer in layers if layer.sliding_window is not None]
    return {
        "model_type": structure.model_type,
        "num_layers": structure.num_layers,
        "num_moe_layers": structure.num_moe_layers,
        "num_dense_layers": structure.num_layers - structure.num_moe_layers,
        "hidden_size": structure.hidden_size,
        "vocab_size": structure.vocab_size,
        "num_experts": structure.num_experts,
        "top_k": structure.top_k,
        "attention": "mla" if any(layer.attention == "mla" for layer in layers) else "mha",
        "mla": any(layer.attention == "mla" for layer in layers),
        "tie_word_embeddings": structure.tie_word_embeddings,
        "total_params": structure.total_params,
        "active_params": structure.active_params,
        "dense_params": structure.dense_params,
        "routed_expert_params_total": structure.routed_expert_params_total,
        "expert_params": structure.expert_params,
        "embedding_params": structure.embedding_params,
        "lm_head_params": 0 if structure.tie_word_embeddings else structure.lm_head_params,
        "linear_params_per_token": structure.linear_params_per_token,
        "kv_elements_per_token_per_layer": kv_per_layer,
        "kv_elements_per_token": kv_elems_per_token,
        "kv_bytes_per_token": kv_elems_per_token * widths.kv,
        "sliding_window_layers": sliding,
        "sliding_windows": sorted({w for layer in layers if (w := layer.sliding_window) is not None}),
        "dtypes": dtypes,
        "dtype_source": "checkpoint tensors (safetensors headers) and config.json" if stored else "config.json",
        "byte_widths": asdict(widths),
        "weight_dtypes": groups,
        "weight_bytes": {
            "dense_weights": group_bytes["dense_weights"],
            "attention": group_bytes["attention"],
            "router": group_bytes["router"],
            "shared_experts": group_bytes["shared_experts"],
            "dense_ffn": group_bytes["dense_ffn"],
            "routed_experts": group_bytes["routed_experts"],
            "embedding": group_bytes["embeddings"],
            "lm_head": group_bytes["lm_head"],
            "total": group_bytes["total"],
        },
    }


def describe_indices(indices: Sequence[int]) -> str:
    """Layer indices in short form: ``none``, ``0, 1, 2`` or ``0, 2, …, 34`` for a long arithmetic run."""
    if not indices:
        return "none"
    steps = {b - a for a, b in itertools.pairwise(indices)}
    if len(indices) > 3 and len(steps) == 1:
        return f"{indices[0]}, {indices[1]}, …, {indices[-1]}"
    return ", ".join(str(i) for i in indices)


def _rows(info: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(quantity, exact value, scaled value) rows of the human table."""

    def params(key: str) -> tuple[str, str, str]:
        return (key, f"{info[key]:,}", f"{info[key] / 1e9:.2f} B")

    sliding = info["sliding_window_layers"]
    windows = ", ".join(str(w) for w in info["sliding_windows"])
    rows = [
        ("model_type", info["model_type"], ""),
        ("num_layers", str(info["num_layers"]), ""),
        ("num_moe_layers", str(info["num_moe_layers"]), ""),
        ("num_experts", str(info["num_experts"]), ""),
        ("top_k", str(info["top_k"]), ""),
        ("attention", "MLA" if info["mla"] else "MHA/GQA", ""),
        params("total_params"),
        params("active_params"),
        params("dense_params"),
        params("routed_expert_params_total"),
        (
            "kv_elements_per_token_per_layer",
            ", ".join(str(v) for v in info["kv_elements_per_token_per_layer"]),
            "",
        ),
        ("kv_bytes_per_token (all layers)", f"{info['kv_bytes_per_token']:,.0f}", ""),
        (
            "sliding_window_layers",
            describe_indices(sliding),
            f"{len(sliding)} of {info['num_layers']}, window {windows}" if sliding else "",
        ),
    ]
    dtypes = info["dtypes"]
    rows += [(f"dtype {key}", str(dtypes[key]), "") for key in ("weights", "experts", "embeddings", "kv", "compute")]
    if "router" in dtypes:
        rows.append(("dtype router", str(dtypes["router"]), ""))
    rows.append(("dtypes from", str(info["dtype_source"]), ""))
    tied = " (tied to embedding)" if info["tie_word_embeddings"] else ""
    for key, label in (
        ("dense_weights", "bytes dense weights"),
        ("routed_experts", "bytes routed experts (all)"),
        ("embedding", "bytes embedding"),
        ("lm_head", f"bytes lm_head{tied}"),
        ("total", "bytes total"),
    ):
        value = info["weight_bytes"][key]
        rows.append((label, f"{value:,.0f}", f"{value / 1e9:.2f} GB"))
    return rows


def print_table(info: Mapping[str, Any]) -> None:
    """Print ``info`` as an aligned table (params also in billions, bytes also in GB = 1e9 bytes)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"model-info: {info['model_type']}", show_header=True, header_style="bold")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_column("scaled", justify="right")
    for row in _rows(info):
        table.add_row(*row)
    Console(width=120).print(table)


def handle(args: argparse.Namespace) -> int:
    """Run ``capbench model-info``; returns the exit status."""
    from capbench.models.checkpoint import stored_group_dtypes

    path = Path(args.config)
    stored = stored_group_dtypes(path) if path.is_dir() else None
    info = model_info(load_config(path), top_k=args.top_k, kv_dtype=args.kv_dtype, stored=stored)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print_table(info)
    return 0
