"""Datasets and traces on the real vLLM CPU engine: prefix sharing shows up where the engine says it does.

One launched engine serving the demo MoE (a launch costs about a minute) serves the workloads, driven through
the real harness; its own step records (``passes.jsonl``, ``reqs: [n_i, c_i]``) say how many prompt tokens each
request found already cached at its first step, and the server's counters say the same in aggregate:

- a shared-prefix workload: every measured request after the first of its group finds the prefix cached;
- a Mooncake trace whose requests reuse block ids: requests that reuse a block find it cached;
- random prompts of the same lengths: nothing is cached;
- multi-turn sessions over the chat API: each later turn finds the conversation so far cached, and its prompt
  (the server's own count) grows turn by turn;
- a capacity search attached to the same engine: its probes' attainment falls as the load grows.

The server's counters (``/metrics``, scraped by the runner at the start and end of the measured phase, so warm-up
is left out) give the prefix-cache hit rate: above 0 exactly where the step records show hits.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from capbench.config import build_run_spec
from capbench.metrics.engine_side import engine_side_summary
from capbench.metrics.turns import turn_summary
from capbench.run.datasets import dataset_workload
from capbench.runners.openai.config import OpenAIConfig
from tests.contract.contract import serve
from tests.support.engine_steps import line_count, records_after
from tests.support.vllm_engine import BLOCK_SIZE, engine_settings

pytestmark = pytest.mark.integration

PREFIX_TOKENS, SUFFIX_TOKENS, GROUPS = 256, 24, 2


@pytest.fixture(scope="module")
def engine(vllm_environment: None, shared_vllm_engine: Any) -> Iterator[Any]:
    """The session's shared engine serving the demo MoE (the runner contract, the log-likelihood tests, the runner's
    attach test and the fixed-length task test drove it first); this module is its last user and closes it."""
    yield shared_vllm_engine.get()
    shared_vllm_engine.close()


def settings(model: Path, **workload: Any) -> dict[str, Any]:
    return engine_settings(model, warmup=1, **workload)


def drive(engine: Any, tmp_path: Path, **workload: Any) -> tuple[list[dict[str, Any]], dict[str, int], float | None]:
    """Drive one workload (its own load and API settings on the shared engine): the measured requests, the
    tokens each found cached at its first step (``c_i``), and the server's prefix-cache hit rate over the
    measured phase."""
    runner, run_dir, model = engine
    spec = build_run_spec(None, settings(model, **workload))
    work, _ = dataset_workload(spec, model)
    shared = runner.client.config
    runner.client.config = OpenAIConfig.from_spec(spec)  # this workload's api and load, on the shared engine
    mark, scrapes = line_count(run_dir / "passes.jsonl"), line_count(run_dir / "server_metrics.jsonl")
    try:
        served = serve(runner, work, tmp_path / "run")
    finally:
        runner.client.config = shared
    assert served.status == "complete" and all(r["error"] is None for r in served.requests)
    first: dict[str, int] = {}
    for step in records_after(run_dir / "passes.jsonl", mark):
        for rid, (_, cached) in zip(step["req_ids"], step["reqs"], strict=True):
            first.setdefault(rid, cached)
    server = engine_side_summary(records_after(run_dir / "server_metrics.jsonl", scrapes, settle_s=0.0))
    assert server is not None
    hit_rate = server["counters"]["prefix_cache_hit_rate"]
    measured = [r for r in served.requests if not r["warmup"]]
    return measured, {rid: cached for rid, cached in first.items() if rid.startswith("r")}, hit_rate


def first_step_cached(engine: Any, tmp_path: Path, **workload: Any) -> tuple[dict[str, int], float | None]:
    _, cached, hit_rate = drive(engine, tmp_path, **workload)
    return cached, hit_rate


def test_shared_prefixes_are_found_in_the_cache(engine: Any, tmp_path: Path) -> None:
    cached, hit_rate = first_step_cached(
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
    assert hit_rate is not None and hit_rate > 0.5  # the server counts the same hits


def test_a_trace_with_repeated_blocks_hits_the_cache(engine: Any, tmp_path: Path) -> None:
    trace = tmp_path / "mooncake.jsonl"
    entries = [
        {"timestamp": 0, "input_length": 700, "output_length": 3, "hash_ids": [7, 100]},
        {"timestamp": 200, "input_length": 900, "output_length": 3, "hash_ids": [7, 101]},
        {"timestamp": 400, "input_length": 300, "output_length": 3, "hash_ids": [102]},
        {"timestamp": 600, "input_length": 1024, "output_length": 3, "hash_ids": [7, 100]},
    ]
    trace.write_text("".join(json.dumps(e) + "\n" for e in entries))
    cached, hit_rate = first_step_cached(engine, tmp_path, trace=str(trace), trace_format="mooncake")
    assert cached["r0000"] == 0 and cached["r0002"] == 0  # new blocks
    assert cached["r0001"] >= 512  # block 7
    assert cached["r0003"] >= 672  # blocks 7 and 100 as far as request 0 filled them (700 → 21 full blocks)
    assert hit_rate is not None and hit_rate > 0.3


def test_random_prompts_share_nothing(engine: Any, tmp_path: Path) -> None:
    cached, hit_rate = first_step_cached(
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
    assert hit_rate == 0.0  # queried, never hit


def test_multi_turn_sessions_reuse_their_conversation(engine: Any, tmp_path: Path) -> None:
    measured, cached, hit_rate = drive(
        engine,
        tmp_path,
        dataset="random",
        multi_turn=True,
        turns=3,
        api="chat",
        mean_prompt_tokens=40,
        mean_output_tokens=6,
        length_distribution="exact",
        concurrency=2,
        num_requests=4,
    )
    assert len(measured) == 12
    sessions: dict[str, list[dict[str, Any]]] = {}
    for r in sorted(measured, key=lambda r: r["turn"]):
        sessions.setdefault(r["session_id"], []).append(r)
    assert len(sessions) == 4
    for turns in sessions.values():
        prompts = [r["prompt_tokens"] for r in turns]  # the server's count: the chat template over the whole history
        assert [r["turn"] for r in turns] == [0, 1, 2] and prompts[0] < prompts[1] < prompts[2], prompts
        assert all(r["output_tokens"] == 6 for r in turns)
        # a later turn finds what its session sent before in the cache (whole blocks of it)
        assert all(cached[r["id"]] >= BLOCK_SIZE for r in turns[1:]), [cached[r["id"]] for r in turns]
    assert hit_rate is not None and hit_rate > 0.2
    by_turn = turn_summary(measured, None)
    assert by_turn is not None and [row["requests"] for row in by_turn["by_turn"]] == [4, 4, 4]
    # TTFT by turn, over the requests whose stream carried text (the random tiny model may sample only tokens that
    # decode to nothing, e.g. its end-of-turn token under ignore_eos: then there is no first token to time)
    for row in by_turn["by_turn"]:
        timed = [r for r in measured if r["turn"] == row["turn"] and r["t_first_token_ns"] is not None]
        assert row["ttft_s"]["count"] == len(timed)


def test_a_capacity_search_on_vllm(engine: Any, tmp_path: Path) -> None:
    """`capbench capacity` against the running engine (each probe its own `capbench run` process attached to it):
    the search completes, and its probes' attainment falls as the load grows.

    The engine caches prefixes and every probe sends the same prompts, so from the second probe on a prompt's
    prefill is mostly cached and TTFT grows with the requests in flight far less than with their prompts: as
    many requests as the highest load (all in flight at once there) and an SLO of 50 ms keep that load failing
    on a fast, quiet machine (all in flight at 32, TTFT was 72 ms; 0.1 s then passed every load)."""
    from capbench.cli import main

    runner, _, model = engine
    out = tmp_path / "capacity"
    workload = ["--dataset", "random", "--mean-prompt-tokens", "512", "--mean-output-tokens", "16"]
    args = ["capacity", "--runner", "vllm", "--base-url", runner.client.base_url, "--model-path", str(model)]
    search = ["--slo", "ttft_s=0.05", "--attainment", "0.9", "--start", "4", "--max-load", "64", "--resolution", "0.25"]
    common = ["--power", "none", "--quiet", "--num-requests", "64", "--warmup", "2", "--length-distribution", "exact"]
    code = main([*args, *search, "--max-repeats", "1", *workload, *common, "--out", str(out)])
    result = json.loads((out / "capacity.json").read_text())
    assert code == 0 and result["outcome"] == "found", result["probes"]
    probes = sorted(result["probes"], key=lambda p: p["load"])
    lowest, highest = probes[0], probes[-1]
    assert lowest["verdict"] == "pass" and highest["verdict"] == "fail"
    assert highest["attainment"] < lowest["attainment"]  # attainment falls with load
    assert result["max_concurrency"] >= lowest["load"] and result["bracket"]["failed"] <= highest["load"]
    at = result["at_capacity"]
    assert at["ttft_p50_s"] is not None and at["ttft_p50_s"] <= 0.05
    # 1 / TPOT p50: null when half the requests got all their text in one event (TPOT 0, seen with the tiny
    # random model, whose tokens often decode to nothing until the end), a positive rate otherwise.
    assert at["tpot_p50_s"] is not None
    if at["tpot_p50_s"] > 0:
        assert at["tokens_per_s_per_user"] is not None and at["tokens_per_s_per_user"] > 0
    else:
        assert at["tokens_per_s_per_user"] is None
    print(
        f"vLLM-CPU capacity: concurrency {result['max_concurrency']} in {result['probe_count']} probes, "
        f"{result['wall_s']:.0f} s; attainment by load {[(p['load'], round(p['attainment'], 3)) for p in probes]}"
    )
