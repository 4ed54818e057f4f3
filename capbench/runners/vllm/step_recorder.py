"""Engine-step records written from inside vLLM: one ``passes.jsonl`` line per engine step.

Free of vLLM and torch, so it is unit-tested on its own; :mod:`.adapter` feeds it from the model runner.
A step is opened with the requests the scheduler gave it (``[n_i, c_i]`` each), the routers report the
expert ids they chose while it runs, and it is closed with the requests that sampled a token. Each record
is one ``os.write`` of a whole line to a file opened with ``O_APPEND``, so data-parallel replicas (separate
processes) can share the file without interleaving. With the writer thread (:class:`StepRecorder`), a hard
crash loses the steps still queued (a few ms), a normal exit drains them.

Request ids: vLLM's internal id embeds the ``X-Request-Id`` header capbench sends (``r0003`` becomes e.g.
``cmpl-r0003-0-1a2b3c4d``); :func:`capbench_request_id` recovers it. Ids of traffic that is not capbench's
are kept as vLLM wrote them.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from capbench.varints import encode_varints

Counts = list[list[int]]
ExpertTokens = Counts | Callable[[], "Counts | tuple[Counts | None, str | None]"] | None
"""Expert counts of a step as :meth:`StepRecorder.finish` takes them."""

_CAPBENCH_ID = re.compile(r"(?<![A-Za-z0-9])([wr]\d{4,})(?![A-Za-z0-9])")


def capbench_request_id(engine_request_id: str) -> str:
    """The capbench id (``w0000``/``r0000``) inside a vLLM request id, else the vLLM id unchanged."""
    match = _CAPBENCH_ID.search(engine_request_id)
    return match.group(1) if match else engine_request_id


def is_warmup_id(request_id: str) -> bool:
    """capbench's warm-up requests are ``w0000``, ``w0001``, ..."""
    return bool(_CAPBENCH_ID.fullmatch(request_id)) and request_id.startswith("w")


@dataclass
class OpenStep:
    """A step between its start and its end."""

    t_start_ns: int
    req_ids: list[str]
    reqs: list[list[int]]
    num_tokens: int
    engine_ids: list[str] = field(default_factory=list)


