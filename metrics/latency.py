"""Client-observed request latency and throughput from ``requests.jsonl`` (pitfalls.md §6 names).

Request classes: *warm-up* (``warmup: true``; excluded from everything but the counts, whatever its size),
*measured* (not warm-up), *errored* (measured, ``error`` not null: counted, excluded from latency and
throughput), *completed* (measured, not errored). All times in seconds, from the run's one monotonic clock.

Per completed request:
- ``ttft_s`` = (t_first_token_ns − t_submit_ns) / 1e9: client-observed time to first token, queueing included
  (requests with no first token, e.g. zero output tokens, have none);
- ``e2e_latency_s`` = (t_done_ns − t_submit_ns) / 1e9;
- ``tpot_s`` = (e2e_latency_s − ttft_s) / (output_tokens − 1) = (t_done_ns − t_first_token_ns) / 1e9 /
  (output_tokens − 1), only for output_tokens ≥ 2;
- ``itl_s``: the gaps (t_{j+1} − t_j) / 1e9 between consecutive ``token_times_ns`` entries (one per streamed
  chunk), pooled over all requests that give them; a request without ``token_times_ns`` adds nothing.

Run level: ``wall_s`` from the first measured submit to the last measured done (errored requests included:
they occupied the server); ``requests_per_s`` = completed / wall_s; ``input_tokens`` and ``output_tokens``
sum completed requests' prompt and output tokens, and ``*_per_s`` divide them by wall_s;
``tokens_per_s_per_user`` = 1 / (p50 of ``tpot_s``): the decode speed the median stream saw after its first token
(None without a TPOT). The scorer adds ``output_tokens_per_s_per_gpu`` = output_tokens_per_s / GPUs serving the
run (None when their number is unknown).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from capbench.errors import CapbenchError
from capbench.metrics.stats import describe, ratio_or_none

LATENCY_KEYS: tuple[str, ...] = ("ttft_s", "tpot_s", "itl_s", "e2e_latency_s")


def _ns(record: Mapping[str, Any], key: str) -> int | None:
    value = record.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CapbenchError(f"request {record.get('id')!r}: {key} must be an integer (ns), got {value!r}")
    return int(value)


def request_metrics(requests: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts, latency distributions and throughput of a run's requests (formulas in the module docstring).

    Returns ``{"requests": {...}, "throughput": {...}, "latency": {...}}``; a figure that cannot be measured
    (no completed request, no streamed chunk times) is ``None``, never 0.
    """
    total = warmup = errors = completed = 0
    input_tokens = output_tokens = 0
    input_missing = output_missing = 0  # completed requests that did not record their token counts
    first_submit: int | None = None
    last_done: int | None = None
    ttft: list[float] = []
    tpot: list[float] = []
    e2e: list[float] = []
    gaps: list[np.ndarray] = []
    for rec in requests:
        total += 1
        if rec.get("warmup"):
            warmup += 1
            continue
        submit = _ns(rec, "t_submit_ns")
        done = _ns(rec, "t_done_ns")
        if submit is None:
            raise CapbenchError(f"request {rec.get('id')!r} has no t_submit_ns")
        first_submit = submit if first_submit is None else min(first_submit, submit)
        if done is not None:
            if done < submit:
                raise CapbenchError(f"request {rec.get('id')!r}: t_done_ns is before t_submit_ns")
            last_done = done if last_done is None else max(last_done, done)
        if rec.get("error") is not None:
            errors += 1
            continue
        completed += 1
        prompt = rec.get("prompt_tokens")
        out = rec.get("output_tokens")
        if prompt is None:
            input_missing += 1
        else:
            input_tokens += int(prompt)
        if out is None:
            output_missing += 1
        else:
            output_tokens += int(out)
        if done is None:
            raise CapbenchError(f"request {rec.get('id')!r} completed without error but has no t_done_ns")
        e2e_s = (done - submit) / 1e9
        e2e.append(e2e_s)
        first = _ns(rec, "t_first_token_ns")
        if first is not None:
            if not submit <= first <= done:
                raise CapbenchError(
                    f"request {rec.get('id')!r}: t_first_token_ns must lie between t_submit_ns and t_done_ns"
                )
            ttft_s = (first - submit) / 1e9
            ttft.append(ttft_s)
            if out is not None and out >= 2:
                # (e2e − TTFT)/(out − 1), taken in integer ns first: t_done − t_first_token, exactly.
                tpot.append((done - first) / 1e9 / (out - 1))
        times = rec.get("token_times_ns")
        if times is not None and len(times) >= 2:
            gaps.append(np.diff(np.asarray(times, dtype=np.int64)) / 1e9)
    measured = total - warmup
    wall_s = (last_done - first_submit) / 1e9 if first_submit is not None and last_done is not None else None
    # A token total is known only when every completed request recorded its count (no silent zeros).
    inputs = input_tokens if completed and not input_missing else None
    outputs = output_tokens if completed and not output_missing else None
    itl = np.concatenate(gaps) if gaps else np.empty(0)
    if (itl < 0).any():
        raise CapbenchError("a request's token_times_ns is not in increasing order")
    return {
        "requests": {
            "total": total,
            "measured": measured,
            "warmup": warmup,
            "completed": completed,
            "errors": errors,
            "error_rate": ratio_or_none(errors, measured),
        },
        "throughput": {
            "wall_s": wall_s,
            "window_start_ns": first_submit if wall_s is not None else None,
            "window_end_ns": last_done if wall_s is not None else None,
            "requests_per_s": ratio_or_none(completed, wall_s),
            "input_tokens": inputs,
            "output_tokens": outputs,
            "input_tokens_per_s": ratio_or_none(inputs, wall_s),
            "output_tokens_per_s": ratio_or_none(outputs, wall_s),
            "tokens_per_s_per_user": ratio_or_none(1.0, float(np.median(tpot))) if tpot else None,
        },
        "latency": {
            "ttft_s": describe(ttft),
            "tpot_s": describe(tpot),
            "itl_s": describe(itl),
            "e2e_latency_s": describe(e2e),
        },
    }
