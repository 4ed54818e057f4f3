"""capbench's lm-eval model (registered as ``capbench``): lm-eval's requests served by a capbench runner.

lm-eval builds every ``generate_until`` request of the evaluation (prompt, ``until`` stop strings,
``max_gen_toks``) and hands them over in one call. :class:`CapbenchLM` turns them into capbench requests, one per
lm-eval instance and in lm-eval's order (ids ``r0000``, ...; ``sample_id`` ``<task>/<doc_id>``), with the run's
warm-up requests (``w0000``, ...: copies of the first prompts, never scored) in front. It then serves them through
:func:`capbench.run.harness.drive`, the same path, runner, load pattern and power window as any other run, so each
scored sample has its request record, its engine steps and its expert activation.

What goes back to lm-eval for scoring is each request's output with reasoning stripped
(:func:`~capbench.tasks.extract.strip_reasoning`), the same way for every task; a request that failed (or was
never answered) returns ``""`` in its own position, so it scores 0 without shifting any other sample.

``loglikelihood`` requests (multiple-choice by log-probabilities, perplexity) are refused with a clear error: the
runners generate text and do not return prompt log-probabilities.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

from capbench.errors import CapbenchError
from capbench.tasks.extract import strip_reasoning
from capbench.workload import Prompt, Request, Workload

Serve = Callable[[Workload], dict[str, dict[str, Any]]]
"""Serves a workload and returns each finished measured request's record by request id."""


def sample_id(task_name: str | None, doc_id: int | None) -> str:
    """The id of one task sample in ``requests.jsonl``: ``<task>/<doc_id>``."""
    return f"{task_name}/{doc_id}"


def build_requests(instances: Sequence[Any], *, max_tokens: int | None, default_max_tokens: int) -> list[Request]:
    """One capbench request per lm-eval ``generate_until`` instance, in order.

    ``max_tokens`` (the run's, when given) wins over the task's ``max_gen_toks``; ``default_max_tokens`` applies
    when neither is set. The task's ``until`` strings become the request's stop strings.
    """
    requests = []
    for index, instance in enumerate(instances):
        context, gen_kwargs = instance.args[0], (instance.args[1] if len(instance.args) > 1 else {})
        until = gen_kwargs.get("until") or ()
        stops = (until,) if isinstance(until, str) else tuple(str(s) for s in until)
        limit = max_tokens or gen_kwargs.get("max_gen_toks") or default_max_tokens
        sid = sample_id(instance.task_name, instance.doc_id)
        requests.append(
            Request(
                id=f"r{index:04d}",
                prompt=Prompt(id=sid, text=str(context)),
                warmup=False,
                max_tokens=int(limit),
                stop=stops,
                sample_id=sid,
            )
        )
    return requests


def warmup_requests(requests: Sequence[Request], count: int) -> list[Request]:
    """``count`` warm-up copies of the first requests (ids ``w0000``, ...; no sample id: never scored)."""
    if not requests:
        return []
    return [replace(requests[i % len(requests)], id=f"w{i:04d}", warmup=True, sample_id=None) for i in range(count)]


def outputs_for_lm_eval(requests: Sequence[Request], records: dict[str, dict[str, Any]]) -> list[str]:
    """What lm-eval scores, in request order: the reasoning-stripped output, or ``""`` for a request that failed
    or has no record (so it scores 0 in its own position)."""
    out = []
    for request in requests:
        record = records.get(request.id)
        if record is None or record.get("error") is not None:
            out.append("")
        else:
            out.append(strip_reasoning(str(record.get("output_text") or "")))
    return out


@register_model("capbench")
class CapbenchLM(LM):
    """An lm-eval model whose generations come from a capbench run (see the module docstring)."""

    def __init__(self, serve: Serve, *, warmup: int, max_tokens: int | None, default_max_tokens: int) -> None:
        super().__init__()
        self._serve = serve
        self._warmup = warmup
        self._max_tokens = max_tokens
        self._default_max_tokens = default_max_tokens
        self.served_batches = 0

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        if self.served_batches:
            raise CapbenchError("lm-eval asked for a second batch of generations; a capbench run serves one")
        self.served_batches += 1
        batch = build_requests(requests, max_tokens=self._max_tokens, default_max_tokens=self._default_max_tokens)
        workload = Workload(
            warmup=warmup_requests(batch, self._warmup),
            measured=iter(batch),
            num_requests=len(batch),
            duration_s=None,
        )
        return outputs_for_lm_eval(batch, self._serve(workload))

    def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        raise CapbenchError(
            "this task scores by log-likelihood, which capbench's runners do not return (they generate text); "
            "use a generate_until task (e.g. capbench_multiple_choice, or a *_generative variant)"
        )

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        raise CapbenchError(
            "this task needs rolling log-likelihoods (perplexity), which capbench's runners do not return"
        )