class AppendOnlyLines:
    """A JSONL file written one whole line per ``os.write`` (``O_APPEND``: safe across processes)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, record: dict[str, Any]) -> None:
        data = memoryview((json.dumps(record, separators=(",", ":")) + "\n").encode())
        while data:  # a regular file takes it in one write; loop in case a signal cut it short
            data = data[os.write(self._fd, data) :]

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class StepRecorder:
    """Builds and writes the pass record of each engine step of one data-parallel replica.

    Record fields (docs/records.md ``passes.jsonl``, schema 3: the integer lists as base64 varint strings,
    :mod:`capbench.varints`): ``t_start_ns``/``t_end_ns`` (``time.monotonic_ns``, the clock of the whole run),
    ``reqs_b64`` (``[n_i, c_i]``: tokens computed in this step, tokens already in the request's KV cache before
    it, prefix-cache hits included), ``req_ids``, ``sampled`` (how many requests sampled a token) and
    ``sampled_ids`` (which), ``experts_active_b64`` and ``expert_tokens_b64`` (per MoE layer, the second layer
    after layer; null when routing was not observed), ``routing_error`` (why a step's
    routing was not measured although the counter ran: the self-check failed; else null), ``warmup`` (every
    request a warm-up one), plus ``step`` (this replica's step counter) and ``dp_rank``.

    With ``writer_thread``, records are finished on a writer thread (expert counts given as a function are
    counted there; then encode, write), so the engine's step loop only queues them; the thread writes records in
    step order, each as soon as it is taken, and is drained at interpreter exit. A hard crash of the process
    then loses the steps still queued (a few ms of them) instead of only the one in progress.
    """

    def __init__(self, out: AppendOnlyLines, dp_rank: int = 0, writer_thread: bool = False) -> None:
        self.out = out
        self.dp_rank = dp_rank
        self.step = 0
        self.current: OpenStep | None = None
        self._ids: dict[str, tuple[str, bool]] = {}  # vLLM id -> (capbench id, warm-up): one regex per request
        self._queue: queue.SimpleQueue[Any] | None = None
        self._thread: threading.Thread | None = None
        if writer_thread:
            self._queue = queue.SimpleQueue()
            self._thread = threading.Thread(target=self._drain, name="capbench-step-writer", daemon=True)
            self._thread.start()
            atexit.register(self.close)

    def _id(self, engine_id: str) -> tuple[str, bool]:
        known = self._ids.get(engine_id)
        if known is None:
            if len(self._ids) > 100_000:  # a long run: forget finished requests
                self._ids.clear()
            rid = capbench_request_id(engine_id)
            known = self._ids[engine_id] = (rid, is_warmup_id(rid))
        return known

    def begin(self, scheduled: Sequence[tuple[str, int, int]], t_start_ns: int | None = None) -> OpenStep | None:
        """Open a step: ``scheduled`` is ``(vllm request id, n_i, c_i)`` per request. None when it computes nothing."""
        self.current = None
        scheduled = [s for s in scheduled if s[1] > 0]
        if not scheduled:
            return None
        self.current = OpenStep(
            t_start_ns=time.monotonic_ns() if t_start_ns is None else t_start_ns,
            req_ids=[self._id(rid)[0] for rid, _, _ in scheduled],
            reqs=[[int(n), int(c)] for _, n, c in scheduled],
            num_tokens=sum(int(n) for _, n, _ in scheduled),
            engine_ids=[rid for rid, _, _ in scheduled],
        )
        return self.current

    def finish(
        self,
        sampled_engine_ids: Sequence[str],
        expert_tokens: ExpertTokens,
        t_end_ns: int | None = None,
    ) -> dict[str, Any] | None:
        """Close the open step and write (or queue) its record.

        ``expert_tokens``: per MoE layer, per expert; or a function called on the writer thread that returns
        them, or ``(None, reason)`` when the step's routing failed its self-check (``routing_error``); or None
        (routing not recorded: ``experts_active_b64`` and ``expert_tokens_b64`` null, ``routing_error`` null).
        """
        step = self.current
        self.current = None
        if step is None:
            return None
        t_end = time.monotonic_ns() if t_end_ns is None else t_end_ns
        record = {
            "step": self.step,
            "dp_rank": self.dp_rank,
            "t_start_ns": step.t_start_ns,
            "t_end_ns": t_end,
            "reqs_b64": None,  # step.reqs, encoded by _write (on the writer thread when there is one)
            "req_ids": step.req_ids,
            "sampled": len(sampled_engine_ids),
            "sampled_ids": [self._id(rid)[0] for rid in sampled_engine_ids],
            "experts_active_b64": None,
            "expert_tokens_b64": None,
            "routing_error": None,
            "warmup": all(self._id(rid)[1] for rid in step.engine_ids),
        }
        self.step += 1
        if self._queue is not None:  # every record through the queue: the file stays in step order
            self._queue.put((record, step.reqs, expert_tokens))
        else:
            self._write(record, step.reqs, expert_tokens)
        return record

    def _write(self, record: dict[str, Any], reqs: list[list[int]], expert_tokens: ExpertTokens) -> None:
        result = expert_tokens() if callable(expert_tokens) else expert_tokens
        tokens, reason = result if isinstance(result, tuple) else (result, None)
        record["reqs_b64"] = encode_varints(reqs)
        if tokens is not None:
            try:
                active, counts = [sum(1 for n in layer if n > 0) for layer in tokens], encode_varints(tokens)
            except ValueError as exc:  # layers with different expert counts: not one table (docs/records.md)
                reason = f"expert counts not written: {exc}"
            else:
                record["experts_active_b64"], record["expert_tokens_b64"] = encode_varints(active), counts
        record["routing_error"] = reason
        self.out.write(record)

    def _drain(self) -> None:
        assert self._queue is not None
        while (item := self._queue.get()) is not None:
            self._write(*item)

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is queued and stop the writer thread (also run at interpreter exit)."""
        if self._thread is not None and self._queue is not None:
            self._queue.put(None)
            self._thread.join(timeout_s)
            self._thread = None

    def abort(self) -> None:
        """Drop the open step (the engine raised while running it)."""
        self.current = None
