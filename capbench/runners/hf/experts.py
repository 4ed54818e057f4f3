"""Measured expert activation in transformers MoE models, through forward hooks on the routers.

This is the one place that knows how transformers lays out MoE routers (checked against transformers 5.x):
each MoE decoder layer has ``layer.mlp.gate`` whose forward returns ``(router_logits, topk_weights,
topk_indices)`` with ``topk_indices`` of shape ``[tokens, top_k]`` (tokens = batch·sequence, row-major).
Supported families: qwen3_moe, qwen2_moe, mixtral, olmoe. Anything else is a clear error, never a silent 0.

Per pass, for each MoE layer l (in layer order):
- ``expert_tokens[l][e]`` = number of valid tokens whose top-k selection contains expert e;
- ``experts_active[l]`` = number of experts e with ``expert_tokens[l][e] > 0`` (the union over the batch).
Padding positions are excluded through the validity mask the runner passes for the pass. The reduction and its
self-check (every layer's counts add up to top-k × tokens) are :mod:`capbench.runners.expert_counts`, the same
as the vllm runner's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from capbench.errors import CapbenchError
from capbench.runners.expert_counts import DeviceCounter, check_counts, experts_active

SUPPORTED_MODEL_TYPES = ("qwen3_moe", "qwen2_moe", "mixtral", "olmoe")


def find_routers(model: Any) -> list[tuple[int, torch.nn.Module]]:
    """``(layer_index, router_module)`` for every MoE layer of a transformers causal LM, in layer order."""
    model_type = getattr(model.config, "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise CapbenchError(
            f"the hf runner measures expert activation for {', '.join(SUPPORTED_MODEL_TYPES)}; "
            f"model_type {model_type!r} is not supported yet (add its router layout in {__name__})"
        )
    layers = model.model.layers
    routers = []
    for index, layer in enumerate(layers):
        gate = getattr(getattr(layer, "mlp", None), "gate", None)
        if gate is not None and hasattr(gate, "top_k"):
            routers.append((index, gate))
    if not routers:
        raise CapbenchError(f"no MoE routers found in this {model_type} model (expected layer.mlp.gate)")
    return routers


def set_router_top_k(model: Any, top_k: int) -> int:
    """Route every token of ``model`` to ``top_k`` experts at inference (overriding the trained
    ``num_experts_per_tok``); returns the trained value. ``top_k`` must be in [1, routed experts]."""
    routers = find_routers(model)
    num_experts = int(getattr(model.config, "num_experts", 0) or getattr(model.config, "num_local_experts", 0))
    if not 1 <= top_k <= num_experts:
        raise CapbenchError(f"top_k {top_k} is out of range: this model has {num_experts} routed experts per layer")
    trained = int(getattr(routers[0][1], "top_k"))  # noqa: B009
    for _, module in routers:
        setattr(module, "top_k", top_k)  # noqa: B010  (nn.Module attribute typing)
    return trained


class ExpertRecorder:
    """Collects the routers' selected expert ids during one pass and reduces them to per-layer counts."""

    def __init__(self, model: Any) -> None:
        routers = find_routers(model)
        self.layer_indices = [index for index, _ in routers]
        self.num_experts = int(model.config.num_experts if hasattr(model.config, "num_experts") else 0) or int(
            getattr(model.config, "num_local_experts", 0)
        )
        if self.num_experts <= 0:
            raise CapbenchError("cannot read the number of routed experts from the model config")
        self._routers = [module for _, module in routers]
        self._captured: list[torch.Tensor | None] = [None] * len(routers)
        self._counter: DeviceCounter | None = None
        self._top_k: list[int] = []
        self._handles = [
            module.register_forward_hook(self._make_hook(slot)) for slot, module in enumerate(self._routers)
        ]

    def _make_hook(self, slot: int) -> Callable[[torch.nn.Module, Any, Any], None]:
        def hook(module: torch.nn.Module, args: Any, output: Any) -> None:
            if not (isinstance(output, tuple) and len(output) == 3 and not output[2].is_floating_point()):
                raise CapbenchError(
                    f"unexpected router output in {type(module).__name__}: expected (logits, weights, "
                    "indices); this transformers version is not supported by the expert recorder"
                )
            self._captured[slot] = output[2].detach()

        return hook

    def begin_pass(self) -> None:
        self._captured = [None] * len(self._routers)

    def end_pass(self, valid: torch.Tensor | None) -> tuple[list[int], list[list[int]]]:
        """``(experts_active, expert_tokens)`` for the pass just run.

        ``valid`` is a boolean vector over the pass's flattened token positions (``None`` = all valid). The
        count table of all layers is computed on the model's device and moved to the host in one transfer (one
        device sync per pass).
        """
        per_layer = []
        for slot, ids in enumerate(self._captured):
            if ids is None:
                raise CapbenchError(f"router of layer {self.layer_indices[slot]} did not run in this pass")
            if valid is not None:
                ids = ids[valid.to(ids.device)]
            per_layer.append(ids)
        stacked = torch.stack(per_layer)  # [L, t, top_k]
        top_k = [int(stacked.shape[-1])] * len(per_layer)
        counter = self._counter
        if counter is None or counter.device != stacked.device or self._top_k != top_k:
            counter = self._counter = DeviceCounter([self.num_experts] * len(per_layer), top_k, stacked.device)
            self._top_k = top_k
        table: list[list[int]] = counter.table(stacked).tolist()
        names = [str(index) for index in self.layer_indices]
        tokens, reason = check_counts(table, int(stacked.shape[1]), [self.num_experts] * len(per_layer), top_k, names)
        if tokens is None:
            raise CapbenchError(f"expert recorder: {reason}")
        return experts_active(tokens), tokens

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
