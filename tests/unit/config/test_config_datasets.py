"""Dataset and trace settings: each workload takes its own parameters and refuses everything else by name."""

from __future__ import annotations

from typing import Any

import pytest

from capbench.config import build_run_spec
from capbench.errors import ConfigError

OPENAI = {"runner": "openai", "base_url": "http://127.0.0.1:1"}
RANDOM = {**OPENAI, "dataset": "random", "mean_prompt_tokens": 100, "mean_output_tokens": 20}
TRACE = {**OPENAI, "trace": "t.jsonl", "trace_format": "mooncake"}


def test_random_defaults_and_what_they_imply() -> None:
    spec = build_run_spec(None, RANDOM)
    assert spec.synthetic_workload == "random" and spec.effective_ignore_eos  # the dataset's output lengths
    assert spec.effective_task is None
    assert not build_run_spec(None, {**RANDOM, "dataset_output_lengths": False}).effective_ignore_eos


def test_a_trace_is_its_own_open_loop() -> None:
    spec = build_run_spec(None, TRACE)
    assert spec.synthetic_workload == "trace" and spec.effective_concurrency is None
    from capbench.runners import runner_traits

    assert runner_traits(spec.runner).load_pattern(spec) == "trace_replay"


def test_demo_with_a_dataset_runs_no_task() -> None:
    spec = build_run_spec(None, {"dataset": "random", "mean_prompt_tokens": 8, "mean_output_tokens": 4})
    assert spec.runner == "hf" and spec.effective_task is None


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({**RANDOM, "prefix_tokens": 5}, "prefix_tokens: not used by the random workload"),
        ({**OPENAI, "mean_prompt_tokens": 5}, "mean_prompt_tokens: not used by the prompts workload"),
        ({**OPENAI, "dataset_output_lengths": False}, "the prompts workload has no output lengths"),
        ({**OPENAI, "dataset": "random", "mean_output_tokens": 5}, "the random workload needs mean_prompt_tokens"),
        (
            {**OPENAI, "dataset": "prefix", "prefix_groups": 2, "mean_output_tokens": 5},
            "needs prefix_tokens, suffix_tokens",
        ),
        ({**RANDOM, "length_distribution": "normal"}, "normal lengths need length_sigma"),
        ({**RANDOM, "length_sigma": 0.5}, "length_sigma applies to normal and lognormal lengths, not uniform"),
        ({**RANDOM, "length_distribution": "exact", "range_ratio": 0.2}, "range_ratio applies to uniform lengths"),
        ({**RANDOM, "api": "chat"}, "sends token-id prompts: use api completions"),
        ({**RANDOM, "prompts": "p.jsonl"}, "prompts: the random workload builds its own requests"),
        ({**RANDOM, "fixed_prompt_tokens": 8}, "fixed_prompt_tokens: the random workload builds its own requests"),
        ({**RANDOM, "task": "capbench_arithmetic"}, "task: the random workload builds its own requests"),
        ({**RANDOM, "max_tokens": 9}, "max_tokens: the random workload sets each request's output length"),
        ({**TRACE, "dataset": "random", "mean_prompt_tokens": 1, "mean_output_tokens": 1}, "not used by the trace"),
        ({**OPENAI, "trace": "t.jsonl"}, "the trace workload needs trace_format"),
        ({**TRACE, "concurrency": 4}, "concurrency: a trace sets its own arrival times"),
        ({**TRACE, "request_rate": 4}, "request_rate: a trace sets its own arrival times"),
        ({**TRACE, "duration_s": 4}, "duration_s: a trace sets its own arrival times"),
        ({**TRACE, "replay_speed": 0}, "replay_speed"),
        ({**OPENAI, "replay_speed": 2}, "replay_speed: not used by the prompts workload"),
        ({**OPENAI, "dataset": "sharegpt", "trace_format": "burstgpt"}, "trace_format: not used by the sharegpt"),
        ({**OPENAI, "dataset_path": "x.json"}, "dataset_path: not used by the prompts workload"),
        ({"trace": "t.jsonl", "trace_format": "mooncake"}, "runner 'hf' serves static batches and cannot send"),
    ],
)
def test_wrong_combinations_are_named(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_run_spec(None, settings)
