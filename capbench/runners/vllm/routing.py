"""A graph-safe routing counter: tokens per expert per MoE layer, counted on the device, in any engine mode.

vLLM calls each fused-MoE router's capture callback with the logical expert ids it chose (``topk_ids``,
``[tokens, top_k]``). In a compiled engine that call is traced (on CPU, Dynamo traces it once with every guard
dropped, so a Python branch in the callback is frozen at its warm-up value) or captured (on GPU, inside CUDA
graphs, so Python in it runs once at capture and never on replay). What survives both is a tensor operation
on persistent buffers: the callback here is exactly one call of the custom op
``torch.ops.capbench.count_routed_experts`` (registered with ``mutates_args``, so the compiler keeps its
in-place update and never reorders or drops it), with no Python conditionals, no host synchronisation and no
data-dependent shapes.

Buffers (one :class:`RoutingCounter` per engine, on the model's device):

- ``counts``: ``int64 [L, W + 1]``: row ``l`` is MoE layer ``l`` (layer order), column ``e < E_l`` its expert
  ``e``; column ``W`` (``W = max_l E_l``) is the overflow bin for ids outside ``[0, E_l)`` (zero-computation
  experts, padding, garbage), which is never added to another expert's or layer's count.
- ``valid_tokens``: ``int64 []``: the step's real token count. Rows ``i ≥ valid_tokens`` of ``topk_ids`` (the
  padded rows of a CUDA graph replayed for a larger batch, vLLM's own warm-up and profiling forwards, when it is
  0) add nothing.

The op, for layer ``l`` with ``E_l`` experts and ``topk_ids`` of ``T`` rows:
``counts[l, bin(id)] += 1`` for every id of every row ``i < valid_tokens``, where ``bin(id) = id`` if
``0 ≤ id < E_l`` else ``W`` (one ``index_add_``).

Per step (:meth:`RoutingCounter.begin`, :meth:`RoutingCounter.end`): the step-open hook sets ``valid_tokens``;
the step-close hook hands a snapshot of ``counts`` to the writer thread and zeroes the buffers. On CPU the
snapshot is a copy; on a GPU it is an asynchronous copy into a pinned host buffer (a ring of them) followed by
a recorded event the writer thread waits on, so the step loop never synchronises with the device on capbench's
account (it waits only if the writer falls a whole ring behind).

Self-check (:func:`check_counts`, on the writer thread): for every layer, in-range counts + overflow must equal
``top_k_l × tokens``. A step that fails it (a callback that did not run: an engine path that bypasses the
router, a stale compile artifact made without the recorder) gets ``experts_active: null`` and the reason.

Why count on the device rather than copy the ids and count them on the host: the ids are
``L × T × top_k`` integers per step (a 48-layer top-8 model at 8,192 prefill tokens: 3.1 M ids, 12.6 MB of
int32 to move to the host every step) against ``L × (W + 1)`` counts (48 × 129 int64 = 50 KB) whatever the
batch; and the counting kernels are captured into the CUDA graphs with the rest of the layer.
``benchmarks/routing_counter.py`` measures both on this machine's CPU (docs/vllm.md).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

OP_NAME = "capbench::count_routed_experts"
PINNED_RING = 8
"""Host buffers a GPU engine's snapshots rotate through: the writer may lag this many steps before the step
loop waits for it."""
RING_WAIT_S = 10.0
"""The longest the step loop waits for a ring slot (a stalled writer cannot stall the engine for longer)."""


def _count_routed_experts(
    counts: torch.Tensor, topk_ids: torch.Tensor, valid_tokens: torch.Tensor, row: int, num_experts: int
) -> None:
    """``counts[row, bin(id)] += 1`` for each id in the first ``valid_tokens`` rows of ``topk_ids`` (module doc)."""
    ids = topk_ids.reshape(topk_ids.shape[0], -1).to(torch.int64)
    tokens, top_k = ids.shape
    overflow = counts.shape[1] - 1
    valid = (torch.arange(tokens, device=ids.device) < valid_tokens).to(counts.dtype)
    in_range = (ids >= 0) & (ids < num_experts)
    bins = torch.where(in_range, ids, overflow)
    counts[row].index_add_(0, bins.reshape(-1), valid.repeat_interleave(top_k))


_op_lock = threading.Lock()


def count_op() -> Any:
    """``torch.ops.capbench.count_routed_experts``, registered on first use (once per process)."""
    with _op_lock:
        namespace = getattr(torch.ops, "capbench", None)
        if namespace is not None and hasattr(namespace, "count_routed_experts"):
            return torch.ops.capbench.count_routed_experts
        op = torch.library.custom_op(OP_NAME, mutates_args=("counts",))(_count_routed_experts)

        @op.register_fake
        def _fake(
            counts: torch.Tensor, topk_ids: torch.Tensor, valid_tokens: torch.Tensor, row: int, num_experts: int
        ) -> None:
            return None

        return torch.ops.capbench.count_routed_experts


@dataclass(frozen=True)
class StepCounts:
    """One step's snapshot, as the writer thread reads it: ``counts()`` waits for the copy (GPU) and returns
    the ``[L, W + 1]`` table as Python lists; ``tokens`` is the step's real token count."""

    tokens: int
    read: Callable[[], list[list[int]]]


