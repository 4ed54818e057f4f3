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

- on CPU it copies that slice and the writer thread counts it with numpy;
- on a GPU it counts on the device (no host synchronisation), copies the table into a pinned host buffer (a ring
  of them) without blocking and records an event that the writer thread waits on, so the step loop never
  synchronises with the device on capbench's account.

The count table and its self-check are :mod:`capbench.runners.expert_counts` (shared with the hf runner): a
``-1`` slot counts as missing (the layer's op did not run in this step), an id outside the layer's experts as
overflow. A step that fails the self-check (an engine path that bypasses the router, a stale compile artifact
made without the recorder, a step larger than the buffer) gets ``experts_active: null`` and the reason.

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

from capbench.runners.expert_counts import MISSING, DeviceCounter, count_table

OP = "capbench::store_routed_experts"
PINNED_RING = 8
"""Host buffers a GPU engine's count tables rotate through: the writer may lag this many steps before the step
loop waits for it."""
RING_WAIT_S = 10.0
"""The longest the step loop waits for a ring slot (a stalled writer cannot stall the engine for longer)."""


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
            self._counter = DeviceCounter(self.num_experts, self.top_k, self.device)
            for _ in range(PINNED_RING):
                self._ring.append(torch.empty((len(routers), self.width + 2), dtype=torch.int64).pin_memory())
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
        table = self._counter.table(taken)
        slot = self._next
        self._next = (slot + 1) % len(self._ring)
        free = self._ring_free[slot]
        free.wait(RING_WAIT_S)  # only when the writer is a whole ring behind (then at most this long)
        free.clear()
        host = self._ring[slot]
        host.copy_(table, non_blocking=True)
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
