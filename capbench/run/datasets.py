"""The dataset and trace workloads of a run (``dataset: random | prefix | sharegpt``, ``trace``), built from the
run's settings and the served model's tokenizer, and described for ``run.json`` ``load.dataset``.

``load.dataset`` records ``name`` (the workload kind), ``source`` and ``sha256`` (the file's, for a trace or a
ShareGPT file; the parameters' for a synthetic set), the parameters, and ``planned``: the distribution of the
prompt and output lengths the workload will send (count, mean, p50, p90, p99, max in tokens, over the measured
requests; null in duration mode for the synthetic sets, which are endless). What was really sent is in the
summary (``workload``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from capbench.config import RunSpec
from capbench.metrics.stats import describe
from capbench.run.plan import model_tokenizer
from capbench.workload import Workload


def _planned(prompt: list[int], output: list[int]) -> dict[str, Any]:
    """The planned lengths' stats, and the longest request (prompt + output tokens) for the context check."""
    longest = max((p + o for p, o in zip(prompt, output, strict=True)), default=None)
    return {"prompt_tokens": describe(prompt), "output_tokens": describe(output), "longest_request_tokens": longest}


def _params_hash(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()


def dataset_workload(spec: RunSpec, model_path: Path | None) -> tuple[Workload, dict[str, Any]]:
    """The workload of ``spec.synthetic_workload`` and its ``load.dataset`` record."""
    from capbench.workload.lengths import LengthSpec
    from capbench.workload.synthetic import (
        MEASURED,
        RandomLengths,
        SharedPrefixes,
        TokenPool,
        TraceBuilder,
        synthetic_workload,
    )

    kind = spec.synthetic_workload
    tokenizer = model_tokenizer(model_path, f"the {kind} workload builds its prompts with")
    outputs = spec.dataset_output_lengths
    count = spec.effective_num_requests
    if kind == "sharegpt":
        from capbench.workload.sharegpt import MAX_PROMPT_TOKENS, MAX_TOTAL_TOKENS, MIN_TOKENS, sharegpt_workload

        workload, sample = sharegpt_workload(
            spec.dataset_path,
            tokenizer,
            num_requests=count,
            duration_s=spec.duration_s,
            warmup=spec.warmup,
            seed=spec.seed,
            dataset_output_lengths=outputs,
        )
        measured = sample.pairs[: count if count is not None else len(sample.pairs) - spec.warmup]
        record = {
            "name": "sharegpt",
            "source": sample.source,
            "sha256": sample.sha256,
            "conversations": sample.conversations,
            "truncated": sample.truncated,
            "skipped": sample.skipped,
            "filters": {
                "min_tokens": MIN_TOKENS,
                "max_prompt_tokens": MAX_PROMPT_TOKENS,
                "max_total_tokens": MAX_TOTAL_TOKENS,
            },
            "planned": _planned([len(p.prompt_ids) for p in measured], [p.output_tokens for p in measured]),
        }
        return workload, record
    pool = TokenPool.from_tokenizer(tokenizer)
    if kind == "trace":
        from capbench.workload.traces import load_trace

        assert spec.trace is not None and spec.trace_format is not None
        trace = load_trace(spec.trace, spec.trace_format)
        workload = TraceBuilder(trace, pool, spec.seed).workload(
            num_requests=spec.num_requests, warmup=spec.warmup, replay_speed=spec.replay_speed, outputs=outputs
        )
        entries = trace.entries[: workload.num_requests]
        record = {
            "name": "trace",
            "format": trace.format,
            "source": trace.source,
            "sha256": trace.sha256,
            "entries": len(trace.entries),
            "skipped_failed_entries": trace.skipped_failed,
            "replay_speed": spec.replay_speed,
            "duration_s": trace.duration_s(spec.replay_speed),
            "planned": _planned([e.prompt_tokens for e in entries], [e.output_tokens for e in entries]),
        }
        return workload, record
    output = LengthSpec(
        spec.mean_output_tokens or 1, spec.length_distribution, spec.range_ratio, spec.length_sigma or 0.0
    )
    shape: RandomLengths | SharedPrefixes
    if kind == "random":
        prompt = LengthSpec(
            spec.mean_prompt_tokens or 1, spec.length_distribution, spec.range_ratio, spec.length_sigma or 0.0
        )
        shape = RandomLengths(prompt, output)
    else:
        assert spec.prefix_groups and spec.prefix_tokens and spec.suffix_tokens
        shape = SharedPrefixes(spec.prefix_groups, spec.prefix_tokens, spec.suffix_tokens, output)
    workload = synthetic_workload(
        shape,
        pool,
        num_requests=count,
        duration_s=spec.duration_s,
        warmup=spec.warmup,
        seed=spec.seed,
        dataset_output_lengths=outputs,
    )
    params = {**shape.describe(), "seed": spec.seed}
    planned = None
    if count is not None:
        lengths = [shape.lengths(spec.seed, MEASURED, i) for i in range(count)]
        planned = _planned([p for p, _ in lengths], [o for _, o in lengths])
    record = {
        "name": kind,
        "source": f"capbench {kind} token ids",
        "sha256": _params_hash(params),
        **params,
        "planned": planned,
    }
    return workload, record
