"""The one reduction from routed expert ids to per-layer expert counts, shared by the hf and vllm runners.

Input: the expert ids the routers chose in one engine step (or pass), an id array ``[L, t, K]`` (L MoE layers in
layer order, t tokens, K the largest top-k; layer ``l`` uses its first ``top_k[l]`` columns).

The count table, ``[L, E_max + 2]`` integers: per layer ``l``, bin ``e`` counts the choices of expert ``e`` for
ids in ``[0, E_l)``; bin ``E_max`` (overflow) counts every other id the router produced (zero-computation
experts, garbage), so it never reaches another expert's or layer's count; bin ``E_max + 1`` (missing) counts
:data:`MISSING` slots, choices nobody recorded. Columns past a layer's own top-k are not counted.

Self-check (:func:`check_counts`): no missing slot, and for every layer in-range + overflow = ``top_k[l] × t``.
From a table that passes, ``expert_tokens[l][e]`` = tokens whose top-k holds expert ``e`` (a token chooses an
expert at most once) and ``experts_active[l]`` = the number of experts with ``expert_tokens[l][e] > 0``.

Two implementations of the same binning: :func:`count_table` (numpy, on the host) and :class:`DeviceCounter`
(torch, on the ids' device, one ``index_add_`` and no host synchronisation).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

MISSING = -1
"""An id slot no router wrote."""


def count_table(ids: np.ndarray, num_experts: Sequence[int], top_k: Sequence[int]) -> list[list[int]]:
    """The count table of a ``[L, t, K]`` id array (module docstring), with numpy: one ``bincount``."""
    layers, _, width_k = ids.shape
    width = max(num_experts)
    values = ids.astype(np.int64)
    experts = np.asarray(num_experts, dtype=np.int64).reshape(layers, 1, 1)
    offsets = (np.arange(layers, dtype=np.int64) * (width + 2)).reshape(layers, 1, 1)
    outside = (values < 0) | (values >= experts)
    bins = values + offsets
    if outside.any():  # rare: unwritten slots and ids that are no expert of the layer
        special = np.where(values == MISSING, width + 1, width) + offsets
        bins = np.where(outside, special, bins)
    dump = layers * (width + 2)
    if any(k < width_k for k in top_k):  # columns past a layer's own top-k are not its choices
        used = np.arange(width_k).reshape(1, 1, width_k) < np.asarray(top_k).reshape(layers, 1, 1)
        bins = np.where(used, bins, dump)
    counts = np.bincount(bins.reshape(-1), minlength=dump + 1)[:dump]
    table: list[list[int]] = counts.reshape(layers, width + 2).tolist()
    return table


class DeviceCounter:
    """:func:`count_table` on a torch device: :meth:`table` returns the ``[L, E_max + 2]`` int64 table as a tensor
    on that device, computed without a host synchronisation."""

    def __init__(self, num_experts: Sequence[int], top_k: Sequence[int], device: torch.device | str) -> None:
        layers = len(num_experts)
        k = max(top_k)
        self.width = max(num_experts)
        self.device = torch.device(device)
        offsets = torch.arange(layers, device=self.device, dtype=torch.int64).view(layers, 1, 1)
        self._offsets = offsets * (self.width + 2)
        self._experts = torch.tensor(list(num_experts), device=self.device, dtype=torch.int64).view(layers, 1, 1)
        column = torch.arange(k, device=self.device).view(1, 1, k)
        self._used = column < torch.tensor(list(top_k), device=self.device).view(layers, 1, 1)
        self.bins = layers * (self.width + 2)  # the table's size; one more bin collects what is not counted

    def table(self, ids: torch.Tensor) -> torch.Tensor:
        """The count table of ``ids`` (``[L, t, K]``, any integer dtype, on this device)."""
        values = ids.to(torch.int64)
        unwritten = torch.where(values == MISSING, self.width + 1, self.width)
        bins = torch.where((values >= 0) & (values < self._experts), values, unwritten) + self._offsets
        bins = torch.where(self._used[:, :, : values.shape[-1]], bins, self.bins).reshape(-1)
        table = torch.zeros(self.bins + 1, dtype=torch.int64, device=self.device)
        table.index_add_(0, bins, torch.ones_like(bins))
        return table[: self.bins].view(len(self._offsets), self.width + 2)


def check_counts(
    table: list[list[int]], tokens: int, num_experts: Sequence[int], top_k: Sequence[int], names: Sequence[str]
) -> tuple[list[list[int]] | None, str | None]:
    """``(expert_tokens, None)`` when every slot was recorded and every layer's counts add up to
    ``top_k × tokens``, else ``(None, reason)``. Overflow ids (outside a layer's experts) are in the sum but not
    in the result."""
    width = len(table[0]) - 2 if table else 0
    out = []
    for layer, row in enumerate(table):
        experts = num_experts[layer]
        in_range = row[:experts]
        overflow = sum(row[experts:width]) + row[width]
        missing = row[width + 1]
        expected = top_k[layer] * tokens
        counted = sum(in_range) + overflow
        if missing:
            return None, (
                f"routing self-check failed: layer {names[layer]} has {missing} of {expected} expert choices "
                "unrecorded (the router's capture op did not run in this step)"
            )
        if counted != expected:
            return None, (
                f"routing self-check failed: layer {names[layer]} counted {counted} expert choices, expected "
                f"{expected} (top_k {top_k[layer]} × {tokens} tokens)"
            )
        out.append(in_range)
    return out, None


def experts_active(expert_tokens: Sequence[Sequence[int]]) -> list[int]:
    """Per layer, the number of experts that received at least one token."""
    return [sum(1 for count in row if count > 0) for row in expert_tokens]
