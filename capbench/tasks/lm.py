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

``loglikelihood`` requests (multiple choice by log-probabilities) and ``loglikelihood_rolling`` requests
(perplexity) are served the same way as prompt-only requests (:mod:`capbench.tasks.likelihood`): lm-eval's own
tokenization of each context/continuation pair (the model's tokenizer, no special tokens added), the token ids
sent to the runner, and each record's ``continuation_logprob`` and ``is_greedy`` returned to lm-eval.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model

from capbench.errors import CapbenchError
from capbench.tasks.extract import strip_reasoning
from capbench.tasks.likelihood import likelihood_request, likelihood_results, max_prompt_tokens, rolling_windows
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
class CapbenchLM(TemplateLM):
    """An lm-eval model whose generations and log-likelihoods come from a capbench run (see the module docstring).

    ``tokenizer``: the served model's tokenizer, needed by log-likelihood tasks only (lm-eval tokenizes their
    context/continuation pairs with it); ``context_length``: the model's context in tokens (None: unknown), which
    bounds a log-likelihood prompt (:func:`~capbench.tasks.likelihood.max_prompt_tokens`).
    """

    def __init__(
        self,
        serve: Serve,
        *,
        warmup: int,
        max_tokens: int | None,
        default_max_tokens: int,
        tokenizer: Any = None,
        context_length: int | None = None,
    ) -> None:
        super().__init__()
        self._serve = serve
        self._warmup = warmup
        self._max_tokens = max_tokens
        self._default_max_tokens = default_max_tokens
        self.tokenizer = tokenizer
        self._context_length = context_length
        self._instances: list[Any] = []
        self.served_batches = 0

    # --- tokenization (log-likelihood tasks) -----------------------------------------------------------------

    def _tokenizer(self) -> Any:
        if self.tokenizer is None:
            raise CapbenchError("a log-likelihood task needs the served model's tokenizer, and this run has none")
        return self.tokenizer

    @property
    def eot_token_id(self) -> int:
        tokenizer = self._tokenizer()
        eos = tokenizer.eos_token_id
        if eos is None:
            raise CapbenchError("the model's tokenizer has no end-of-sequence token to condition an empty context on")
        return int(eos)

    @property
    def prefix_token_id(self) -> int:
        """The token an empty context is conditioned on: BOS when the tokenizer has one, else EOS (as lm-eval's
        own models choose)."""
        bos = self._tokenizer().bos_token_id
        return int(bos) if bos is not None else self.eot_token_id

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs: Any) -> list[int]:
        """The model's token ids of ``string``, special tokens added only when asked for."""
        return list(self._tokenizer()(string, add_special_tokens=bool(add_special_tokens))["input_ids"])

    # --- serving ---------------------------------------------------------------------------------------------

    def _serve_batch(self, batch: list[Request]) -> dict[str, dict[str, Any]]:
        if self.served_batches:
            raise CapbenchError("lm-eval asked for a second batch of requests; a capbench run serves one")
        self.served_batches += 1
        workload = Workload(
            warmup=warmup_requests(batch, self._warmup),
            measured=iter(batch),
            num_requests=len(batch),
            duration_s=None,
        )
        return self._serve(workload)

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        batch = build_requests(requests, max_tokens=self._max_tokens, default_max_tokens=self._default_max_tokens)
        return outputs_for_lm_eval(batch, self._serve_batch(batch))

    def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """lm-eval's tokenization of every pair (``TemplateLM.loglikelihood``), then one request per pair."""
        self._instances = list(requests)
        return super().loglikelihood(requests, disable_tqdm=True)

    def _loglikelihood_tokens(
        self, requests: list[tuple[tuple[str, str], list[int], list[int]]], **kwargs: Any
    ) -> list[tuple[float, bool]]:
        limit = max_prompt_tokens(self._context_length)
        batch = [
            likelihood_request(
                index,
                "loglikelihood",
                context_ids,
                continuation_ids,
                sample_id(instance.task_name, instance.doc_id),
                limit,
            )
            for index, (instance, (_, context_ids, continuation_ids)) in enumerate(
                zip(self._instances, requests, strict=True)
            )
        ]
        return likelihood_results(batch, self._serve_batch(batch))

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        """One request per rolling window of each text; a text's log-likelihood is the sum over its windows."""
        limit = max_prompt_tokens(self._context_length)
        batch: list[Request] = []
        owner: list[int] = []
        for position, instance in enumerate(requests):
            text = instance.args[0]
            sid = sample_id(instance.task_name, instance.doc_id)
            for context_ids, continuation_ids in rolling_windows(self.tok_encode(text), self.prefix_token_id, limit):
                batch.append(
                    likelihood_request(len(batch), "loglikelihood_rolling", context_ids, continuation_ids, sid, limit)
                )
                owner.append(position)
        totals = [0.0] * len(requests)
        for position, (logprob, _) in zip(owner, likelihood_results(batch, self._serve_batch(batch)), strict=True):
            totals[position] += logprob
        return totals
