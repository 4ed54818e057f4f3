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
    if spec.multi_turn:
        return _multi_turn_workload(spec, tokenizer)
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


def _multi_turn_workload(spec: RunSpec, tokenizer: Any) -> tuple[Workload, dict[str, Any]]:
    """Sessions of ShareGPT's multi-turn conversations or synthetic ones (:mod:`capbench.workload.conversations`);
    ``num_requests`` counts sessions (duration mode: the conversations cycle)."""
    from capbench.workload.conversations import Sessions, synthetic_conversations, warmup_requests
    from capbench.workload.lengths import LengthSpec
    from capbench.workload.sharegpt import DURATION_POOL

    count = spec.effective_num_requests
    drawn = (count if count is not None else DURATION_POOL) + spec.warmup
    record: dict[str, Any]
    if spec.dataset == "sharegpt":
        from capbench.workload.sharegpt import MAX_TOTAL_TOKENS, MIN_TOKENS, sample_sharegpt_conversations

        sample = sample_sharegpt_conversations(spec.dataset_path, tokenizer, drawn, spec.seed, spec.turns)
        conversations = sample.conversations
        record = {
            "name": "sharegpt",
            "source": sample.source,
            "sha256": sample.sha256,
            "conversations": sample.available,
            "truncated": sample.truncated,
            "skipped": sample.skipped,
            "cut": sample.cut,
            "filters": {"min_tokens": MIN_TOKENS, "max_conversation_tokens": MAX_TOTAL_TOKENS, "max_turns": spec.turns},
        }
    else:
        from capbench.workload.synthetic import TokenPool

        assert spec.turns is not None and spec.mean_prompt_tokens and spec.mean_output_tokens
        pool = TokenPool.from_tokenizer(tokenizer)
        spread = (spec.length_distribution, spec.range_ratio, spec.length_sigma or 0.0)
        user, output = LengthSpec(spec.mean_prompt_tokens, *spread), LengthSpec(spec.mean_output_tokens, *spread)
        conversations = synthetic_conversations(
            lambda ids: str(tokenizer.decode(ids)),
            pool.draw,
            count=drawn,
            turns=spec.turns,
            user=user,
            output=output,
            seed=spec.seed,
        )
        params = {"turns": spec.turns, "user_tokens": user.describe(), "output_tokens": output.describe()}
        record = {
            "name": "random",
            "source": "capbench synthetic conversations",
            "sha256": _params_hash({**params, "seed": spec.seed}),
            **params,
        }
    measured, warm = conversations[: drawn - spec.warmup], conversations[drawn - spec.warmup :]
    sessions = Sessions(
        measured, count, think_time_s=spec.think_time_s, dataset_output_lengths=spec.dataset_output_lengths
    )
    workload = Workload(
        warmup_requests(warm, spec.dataset_output_lengths),
        sessions.first_turns(),
        count,
        spec.duration_s,
        sessions=sessions,
    )
    record.update({"multi_turn": True, "think_time_s": spec.think_time_s, "planned": _planned_sessions(sessions)})
    return workload, record


def _planned_sessions(sessions: Any) -> dict[str, Any] | None:
    """``load.dataset.planned`` of a multi-turn workload (None in duration mode): sessions and requests, turns per
    session, the new user message's tokens (``user_tokens``; a turn's prompt is the whole conversation so far)
    and the output tokens per turn, and the longest conversation (every user message and answer, in tokens) as
    the context check's longest request."""
    chosen = sessions.chosen()
    if chosen is None:
        return None
    turns = [t for c in chosen for t in c.turns]
    return {
        "sessions": len(chosen),
        "requests": len(turns),
        "turns_per_session": describe([len(c.turns) for c in chosen]),
        "user_tokens": describe([t.user_tokens for t in turns]),
        "output_tokens": describe([t.output_tokens for t in turns]),
        "longest_request_tokens": max((c.total_tokens for c in chosen), default=None),
    }
