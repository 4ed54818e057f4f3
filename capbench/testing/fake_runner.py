"""A runner with no model: deterministic records on the run's clock, for tests of everything around a runner.

:class:`FakeRunner` implements the runner protocol (:class:`capbench.run.harness.Runner`) without torch or a
server. Each request is served alone, like a static batch of one: one prefill pass of ``prompt_tokens`` tokens,
then one decode pass per further output token, each pass with measured expert counts from a fixed routing rule
(token ``i`` of layer ``l`` goes to experts ``(i + l) mod E`` and the next ``top_k - 1``), and the request's
record when it ends. Faults on demand: ``fail_every`` (every n-th measured request is an error record, never
raised), ``die_after`` (the backend dies after that many measured requests: :class:`CapbenchError`, as a dead
server does), and a ``defect`` that breaks one contract rule on purpose (the contract suite must catch it).
"""

from __future__ import annotations

import itertools
from typing import Any

from capbench.clock import now_ns
from capbench.errors import CapbenchError
from capbench.records.schema import RequestRecord, pass_record, request_record
from capbench.records.sink import RecordSink
from capbench.workload import Request, Workload

DEFECTS: tuple[str, ...] = ("none", "time_travel", "token_miscount", "lost_request", "raises_on_error", "bad_pass")
"""Contract rules a fake can break on purpose: timestamps that run backwards, an output count that does not match
the token times, a request never reported, an error raised instead of recorded, a pass whose tokens do not add
up to the requests'."""


class FakeRunner:
    """The runner protocol without a model (module docstring)."""

    name = "fake"

    def __init__(
        self,
        *,
        output_tokens: int = 4,
        prompt_tokens: int = 8,
        num_layers: int = 2,
        num_experts: int = 8,
        top_k: int = 2,
        fail_every: int = 0,
        die_after: int | None = None,
        defect: str = "none",
    ) -> None:
        if defect not in DEFECTS:
            raise ValueError(f"unknown defect {defect!r}; known: {', '.join(DEFECTS)}")
        self.output_tokens = output_tokens
        self.prompt_tokens = prompt_tokens
        self.num_layers = num_layers
        self.num_experts = num_experts
        self.top_k = top_k
        self.fail_every = fail_every
        self.die_after = die_after
        self.defect = defect
        self.facts: dict[str, Any] = {}
        self.closed = 0
        self._served = 0

    # --- the protocol's facts ----------------------------------------------------------------------------

    def engine_info(self) -> dict[str, Any]:
        return {"name": self.name, "version": "0", "device": "cpu", "batching": "one request at a time"}

    def model_config(self) -> dict[str, Any] | None:
        return None

    def dtypes(self) -> dict[str, str] | None:
        return None

    def close(self) -> None:
        self.closed += 1

    # --- serving ------------------------------------------------------------------------------------------

    def execute(self, workload: Workload, sink: RecordSink) -> None:
        for request in itertools.chain(workload.warmup, workload.measured):
            if not request.warmup and self.die_after is not None and self._served >= self.die_after:
                raise CapbenchError(f"the fake backend died after {self._served} measured requests")
            self._serve(request, sink)
            if not request.warmup:
                self._served += 1
        self.facts = {"fake": {"served": self._served}}

    def _experts(self, tokens: int, start: int) -> list[list[int]]:
        """Tokens per expert per layer for tokens ``start .. start + tokens - 1`` (the fixed routing rule)."""
        table = [[0] * self.num_experts for _ in range(self.num_layers)]
        for layer in range(self.num_layers):
            for i in range(start, start + tokens):
                for k in range(self.top_k):
                    table[layer][(i + layer + k) % self.num_experts] += 1
        return table

    def _pass(self, sink: RecordSink, request: Request, computed: int, cached: int) -> int:
        t_start = now_ns()
        t_end = max(now_ns(), t_start + 1)
        experts = self._experts(computed, cached)
        if self.defect == "bad_pass":
            computed += 1  # the record claims a token the request never had
        sink.on_pass(
            pass_record(
                t_start_ns=t_start,
                t_end_ns=t_end,
                reqs=[[computed, cached]],
                req_ids=[request.id],
                sampled=1,
                experts_active=[sum(1 for n in layer if n) for layer in experts],
                expert_tokens=experts,
                warmup=request.warmup,
            )
        )
        return t_end

    def _serve(self, request: Request, sink: RecordSink) -> None:
        t_submit = now_ns()
        failing = not request.warmup and self.fail_every > 0 and (int(request.id[1:]) + 1) % self.fail_every == 0
        if failing:
            if self.defect == "raises_on_error":
                raise RuntimeError(f"request {request.id} failed")
            sink.on_request(self._record(request, t_submit, [], error="injected failure"))
            return
        if self.defect == "lost_request" and not request.warmup and request.id == "r0001":
            return
        times = [self._pass(sink, request, self.prompt_tokens, 0)]
        for i in range(1, self.output_tokens):
            times.append(self._pass(sink, request, 1, self.prompt_tokens + i - 1))
        sink.on_request(self._record(request, t_submit, times, error=None))

    def _record(self, request: Request, t_submit: int, times: list[int], error: str | None) -> RequestRecord:
        output = len(times) if error is None else None
        if self.defect == "token_miscount" and output is not None:
            output += 1
        first, done = (times[0], times[-1]) if times else (None, now_ns())
        if self.defect == "time_travel" and first is not None:
            t_submit = done + 1
        return request_record(
            id=request.id,
            warmup=request.warmup,
            prompt_id=request.prompt.id,
            prompt_tokens=self.prompt_tokens if error is None else None,
            output_tokens=output,
            t_submit_ns=t_submit,
            t_first_token_ns=first,
            t_done_ns=done,
            token_times_ns=times,
            error=error,
            finish_reason="length" if error is None else None,
            output_text=" ".join(f"t{i}" for i in range(len(times))),
        )


__all__ = ["DEFECTS", "FakeRunner"]
