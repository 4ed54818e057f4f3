"""A graph-safe routing recorder: the experts each MoE layer chose in each engine step, in any engine mode.

vLLM calls each fused-MoE router's capture callback with the logical expert ids it chose (``topk_ids``,
``[tokens, top_k]``). In a compiled engine that call is traced (on CPU, Dynamo traces it once with every guard
dropped, so a Python branch in the callback is frozen at its warm-up value) or captured (on GPU, inside CUDA
graphs, so Python in it runs once at capture and never on replay). What survives both is a tensor operation on
persistent buffers: the callback here is exactly one call of the custom op
``torch.ops.capbench.store_routed_experts(plane, topk_ids)`` (schema ``Tensor(a!) plane``: the compiler keeps the
in-place write, never reorders or drops it), which copies the layer's ids into its plane of a persistent buffer:
no Python conditional, no host synchronisation, no data-dependent shape, one small copy per layer.

The buffer ``ids``: ``int32 [L, N, K]`` on the model's device (L MoE layers in layer order, N the most tokens a
step computes, K the largest top-k). A layer's op writes rows ``[0, T)`` of its plane (T the rows vLLM routed,
padding rows of a CUDA graph included); rows ≥ the step's real token count are never read.

Per step: the step-open hook (:meth:`RoutingCounter.begin`) sets rows ``[0, t)`` of every plane to ``-1`` (``t`` the
step's real token count), so what the step reads was written by its own forward, not by a warm-up, profiling or
capture forward before it; the step-close hook (:meth:`RoutingCounter.end`) reads those rows:

- on CPU it copies that slice and the writer thread counts it with numpy (one ``bincount`` over all layers);
- on a GPU it counts on the device (one ``index_add_`` into a ``[L, E_max + 2]`` table, no host synchronisation),
  copies the table into a pinned host buffer (a ring of them) without blocking and records an event that the
  writer thread waits on, so the step loop never synchronises with the device on capbench's account.

Counting bins per layer ``l``: ``e`` for ids in ``[0, E_l)``; ``E_max`` (overflow) for any other id the router
produced (zero-computation experts, garbage), which never reaches another expert's or layer's count; ``E_max + 1``
(missing) for ``-1``: a slot the op did not write, because the layer's op did not run in this step.

Self-check (:func:`check_counts`, on the writer thread): no missing slot, and for every layer in-range + overflow =
``top_k_l × t``. A step that fails it (an engine path that bypasses the router, a stale compile artifact made
without the recorder, a step larger than the buffer) gets ``experts_active: null`` and the reason.

Why store the ids in the graph and count once per step: a custom op's call costs the dispatcher plus whatever
it runs; storing is one copy, counting in the op was 8 small kernels per layer (on this 2-core CPU ~64 µs against
~5 µs per layer, ``benchmarks/routing_counter.py``), and per step the count is one pass over all layers instead
of one per layer. On a GPU counting stays on the device (a 48-layer top-8 model at an 8,192-token step holds
3.1 M ids, 12.6 MB, against a 50 KB count table to move to the host).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

OP = "capbench::store_routed_experts"
PINNED_RING = 8
"""Host buffers a GPU engine's count tables rotate through: the writer may lag this many steps before the step
loop waits for it."""
RING_WAIT_S = 10.0
"""The longest the step loop waits for a ring slot (a stalled writer cannot stall the engine for longer)."""
MISSING = -1
"""What a buffer slot holds when no op wrote it in the current step."""


def _store(plane: torch.Tensor, topk_ids: torch.Tensor) -> None:
    """``plane[:T, :k] = topk_ids`` (a layer's ``[N, K]`` plane; T rows, k experts per token; rows past N are
    dropped)."""
    tokens = min(topk_ids.shape[0], plane.shape[0])
    if topk_ids.shape[-1] == plane.shape[1] and tokens == topk_ids.shape[0]:
        plane[:tokens].copy_(topk_ids)  # the common case: one copy
    else:
        plane[:tokens, : topk_ids.shape[-1]].copy_(topk_ids[:tokens])


_op_lock = threading.Lock()
_library: Any = None


def store_op() -> Any:
    """``torch.ops.capbench.store_routed_experts``, registered on first use (once per process)."""
    global _library
    with _op_lock:
        if _library is None:
            library = torch.library.Library("capbench", "FRAGMENT")
            library.define("store_routed_experts(Tensor(a!) plane, Tensor topk_ids) -> ()")
            library.impl("store_routed_experts", _store, "CompositeExplicitAutograd")

            def _fake(plane: torch.Tensor, topk_ids: torch.Tensor) -> None:
                return None

            torch.library.register_fake(OP, _fake, lib=library)
            _library = library
        return torch.ops.capbench.store_routed_experts


class _Capture:
    """The callback bound to one router: one op call on its layer's plane, no Python branch (so tracing and
    capture keep it whole)."""

    def __init__(self, op: Any, plane: torch.Tensor) -> None:
        self.op, self.plane = op, plane

    def __call__(self, topk_ids: torch.Tensor) -> None:
        self.op(self.plane, topk_ids)


@dataclass(frozen=True)
class StepCounts:
    """One step's routing, as the writer thread reads it: ``read()`` returns the ``[L, E_max + 2]`` count table
    (waiting for the device copy on a GPU); ``tokens`` is the step's real token count."""

    tokens: int
    read: Callable[[], list[list[int]]]


