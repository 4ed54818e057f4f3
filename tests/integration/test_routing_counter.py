"""The graph-safe routing counter with plain torch: exact counts eager and under torch.compile, padded rows and
out-of-range ids handled, the per-step snapshot and the self-check (the vLLM engine itself: test_vllm_runner.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from capbench.runners.vllm.routing import RoutingCounter, check_counts, count_op

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
    """Counts with numpy: rows < valid only, ids outside [0, E_l) into column ``width``."""
    out = []
    for layer, layer_ids in enumerate(ids):
        row = [0] * (width + 1)
        for token in layer_ids[:valid]:
            for e in token:
                row[int(e) if 0 <= e < num_experts[layer] else width] += 1
        out.append(row)
    return out


def test_the_op_counts_valid_rows_and_bins_what_is_out_of_range() -> None:
    op = count_op()
    counts = torch.zeros(2, 9, dtype=torch.int64)
    valid = torch.tensor(3)
    ids = torch.tensor([[0, 7], [7, 7], [8, -1], [5, 5], [3, 2]], dtype=torch.int32)  # rows 3, 4: padding
    op(counts, ids, valid, 1, 8)
    expected = reference([np.zeros((0, 2)), ids.numpy()], 3, [8, 8], 8)
    assert counts.tolist() == expected
    assert counts[1].tolist() == [1, 0, 0, 0, 0, 0, 0, 3, 2]  # 8 and -1 went to the overflow bin
    assert counts[0].sum().item() == 0


def build(layers: int = 3, experts: tuple[int, ...] = (8, 8, 6), top_k: int = 2) -> tuple[torch.nn.Module, Any]:
    torch.manual_seed(0)
    routers = [FakeRouter(experts[i], top_k) for i in range(layers)]
    model = torch.nn.Sequential(*(Layer(r, 16) for r in routers)).eval()
    counter = RoutingCounter([(f"model.layers.{i}.mlp", r) for i, r in enumerate(routers)], "cpu")
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
        assert counter.counts.sum().item() == 0 and counter.valid_tokens.item() == 0  # zeroed for the next step
        per_expert, reason = check_counts(table, valid, counter.num_experts, counter.top_k, counter.names)
        assert reason is None and per_expert is not None
        assert [len(row) for row in per_expert] == counter.num_experts


def test_forwards_outside_a_step_count_nothing() -> None:
    """vLLM's warm-up, profiling and graph-capture forwards run with valid_tokens 0."""
    model, counter = build()
    with torch.no_grad():
        model(torch.randn(12, 16))
    assert counter.counts.sum().item() == 0


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
    assert reason is not None and "layer model.layers.0.mlp counted 0 expert choices, expected 8" in reason
    assert "did not run" in reason


def test_self_check_counts_overflow_but_leaves_it_out_of_the_experts() -> None:
    table = [[3, 0, 1, 2], [0, 0, 0, 6]]  # E = 3 each; column 3 is the overflow bin
    tokens, reason = check_counts(table, 3, [3, 3], [2, 2], ["a", "b"])
    assert reason is None and tokens == [[3, 0, 1], [0, 0, 0]]
    tokens, reason = check_counts([[3, 0, 1, 1], [0, 0, 0, 6]], 3, [3, 3], [2, 2], ["a", "b"])
    assert tokens is None and reason == (
        "routing self-check failed: layer a counted 5 expert choices, expected 6 (top_k 2 × 3 tokens)"
    )


def test_the_bound_callback_is_one_op_call() -> None:
    """What Dynamo traces (and a CUDA graph captures) is a single call of the registered custom op."""
    from torch.fx.experimental.proxy_tensor import make_fx

    router = FakeRouter(8, 2)
    RoutingCounter([("l0", router)], "cpu")
    graph = make_fx(lambda ids: router.capture_fn(ids))(torch.zeros(4, 2, dtype=torch.int32))
    calls = [str(n.target) for n in graph.graph.nodes if n.op == "call_function"]
    assert calls == ["capbench.count_routed_experts.default"]
