"""The runner contract: what every runner's records must satisfy, as functions the suite runs for each runner.

A :class:`Served` is what one drive of a runner left in a run directory (read back through the same reader the
scorer uses). Each ``check_*`` raises ``AssertionError`` naming the rule and the record that broke it:

- ``ids``: one record per request, the warm-up ones ``w0000...`` flagged ``warmup``, the measured ones
  ``r0000...`` in number;
- ``timestamps``: ``t_submit_ns ≤ t_first_token_ns ≤ t_done_ns``; token times non-decreasing, inside
  ``[t_first_token_ns, t_done_ns]``;
- ``tokens``: a successful request has ``output_tokens ≥ 1`` and one token time per output token (``exact``:
  in-process runners) or per streamed chunk, never more than its tokens (server runners); a failed one has
  ``output_tokens`` null and an error text;
- ``passes``: per request, Σ n_i over its passes = prompt + output − 1 − the tokens it found cached, and it
  samples in exactly ``output_tokens`` passes (runners that see engine steps);
- ``facts``: ``engine_info()`` and ``facts`` are JSON, ``close()`` may be called twice.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from capbench.errors import CapbenchError
from capbench.records import RunStatus, RunWriter, read_run
from capbench.run.harness import drive
from capbench.workload import Workload


@dataclass
class Served:
    """One drive's outcome: the records as read back, the run's status and error, what the runner raised."""

    requests: list[dict[str, Any]]
    passes: list[dict[str, Any]]
    status: str
    error: str | None
    raised: BaseException | None
    warmup: int
    measured: int
    done: list[dict[str, Any]] = field(default_factory=list)


def serve(runner: Any, workload: Workload, run_dir: Path, on_done: Any = None) -> Served:
    """Drive ``runner`` through the real harness into ``run_dir`` and read the directory back."""
    manifest = {"schema_version": 1, "run_id": run_dir.name, "status": "running", "spec": {}}
    warmup, measured = len(workload.warmup), workload.num_requests or 0
    done: list[dict[str, Any]] = []
    raised: BaseException | None = None

    def record_done(record: dict[str, Any]) -> None:
        done.append(record)
        if on_done is not None:
            on_done(record, len(done))

    try:
        with RunWriter(run_dir, manifest) as writer:
            drive(runner, workload, writer, record_done)
    except (CapbenchError, RuntimeError) as exc:
        raised = exc
    try:
        run = read_run(run_dir)
        passes = list(run.iter_passes()) if run.has_passes else []
    except CapbenchError as exc:  # the reader's own checks (types, ranges, time order) are part of the contract
        raise AssertionError(f"the records do not read back: {exc}") from exc
    return Served(
        run.requests, passes, run.manifest["status"], run.manifest.get("error"), raised, warmup, measured, done
    )


def check_ids(served: Served) -> None:
    ids = [r["id"] for r in served.requests]
    assert len(ids) == len(set(ids)), f"duplicate request ids: {ids}"
    warm = sorted(r["id"] for r in served.requests if r["warmup"])
    assert warm == [f"w{i:04d}" for i in range(served.warmup)], f"warm-up ids {warm}"
    measured = sorted(r["id"] for r in served.requests if not r["warmup"])
    assert measured == [f"r{i:04d}" for i in range(served.measured)], f"measured ids {measured}"


def check_timestamps(served: Served) -> None:
    for r in served.requests:
        first, done, submit = r["t_first_token_ns"], r["t_done_ns"], r["t_submit_ns"]
        assert isinstance(submit, int) and isinstance(done, int), r["id"]
        assert submit <= done, f"{r['id']}: done {done} before submit {submit}"
        if first is not None:
            assert submit <= first <= done, f"{r['id']}: first token {first} outside [{submit}, {done}]"
        times = r["token_times_ns"]
        assert times == sorted(times), f"{r['id']}: token times run backwards"
        if times:
            assert first == times[0] and times[-1] <= done, f"{r['id']}: token times outside its first/done"


def check_tokens(served: Served, *, exact: bool) -> None:
    for r in served.requests:
        if r["error"] is not None:
            assert isinstance(r["error"], str) and r["error"], r["id"]
            assert r["output_tokens"] is None, f"{r['id']}: a failed request reports output tokens"
            continue
        output, times = r["output_tokens"], r["token_times_ns"]
        assert isinstance(output, int) and output >= 1, f"{r['id']}: output_tokens {output!r}"
        assert r["finish_reason"] is not None, f"{r['id']}: no finish_reason"
        if exact:
            assert len(times) == output, f"{r['id']}: {len(times)} token times for {output} output tokens"
        else:
            assert 1 <= len(times) <= output, f"{r['id']}: {len(times)} chunk times for {output} output tokens"


def check_passes(served: Served) -> None:
    assert served.passes, "no pass records"
    computed: dict[str, int] = defaultdict(int)
    first_cached: dict[str, int] = {}
    sampled: dict[str, int] = defaultdict(int)
    for p in served.passes:
        assert p["t_start_ns"] < p["t_end_ns"], "a pass ends before it starts"
        assert len(p["reqs"]) == len(p["req_ids"]) and 0 <= p["sampled"] <= len(p["reqs"])
        for rid, (n, c) in zip(p["req_ids"], p["reqs"], strict=True):
            computed[rid] += n
            first_cached.setdefault(rid, c)
        for rid in p.get("sampled_ids") or (p["req_ids"] if p["sampled"] == len(p["reqs"]) else []):
            sampled[rid] += 1
    for r in served.requests:
        if r["error"] is not None:
            continue
        rid = r["id"]
        expected = r["prompt_tokens"] + r["output_tokens"] - 1 - first_cached.get(rid, 0)
        assert computed[rid] == expected, f"{rid}: Σ n_i = {computed[rid]}, expected {expected}"
        assert sampled[rid] == r["output_tokens"], (
            f"{rid}: sampled in {sampled[rid]} passes, {r['output_tokens']} tokens"
        )


def check_errors_recorded(served: Served) -> None:
    assert served.raised is None, f"the runner raised instead of recording: {served.raised!r}"
    assert any(r["error"] for r in served.requests), "no request failed: the fault did not reach the records"
    assert served.status == RunStatus.COMPLETE.value


def check_partial(served: Served, *, at_least: int) -> None:
    assert served.raised is not None, "the backend died but the runner did not say so"
    assert served.status == RunStatus.PARTIAL.value, f"status {served.status}"
    assert served.error, "a partial run must say why"
    finished = [r for r in served.requests if not r["warmup"] and r["error"] is None]
    assert len(finished) >= at_least, f"only {len(finished)} finished requests were kept"


def check_facts(runner: Any) -> None:
    json.dumps(runner.engine_info())
    json.dumps(runner.facts)
    runner.close()
    runner.close()  # idempotent
