"""Datasets and traces on the real vLLM CPU engine: prefix sharing shows up where the engine says it does.

One launched engine (a launch costs about a minute) serves three workloads of the same lengths, driven through
the real harness; its own step records (``passes.jsonl``, ``reqs: [n_i, c_i]``) say how many prompt tokens each
request found already cached at its first step, and the server's counters say the same in aggregate:

- a shared-prefix workload: every measured request after the first of its group finds the prefix cached;
- a Mooncake trace whose requests reuse block ids: requests that reuse a block find it cached;
- random prompts of the same lengths: nothing is cached.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from capbench.config import build_run_spec
from capbench.run.datasets import dataset_workload
from tests.contract.contract import serve
from tests.support.engine_steps import line_count, records_after

pytestmark = pytest.mark.integration

BLOCK_SIZE = 32
PREFIX_TOKENS, SUFFIX_TOKENS, GROUPS = 256, 24, 2


@pytest.fixture(scope="module")
def engine(vllm_environment: None, capbench_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from capbench.models.tiny import build_tiny_family
    from capbench.runners.vllm.runner import VLLMRunner

    model = build_tiny_family("qwen3_moe", root=capbench_cache / "models")
    spec = build_run_spec(
        None, settings(model, dataset="random", mean_prompt_tokens=8, mean_output_tokens=2, concurrency=1)
    )
    run_dir = tmp_path_factory.mktemp("vllm-workloads")
    runner = VLLMRunner(spec, model, run_dir=run_dir)
    yield runner, run_dir, model
    runner.close()


def settings(model: Path, **workload: Any) -> dict[str, Any]:
    return {
        "runner": "vllm",
        "model": str(model),
        "dtype": "float32",
        "warmup": 1,
        "engine_args": {"max_model_len": 2048, "block_size": BLOCK_SIZE, "enable_prefix_caching": True},
        **workload,
    }


def first_step_cached(engine: Any, tmp_path: Path, **workload: Any) -> dict[str, int]:
    """Drive one workload; each measured request's cached tokens at its first step (``c_i``)."""
    runner, run_dir, model = engine
    spec = build_run_spec(None, settings(model, **workload))
    work, _ = dataset_workload(spec, model)
    mark = line_count(run_dir / "passes.jsonl")
    served = serve(runner, work, tmp_path / "run")
    assert served.status == "complete" and all(r["error"] is None for r in served.requests)
    first: dict[str, int] = {}
    for step in records_after(run_dir / "passes.jsonl", mark):
        for rid, (_, cached) in zip(step["req_ids"], step["reqs"], strict=True):
            first.setdefault(rid, cached)
    return {rid: cached for rid, cached in first.items() if rid.startswith("r")}


def test_shared_prefixes_are_found_in_the_cache(engine: Any, tmp_path: Path) -> None:
    cached = first_step_cached(
        engine,
        tmp_path,
        dataset="prefix",
        prefix_groups=GROUPS,
        prefix_tokens=PREFIX_TOKENS,
        suffix_tokens=SUFFIX_TOKENS,
        mean_output_tokens=4,
        concurrency=1,
        num_requests=8,
    )
    assert len(cached) == 8
    ordered = [cached[f"r{i:04d}"] for i in range(8)]
    assert ordered[:GROUPS] == [0] * GROUPS  # each group's first request computes its prefix
    assert all(c >= PREFIX_TOKENS for c in ordered[GROUPS:]), ordered  # the rest find the whole prefix


def test_a_trace_with_repeated_blocks_hits_the_cache(engine: Any, tmp_path: Path) -> None:
    trace = tmp_path / "mooncake.jsonl"
    entries = [
        {"timestamp": 0, "input_length": 700, "output_length": 3, "hash_ids": [7, 100]},
        {"timestamp": 200, "input_length": 900, "output_length": 3, "hash_ids": [7, 101]},
        {"timestamp": 400, "input_length": 300, "output_length": 3, "hash_ids": [102]},
        {"timestamp": 600, "input_length": 1024, "output_length": 3, "hash_ids": [7, 100]},
    ]
    trace.write_text("".join(json.dumps(e) + "\n" for e in entries))
    cached = first_step_cached(engine, tmp_path, trace=str(trace), trace_format="mooncake")
    assert cached["r0000"] == 0 and cached["r0002"] == 0  # new blocks
    assert cached["r0001"] >= 512  # block 7
    assert cached["r0003"] >= 672  # blocks 7 and 100 as far as request 0 filled them (700 → 21 full blocks)


def test_random_prompts_share_nothing(engine: Any, tmp_path: Path) -> None:
    cached = first_step_cached(
        engine,
        tmp_path,
        dataset="random",
        mean_prompt_tokens=PREFIX_TOKENS + SUFFIX_TOKENS,
        mean_output_tokens=4,
        length_distribution="exact",
        concurrency=1,
        num_requests=8,
    )
    assert len(cached) == 8 and set(cached.values()) == {0}
