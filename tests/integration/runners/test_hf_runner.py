"""The hf runner against the real tiny MoE: pass records, measured experts, request timing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from capbench.config import RunSpec
from capbench.workload import build_requests, load_prompts

pytestmark = pytest.mark.integration


class ListSink:
    def __init__(self) -> None:
        self.passes: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []

    def on_pass(self, record: dict[str, Any]) -> None:
        self.passes.append(record)

    def on_request(self, record: dict[str, Any]) -> None:
        self.requests.append(record)


@pytest.fixture(scope="module")
def served(tiny_model_dir: Path) -> tuple[Any, ListSink, list[Any]]:
    from capbench.runners.hf.runner import HFRunner

    # ignore_eos=False with varied prompt lengths; max_tokens small so the batch shrinks at different times
    # only through EOS (rare with random weights) or the cap.
    spec = RunSpec(concurrency=3, max_tokens=6, device="cpu")
    runner = HFRunner(spec, tiny_model_dir)
    requests = build_requests(load_prompts(), num_requests=3, warmup=0, seed=1)
    sink = ListSink()
    runner.serve(requests, sink)
    return runner, sink, requests


def _routing_of_sequence(model: Any, token_ids: list[int]) -> list[torch.Tensor]:
    """Router top-k ids per MoE layer for one unpadded sequence run in a single forward: [positions, k]."""
    captured: list[torch.Tensor] = []
    gates = [layer.mlp.gate for layer in model.model.layers]
    handles = [g.register_forward_hook(lambda m, a, out: captured.append(out[2].clone())) for g in gates]
    try:
        with torch.inference_mode():
            model(input_ids=torch.tensor([token_ids]))
    finally:
        for h in handles:
            h.remove()
    return captured


def test_one_pass_record_per_forward_with_well_formed_fields(served: tuple[Any, ListSink, list[Any]]) -> None:
    runner, sink, _ = served
    num_experts = runner.model.config.num_experts
    num_moe_layers = len(runner.model.model.layers)
    top_k = runner.model.config.num_experts_per_tok
    assert len(sink.passes) == 6  # one prefill + five decode passes for max_tokens=6
    for record in sink.passes:
        assert len(record["experts_active"]) == num_moe_layers
        assert all(1 <= a <= num_experts for a in record["experts_active"])
        tokens = sum(n for n, _ in record["reqs"])
        for active, counts in zip(record["experts_active"], record["expert_tokens"], strict=True):
            assert len(counts) == num_experts
            assert active == sum(1 for c in counts if c > 0)
            assert sum(counts) == top_k * tokens  # every valid token runs exactly k experts
        assert record["sampled"] == len(record["reqs"])
        assert record["t_start_ns"] < record["t_end_ns"]
    starts = [p["t_start_ns"] for p in sink.passes]
    assert starts == sorted(starts)
    assert all(a["t_end_ns"] <= b["t_start_ns"] for a, b in zip(sink.passes, sink.passes[1:], strict=False))


def test_experts_match_a_brute_force_recount(served: tuple[Any, ListSink, list[Any]]) -> None:
    """Recount each pass's expert usage from separate unpadded forwards of every full sequence."""
    runner, sink, _ = served
    prompts = {r.id: r.prompt.text for r in served[2]}
    routing: dict[str, list[torch.Tensor]] = {}
    for record in sink.requests:
        prompt = runner.tokenizer(prompts[record["id"]], add_special_tokens=False)["input_ids"]
        assert record["prompt_tokens"] == len(prompt)
        # One unpadded forward over the prompt and every generated token but the last (never fed back).
        routing[record["id"]] = _routing_of_sequence(runner.model, prompt + record["output_token_ids"][:-1])
    num_experts = runner.model.config.num_experts
    for step, record in enumerate(sink.passes):
        for layer, counts in enumerate(record["expert_tokens"]):
            recount = torch.zeros(num_experts, dtype=torch.long)
            for rid, (n, c) in zip(record["req_ids"], record["reqs"], strict=True):
                ids = routing[rid][layer][c : c + n]  # positions computed in this pass
                recount += torch.bincount(ids.reshape(-1), minlength=num_experts)
            assert counts == recount.tolist(), f"pass {step} layer {layer}"


def test_requests_have_ordered_timestamps_and_token_accounting(served: tuple[Any, ListSink, list[Any]]) -> None:
    _, sink, requests = served
    assert {r["id"] for r in sink.requests} == {r.id for r in requests}
    for record in sink.requests:
        times = record["token_times_ns"]
        assert record["t_submit_ns"] <= record["t_first_token_ns"] == times[0]
        assert times == sorted(times) and times[-1] == record["t_done_ns"]
        assert len(times) == record["output_tokens"] <= 6
        assert record["finish_reason"] in {"stop", "length"}
        computed = sum(
            n for p in sink.passes for rid, (n, _) in zip(p["req_ids"], p["reqs"], strict=True) if rid == record["id"]
        )
        # Every prompt token and every generated token but the last is computed exactly once.
        assert computed == record["prompt_tokens"] + record["output_tokens"] - 1
