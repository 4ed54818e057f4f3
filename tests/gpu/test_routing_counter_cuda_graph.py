"""The routing recorder inside a CUDA graph (skipped where NVML finds no GPU).

Fake MoE router layers (linear router, top-k, the recorder's capture callback) are captured once into a CUDA
graph at a padded batch size, then replayed with different real token counts: the counts must equal a recount
of the ids from an eager forward on the same inputs, rows past the real count must add nothing, and neither the
graph nor the step's open/close may synchronise with the host (capture itself fails on a synchronisation, and
the step runs under ``torch.cuda.set_sync_debug_mode("error")``). The count table goes through the pinned-memory
ring and its event.
"""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.gpu


@pytest.fixture
def torch_cuda() -> Any:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    return torch


class _Router:
    def __init__(self, num_experts: int, top_k: int) -> None:
        self.global_num_experts, self.top_k, self.capture_fn = num_experts, top_k, None

    def set_capture_fn(self, fn: Any) -> None:
        self.capture_fn = fn


def test_counts_inside_a_cuda_graph_are_exact_for_each_replay(torch_cuda: Any) -> None:
    torch = torch_cuda
    from capbench.runners.expert_counts import check_counts
    from capbench.runners.vllm.routing import RoutingCounter

    torch.manual_seed(0)
    layers, experts, top_k, hidden, padded = 4, 16, 2, 64, 64
    routers = [_Router(experts, top_k) for _ in range(layers)]
    gates = [torch.nn.Linear(hidden, experts, bias=False, device="cuda") for _ in range(layers)]
    counter = RoutingCounter([(f"model.layers.{i}.mlp", r) for i, r in enumerate(routers)], "cuda", padded)
    static_x = torch.zeros(padded, hidden, device="cuda")

    def forward(x: Any, record: list[Any] | None = None) -> Any:
        for gate, router in zip(gates, routers, strict=True):
            weights, ids = torch.topk(gate(x), top_k, dim=-1)
            if record is not None:
                record.append(ids.clone())
            router.capture_fn(ids)
            x = x + weights.sum(-1, keepdim=True)
        return x

    with torch.no_grad():
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            forward(static_x)  # warm-up outside the graph (and outside any step)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):  # raises if anything in it synchronises with the host
            forward(static_x)

        for valid in (64, 17, 1, 40, 0):
            x = torch.randn(padded, hidden, device="cuda")
            ids_eager: list[Any] = []
            saved = [r.capture_fn for r in routers]
            for r in routers:
                r.capture_fn = lambda ids: None
            forward(x, ids_eager)  # the reference ids, eager, same weights and inputs
            for r, fn in zip(routers, saved, strict=True):
                r.capture_fn = fn
            static_x.copy_(x)
            torch.cuda.set_sync_debug_mode("error")
            try:
                counter.begin(valid)  # marks the step's rows unwritten
                graph.replay()
                snapshot = counter.end(valid)  # counted on the device, async copy into pinned memory + event
            finally:
                torch.cuda.set_sync_debug_mode("default")
            table = snapshot.read()
            for layer, ids in enumerate(ids_eager):
                expected = torch.bincount(ids[:valid].reshape(-1), minlength=experts).tolist()
                assert table[layer][:experts] == expected, (valid, layer)
                assert table[layer][experts:] == [0, 0]  # no out-of-range id, no unwritten slot
            per_expert, reason = check_counts(table, valid, counter.num_experts, counter.top_k, counter.names)
            assert reason is None and per_expert is not None


def test_the_pinned_ring_hands_steps_over_in_order(torch_cuda: Any) -> None:
    """More steps than ring slots: each snapshot read later still holds its own step's counts."""
    torch = torch_cuda
    from capbench.runners.vllm.routing import PINNED_RING, RoutingCounter

    router = _Router(8, 1)
    counter = RoutingCounter([("l0", router)], "cuda", 64)
    snapshots = []
    for step in range(PINNED_RING - 1):
        ids = torch.full((step + 1, 1), step % 8, dtype=torch.int32, device="cuda")
        counter.begin(step + 1)
        router.capture_fn(ids)
        snapshots.append(counter.end(step + 1))
    for step, snapshot in enumerate(snapshots):
        row = snapshot.read()[0]
        assert row[step % 8] == step + 1 and sum(row) == step + 1


def test_a_layer_whose_op_did_not_run_is_caught(torch_cuda: Any) -> None:
    """What a CUDA graph captured without the recorder would give: unwritten slots, the self-check fails."""
    torch = torch_cuda
    from capbench.runners.expert_counts import check_counts
    from capbench.runners.vllm.routing import RoutingCounter

    routers = [_Router(8, 2), _Router(8, 2)]
    counter = RoutingCounter([("l0", routers[0]), ("l1", routers[1])], "cuda", 32)
    counter.begin(4)
    routers[0].capture_fn(torch.zeros((4, 2), dtype=torch.int32, device="cuda"))  # layer 1 never reports
    tokens, reason = check_counts(counter.end(4).read(), 4, counter.num_experts, counter.top_k, counter.names)
    assert tokens is None and reason is not None and "layer l1 has 8 of 8 expert choices unrecorded" in reason
