"""The graph-safe routing counter with plain torch: exact counts eager and under torch.compile, padded rows and
out-of-range ids handled, the per-step snapshot and the self-check (the vLLM engine itself: test_vllm_runner.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from capbench.runners.expert_counts import DeviceCounter, check_counts, count_table, experts_active
from capbench.runners.vllm.routing import RoutingCounter, store_op

pytestmark = pytest.mark.integration


class FakeRouter:
    """What the counter needs of a vLLM router: its expert count, top-k and the capture hook."""

    def __init__(self, num_experts: int, top_k: int) -> None:
        self.global_num_experts = num_experts
        self.top_k = top_k
        self.capture_fn: Any = None

    def set_capture_fn(self, fn: Any) -> None:
        self.capture_fn = fn


class Layer(torch.nn.Module):
    """A router layer as vLLM's calls its hook: top-k ids of a linear router, handed to ``capture_fn``."""

    def __init__(self, router: FakeRouter, hidden: int) -> None:
        super().__init__()
        self.router = router
        self.gate = torch.nn.Linear(hidden, router.global_num_experts, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights, ids = torch.topk(self.gate(x), self.router.top_k, dim=-1)
        if self.router.capture_fn is not None:
            self.router.capture_fn(ids)
        return x + weights.sum(-1, keepdim=True)


def reference(ids: list[np.ndarray], valid: int, num_experts: list[int], width: int) -> list[list[int]]:
    """Counts with plain loops: rows < valid only, ids outside [0, E_l) into column ``width`` (overflow); column
    ``width + 1`` (missing) stays 0 when every layer ran."""
    out = []
    for layer, layer_ids in enumerate(ids):
        row = [0] * (width + 2)
        for token in layer_ids[:valid]:
            for e in token:
                row[int(e) if 0 <= e < num_experts[layer] else width] += 1
        out.append(row)
    return out


def test_the_op_stores_the_ids_in_its_layer_plane() -> None:
    op = store_op()
    ids = torch.full((2, 8, 2), -1, dtype=torch.int32)
    topk = torch.tensor([[0, 7], [7, 7], [8, -1]], dtype=torch.int64)
    op(ids[1], topk)
    assert ids[1, :3].tolist() == [[0, 7], [7, 7], [8, -1]]
    assert (ids[1, 3:] == -1).all() and (ids[0] == -1).all()
    op(ids[0], torch.zeros((20, 2), dtype=torch.int32))  # more rows than the buffer: cut, never an error
    assert (ids[0] == 0).all()


def test_the_count_table_bins_overflow_and_missing() -> None:
    ids = np.array([[[0, 7], [7, 7], [8, 3]], [[-1, -1], [1, 2], [2, 2]]], dtype=np.int32)
    table = count_table(ids, [8, 8], [2, 2])
    assert table[0] == [1, 0, 0, 1, 0, 0, 0, 3, 1, 0]  # 8 is out of range: the overflow bin
    assert table[1] == [0, 1, 3, 0, 0, 0, 0, 0, 0, 2]  # two slots the op never wrote: the missing bin


def test_the_device_count_table_equals_the_numpy_one() -> None:
    """The one reduction, two implementations: identical tables on random ids with overflow, missing slots and a
    layer whose top-k is below the buffer's width."""
    rng = np.random.default_rng(7)
    num_experts, top_k = [8, 6, 8], [2, 2, 1]
    ids = rng.integers(-1, 10, size=(3, 50, 2), dtype=np.int64).astype(np.int32)
    device_table = DeviceCounter(num_experts, top_k, "cpu").table(torch.from_numpy(ids)).tolist()
    assert device_table == count_table(ids, num_experts, top_k)
    assert sum(device_table[2]) == 50  # only the first column of the top-1 layer counts


def test_experts_active_counts_experts_with_tokens() -> None:
    assert experts_active([[0, 3, 0, 1], [0, 0, 0, 0]]) == [2, 0]


def build(layers: int = 3, experts: tuple[int, ...] = (8, 8, 6), top_k: int = 2) -> tuple[torch.nn.Module, Any]:
    torch.manual_seed(0)
    routers = [FakeRouter(experts[i], top_k) for i in range(layers)]
    model = torch.nn.Sequential(*(Layer(r, 16) for r in routers)).eval()
    counter = RoutingCounter([(f"model.layers.{i}.mlp", r) for i, r in enumerate(routers)], "cpu", max_tokens=64)
    return model, counter


def captured_ids(model: torch.nn.Module, x: torch.Tensor) -> list[np.ndarray]:
    """The ids each layer chose, recorded by a plain Python hook on an eager copy of the forward."""
    seen: list[np.ndarray] = []
    saved = [layer.router.capture_fn for layer in model]
    for layer in model:
        layer.router.capture_fn = lambda ids: seen.append(ids.numpy().copy())
    with torch.no_grad():
        model(x)
    for layer, fn in zip(model, saved, strict=True):
        layer.router.capture_fn = fn
    return seen


@pytest.mark.parametrize("compiled", [False, True])
def test_counts_are_exact_eager_and_compiled(compiled: bool) -> None:
    """One compiled graph (dynamic shapes, like vLLM's single trace) serves every batch size and valid count."""
    model, counter = build()
    run = torch.compile(model, fullgraph=True, dynamic=True) if compiled else model
    for tokens, valid in [(5, 5), (16, 11), (9, 0), (32, 32), (7, 6)]:
        x = torch.randn(tokens, 16)
        counter.begin(valid)
        with torch.no_grad():
            run(x)
        snapshot = counter.end(valid)
        table = snapshot.read()
        assert table == reference(captured_ids(model, x), valid, counter.num_experts, counter.width)
        assert (counter.ids[:, valid:tokens] != -1).all()  # the padded rows were written, and left out of the table
        per_expert, reason = check_counts(table, valid, counter.num_experts, counter.top_k, counter.names)
        assert reason is None and per_expert is not None
        assert [len(row) for row in per_expert] == counter.num_experts


def test_a_step_reads_only_what_its_own_forward_wrote() -> None:
    """vLLM's warm-up, profiling and graph-capture forwards also write the buffer; a step reads only rows below its
    token count, which every layer's op rewrites during the step's own forward."""
    model, counter = build()
    with torch.no_grad():
        model(torch.randn(12, 16))  # outside any step: a warm-up forward
        x = torch.randn(5, 16)
        counter.begin(5)
        model(x)
    table = counter.end(5).read()
    assert table == reference(captured_ids(model, x), 5, counter.num_experts, counter.width)


def test_self_check_catches_a_step_the_op_missed() -> None:
    """A step whose graph lacks the op (a stale artifact made without the recorder) counts nothing: null + why."""
    model, counter = build()
    for layer in model:
        layer.router.set_capture_fn(None)
    counter.begin(4)
    with torch.no_grad():
        model(torch.randn(4, 16))
    tokens, reason = check_counts(counter.end(4).read(), 4, counter.num_experts, counter.top_k, counter.names)
    assert tokens is None
    assert reason is not None and "layer model.layers.0.mlp has 8 of 8 expert choices unrecorded" in reason
    assert "did not run" in reason


def test_self_check_counts_overflow_but_leaves_it_out_of_the_experts() -> None:
    table = [[3, 0, 1, 2, 0], [0, 0, 0, 6, 0]]  # E = 3 each; column 3 overflow, column 4 missing
    tokens, reason = check_counts(table, 3, [3, 3], [2, 2], ["a", "b"])
    assert reason is None and tokens == [[3, 0, 1], [0, 0, 0]]
    tokens, reason = check_counts([[3, 0, 1, 1, 0], [0, 0, 0, 6, 0]], 3, [3, 3], [2, 2], ["a", "b"])
    assert tokens is None and reason == (
        "routing self-check failed: layer a counted 5 expert choices, expected 6 (top_k 2 × 3 tokens)"
    )
    tokens, reason = check_counts([[3, 0, 1, 1, 1], [0, 0, 0, 6, 0]], 3, [3, 3], [2, 2], ["a", "b"])
    assert tokens is None and reason is not None and "1 of 6 expert choices unrecorded" in reason


def test_a_step_larger_than_the_buffer_fails_the_check() -> None:
    model, _ = build()
    counter = RoutingCounter([(f"l{i}", layer.router) for i, layer in enumerate(model)], "cpu", max_tokens=4)
    counter.begin(6)
    with torch.no_grad():
        model(torch.randn(6, 16))
    tokens, reason = check_counts(counter.end(6).read(), 6, counter.num_experts, counter.top_k, counter.names)
    assert tokens is None and reason is not None and "4 of 12 expert choices unrecorded" in reason


def test_the_bound_callback_is_one_op_call() -> None:
    """What Dynamo traces (and a CUDA graph captures) is a single call of the registered custom op."""
    from torch.fx.experimental.proxy_tensor import make_fx

    router = FakeRouter(8, 2)
    RoutingCounter([("l0", router)], "cpu", max_tokens=8)
    graph = make_fx(lambda ids: router.capture_fn(ids))(torch.zeros(4, 2, dtype=torch.int32))
    calls = [str(n.target) for n in graph.graph.nodes if n.op == "call_function"]
    assert calls == ["capbench.store_routed_experts.default"]