def count_table(ids: np.ndarray, num_experts: Sequence[int], top_k: Sequence[int]) -> list[list[int]]:
    """The count table of a ``[L, t, K]`` id slice (module docstring), with numpy: one ``bincount``."""
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


class RoutingCounter:
    """The per-engine buffer and the callbacks bound to every router (module docstring)."""

    def __init__(self, routers: Sequence[tuple[str, Any]], device: torch.device | str, max_tokens: int) -> None:
        self.names = [name for name, _ in routers]
        self.num_experts = [int(router.global_num_experts) for _, router in routers]
        self.top_k = [int(router.top_k) for _, router in routers]
        self.width = max(self.num_experts)
        self.device = torch.device(device)
        self.max_tokens = int(max_tokens)
        k = max(self.top_k)
        self.ids = torch.full((len(routers), self.max_tokens, k), MISSING, dtype=torch.int32, device=self.device)
        self.on_gpu = self.device.type == "cuda"
        self.tokens = 0
        self._ring: list[torch.Tensor] = []
        self._ring_free: list[threading.Event] = []
        self._next = 0
        if self.on_gpu:
            layers = len(routers)
            offsets = torch.arange(layers, device=self.device, dtype=torch.int64).view(layers, 1, 1)
            self._offsets = offsets * (self.width + 2)
            self._experts = torch.tensor(self.num_experts, device=self.device, dtype=torch.int64).view(layers, 1, 1)
            column = torch.arange(k, device=self.device).view(1, 1, k)
            self._used = column < torch.tensor(self.top_k, device=self.device).view(layers, 1, 1)
            self._dump = layers * (self.width + 2)  # the table's last bin, never read
            for _ in range(PINNED_RING):
                self._ring.append(torch.empty((layers, self.width + 2), dtype=torch.int64).pin_memory())
                free = threading.Event()
                free.set()
                self._ring_free.append(free)
        op = store_op()
        for row, (_, router) in enumerate(routers):
            router.set_capture_fn(_Capture(op, self.ids[row]))

    def begin(self, num_tokens: int) -> None:
        """Mark rows ``[0, t)`` unwritten (``-1``) before the step's forward: what the step reads is then only what
        its own forward wrote, never a warm-up, profiling or capture forward's leftovers."""
        self.tokens = num_tokens
        self.ids[:, : min(num_tokens, self.max_tokens)].fill_(MISSING)

    def end(self, num_tokens: int) -> StepCounts:
        """Take the step's ids (rows ``[0, t)``); the counting happens off the step loop on CPU and on the device
        (without a host synchronisation) on a GPU."""
        rows = min(num_tokens, self.max_tokens)
        taken = self.ids[:, :rows]
        if not self.on_gpu:
            snapshot = taken.numpy().copy()
            missing_rows = num_tokens - rows
            return StepCounts(num_tokens, lambda: self._cpu_table(snapshot, missing_rows))
        ids = taken.to(torch.int64)
        unwritten = torch.where(ids == MISSING, self.width + 1, self.width)
        bins = torch.where((ids >= 0) & (ids < self._experts), ids, unwritten) + self._offsets
        bins = torch.where(self._used, bins, self._dump).reshape(-1)  # columns past a layer's top-k: not counted
        table = torch.zeros(self._dump + 1, dtype=torch.int64, device=self.device)
        table.index_add_(0, bins, torch.ones_like(bins))
        slot = self._next
        self._next = (slot + 1) % len(self._ring)
        free = self._ring_free[slot]
        free.wait(RING_WAIT_S)  # only when the writer is a whole ring behind (then at most this long)
        free.clear()
        host = self._ring[slot]
        host.view(-1).copy_(table[: self._dump], non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        missing_rows = num_tokens - rows

        def read() -> list[list[int]]:
            event.synchronize()
            try:
                rows_out: list[list[int]] = host.tolist()
            finally:
                free.set()
            return _add_missing(rows_out, missing_rows, self.top_k)

        return StepCounts(num_tokens, read)

    def _cpu_table(self, snapshot: np.ndarray, missing_rows: int) -> list[list[int]]:
        return _add_missing(count_table(snapshot, self.num_experts, self.top_k), missing_rows, self.top_k)

    def abort(self) -> None:
        """A step that raised: nothing to undo (the next step marks its own rows unwritten first)."""


def _add_missing(table: list[list[int]], missing_rows: int, top_k: Sequence[int]) -> list[list[int]]:
    """Rows past the buffer (a step larger than it) count as missing slots: the self-check then fails."""
    if missing_rows > 0:
        for layer, row in enumerate(table):
            row[-1] += missing_rows * top_k[layer]
    return table


def check_counts(
    table: list[list[int]], tokens: int, num_experts: Sequence[int], top_k: Sequence[int], names: Sequence[str]
) -> tuple[list[list[int]] | None, str | None]:
    """``(tokens per expert per layer, None)`` when every slot was written and every layer's counts add up to
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