class _Capture:
    """The callback bound to one router: one op call, no Python branch (so tracing and capture keep it whole)."""

    def __init__(self, op: Any, counts: torch.Tensor, valid: torch.Tensor, row: int, num_experts: int) -> None:
        self.op, self.counts, self.valid, self.row, self.num_experts = op, counts, valid, row, num_experts

    def __call__(self, topk_ids: torch.Tensor) -> None:
        self.op(self.counts, topk_ids, self.valid, self.row, self.num_experts)


class RoutingCounter:
    """The per-engine buffers and the callbacks bound to every router (module docstring)."""

    def __init__(self, routers: Sequence[tuple[str, Any]], device: torch.device | str) -> None:
        self.names = [name for name, _ in routers]
        self.num_experts = [int(router.global_num_experts) for _, router in routers]
        self.top_k = [int(router.top_k) for _, router in routers]
        self.width = max(self.num_experts)
        self.device = torch.device(device)
        self.counts = torch.zeros((len(routers), self.width + 1), dtype=torch.int64, device=self.device)
        self.valid_tokens = torch.zeros((), dtype=torch.int64, device=self.device)
        self.on_gpu = self.device.type == "cuda"
        self._ring: list[torch.Tensor] = []
        self._ring_free: list[threading.Event] = []
        self._next = 0
        if self.on_gpu:
            for _ in range(PINNED_RING):
                self._ring.append(torch.empty_like(self.counts, device="cpu").pin_memory())
                free = threading.Event()
                free.set()
                self._ring_free.append(free)
        op = count_op()
        for row, (_, router) in enumerate(routers):
            router.set_capture_fn(_Capture(op, self.counts, self.valid_tokens, row, self.num_experts[row]))

    def begin(self, num_tokens: int) -> None:
        """The step's real token count (an asynchronous fill on a GPU)."""
        self.valid_tokens.fill_(num_tokens)

    def end(self, num_tokens: int) -> StepCounts:
        """Snapshot and zero the counts; the snapshot is read on the writer thread (module docstring)."""
        if not self.on_gpu:
            snapshot = self.counts.clone()
            self.counts.zero_()
            self.valid_tokens.fill_(0)
            return StepCounts(num_tokens, snapshot.tolist)
        slot = self._next
        self._next = (slot + 1) % len(self._ring)
        free = self._ring_free[slot]
        free.wait(RING_WAIT_S)  # only when the writer is a whole ring behind (then at most this long)
        free.clear()
        host = self._ring[slot]
        host.copy_(self.counts, non_blocking=True)
        self.counts.zero_()
        self.valid_tokens.fill_(0)
        event = torch.cuda.Event()
        event.record()

        def read() -> list[list[int]]:
            event.synchronize()
            try:
                return host.tolist()
            finally:
                free.set()

        return StepCounts(num_tokens, read)

    def abort(self) -> None:
        """Drop what a failed step counted."""
        self.counts.zero_()
        self.valid_tokens.fill_(0)


def check_counts(
    table: list[list[int]], tokens: int, num_experts: Sequence[int], top_k: Sequence[int], names: Sequence[str]
) -> tuple[list[list[int]] | None, str | None]:
    """``(tokens per expert per layer, None)`` when every layer's counts add up to ``top_k × tokens``, else
    ``(None, reason)``. Ids outside a layer's experts (the overflow bin) are in the sum but not in the result."""
    width = len(table[0]) - 1 if table else 0
    out = []
    for layer, row in enumerate(table):
        experts = num_experts[layer]
        in_range = row[:experts]
        overflow = sum(row[experts:width]) + row[width]
        expected = top_k[layer] * tokens
        counted = sum(in_range) + overflow
        if counted != expected:
            return None, (
                f"routing self-check failed: layer {names[layer]} counted {counted} expert choices, expected "
                f"{expected} (top_k {top_k[layer]} × {tokens} tokens)"
                + ("; the router's capture op did not run in this step" if counted == 0 else "")
            )
        out.append(in_range)
    return out, None
