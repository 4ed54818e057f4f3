"""The ``hf`` runner: serve requests in-process with transformers, one recorded forward pass at a time.

Batching is static: requests are served ``concurrency`` at a time (the batch size); they are left-padded into one
prefill pass, then decoded together, a request leaving the batch (its KV-cache rows dropped) as soon as it
samples its end-of-sequence token or its ``max_tokens``-th token. Every forward pass is one ``passes.jsonl``
record: for each request in it ``[n_i, c_i]`` (tokens computed now, tokens already in its KV cache), the number
of requests that sampled, and the measured expert activation per MoE layer (padding positions excluded).

Log-likelihood requests (``Request.likelihood``: an accuracy task scored by log-probabilities) are served in a
prompt-only pass of their own: no token is generated, the continuation's log-probabilities are read from the
pass's logits (:mod:`capbench.runners.hf.likelihood`).

A request's own ``max_tokens`` and ``stop`` strings (an accuracy task's ``max_gen_toks`` and ``until``) override
the run's: the request finishes (``finish_reason: stop``) as soon as its decoded output contains a stop string, and
its ``output_text`` ends before that string. Prompts with ``token_ids`` (fixed-length mode) are used as those ids.
``top_k`` (the run's override) sets every router's experts per token before the first request.

Timing: a pass runs from just before the forward call to the moment the sampled token ids are on the host
(``.tolist()``, which also waits for a GPU), so the pass latency includes sampling. Every request of a batch
is submitted when the batch starts; its first token arrives at the end of the prefill pass.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import transformers

from capbench.arch.context import config_context_length, context_problem
from capbench.clock import now_ns
from capbench.errors import CapbenchError
from capbench.records.schema import RequestRecord, pass_record, request_record
from capbench.records.sink import RecordSink
from capbench.runners.hf.config import HFConfig
from capbench.runners.hf.experts import ExpertRecorder, set_router_top_k
from capbench.workload import Likelihood, Request, Workload

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class _Slot:
    """A request while it is in the batch."""

    request: Request
    prompt_ids: list[int]
    t_submit_ns: int
    generated: list[int] = field(default_factory=list)
    token_times_ns: list[int] = field(default_factory=list)
    finish_reason: str | None = None
    stopped_text: str | None = None  # the output up to (excluding) the stop string that ended it

    @property
    def cached_tokens(self) -> int:
        """Tokens in this request's KV cache before the next decode pass: prompt + generated − 1."""
        return len(self.prompt_ids) + len(self.generated) - 1


def _first_line(exc: BaseException) -> str:
    """An exception as one short line (library errors can span pages)."""
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= 300 else line[:300] + "..."


def resolve_device(requested: str) -> str:
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise CapbenchError("device 'cuda' was asked for, but torch sees no CUDA device; use --device cpu")
    return requested


class HFRunner:
    """In-process transformers backend with static batching and per-pass records."""

    name = "hf"

    def __init__(self, config: HFConfig | Any, model_dir: Path, run_dir: Path | None = None) -> None:
        """``config``: this runner's settings (:class:`HFConfig`), or a whole run spec they are taken from."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        self.config = config if isinstance(config, HFConfig) else HFConfig.from_spec(config)
        config = self.config
        self.facts: dict[str, Any] = {}  # nothing beyond the records: engine facts are in engine_info()
        self.batch_size = config.batch_size
        self.model_dir = Path(model_dir)
        self.device = resolve_device(config.device)
        self.torch_dtype = _DTYPES[config.dtype]
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CapbenchError(f"cannot load the tokenizer of {self.model_dir}: {_first_line(exc)}") from exc
        try:
            model: Any = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=self.torch_dtype)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise CapbenchError(f"cannot load the model in {self.model_dir}: {_first_line(exc)}") from exc
        self.model = model.to(self.device).eval()
        # transformers >= 5.2x names the KV cache argument `cache` (`past_key_values` is deprecated, with a warning
        # on every forward); older 5.x releases only know `past_key_values`.
        forward_params = inspect.signature(self.model.forward).parameters
        self._cache_argument = "cache" if "cache" in forward_params else "past_key_values"
        self.recorder = ExpertRecorder(self.model) if config.record_experts else None
        if config.top_k is not None:
            set_router_top_k(self.model, config.top_k)
        self._model_config = self.model_config()
        self.eos_ids = self._eos_ids()
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else min(self.eos_ids, default=0))
        self._generator = torch.Generator(device=self.device).manual_seed(config.seed)

    def _eos_ids(self) -> set[int]:
        ids = self.model.generation_config.eos_token_id
        if ids is None:
            ids = self.tokenizer.eos_token_id
        if ids is None:
            return set()
        return {int(i) for i in (ids if isinstance(ids, list) else [ids])}

    def model_config(self) -> dict[str, Any]:
        """The model's ``config.json`` content as written on disk."""
        import json

        return dict(json.loads((self.model_dir / "config.json").read_text(encoding="utf-8")))

    def engine_info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": transformers.__version__,
            "torch_version": torch.__version__,
            "device": self.device,
            "torch_num_threads": torch.get_num_threads(),
            "batching": "static",
            "max_batch_size": self.batch_size,
            "tensor_parallel_size": 1,
            "pipeline_parallel_size": 1,
            "data_parallel_size": 1,
            "expert_parallel_size": 1,
            "chunked_prefill": False,
            "prefix_caching": False,
            "kv_cache_dtype": self.config.dtype,
            "expert_recording": "router_forward_hooks" if self.recorder is not None else "off",
            "quantization": None,
            "compiled": False,
            "attn_implementation": getattr(self.model.config, "_attn_implementation", None),
        }

    def context_length(self) -> int | None:
        """The model's context in tokens (its config's ``max_position_embeddings``), or None."""
        return config_context_length(self._model_config)

    def dtypes(self) -> dict[str, str]:
        """The dtypes the passes really read and compute in: the run's ``dtype`` for activations, the KV cache and
        the GEMMs, and each weight group's dtype as loaded (transformers keeps some modules, e.g. DeepSeek's
        routers, in float32 whatever dtype the model is loaded in; ``router`` then appears)."""
        from capbench.arch.dtypes import dtypes_from_config
        from capbench.models.checkpoint import loaded_group_dtypes

        config = {**self.model_config(), "dtype": self.config.dtype}
        config.pop("torch_dtype", None)
        return dtypes_from_config(config, stored=loaded_group_dtypes(self.model.named_parameters()))

    def close(self) -> None:
        if self.recorder is not None:
            self.recorder.close()

    def execute(self, workload: Workload, sink: RecordSink) -> None:
        """Serve the warm-up requests, then measured ones in static batches of ``concurrency``.

        In duration mode no new batch starts once ``duration_s`` has passed since the first measured batch
        (the batch running at that moment finishes).
        """
        size = self.batch_size
        for start in range(0, len(workload.warmup), size):
            self.serve(workload.warmup[start : start + size], sink)
        deadline = None if workload.duration_s is None else now_ns() + int(workload.duration_s * 1e9)
        while deadline is None or now_ns() < deadline:
            batch = list(itertools.islice(workload.measured, size))
            if not batch:
                break
            self.serve(batch, sink)

    # --- serving -------------------------------------------------------------------------------------------

    def _sample(self, logits: torch.Tensor) -> torch.Tensor:
        if self.config.temperature == 0.0:
            return logits.argmax(dim=-1)
        probs = torch.softmax(logits.float() / self.config.temperature, dim=-1)
        return torch.multinomial(probs, 1, generator=self._generator).squeeze(-1)

    def _forward(
        self, input_ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: Any
    ) -> torch.Tensor:
        kwargs = {self._cache_argument: cache}
        out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=True, **kwargs)
        return self._sample(out.logits[:, -1, :])

    def _prompt_ids(self, request: Request) -> list[int]:
        if request.prompt.token_ids is not None:
            return list(request.prompt.token_ids)
        return list(self.tokenizer(request.prompt.text, add_special_tokens=False)["input_ids"])

    def _finish(self, slot: _Slot, token: int) -> str | None:
        """Why ``slot`` ends after sampling ``token`` (``stop``, ``length``), or None while it goes on."""
        if token in self.eos_ids and not self.config.ignore_eos:
            return "stop"
        if slot.request.stop:
            text = str(self.tokenizer.decode(slot.generated, skip_special_tokens=True))
            cuts = [i for i in (text.find(s) for s in slot.request.stop if s) if i >= 0]
            if cuts:
                slot.stopped_text = text[: min(cuts)]
                return "stop"
        limit = slot.request.max_tokens or self.config.max_tokens
        return "length" if len(slot.generated) >= limit else None

    def _left_padded(self, prompts: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(ids, attention mask, position ids)`` of ``prompts`` left-padded to the longest, on the device: every
        row ends at the last column, and positions count from each prompt's first real token."""
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            ids[row, width - len(prompt) :] = torch.tensor(list(prompt))
            mask[row, width - len(prompt) :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        return ids, mask, (mask.cumsum(-1) - 1).clamp(min=0)

    def serve(self, batch: Sequence[Request], sink: RecordSink) -> None:
        """Serve one static batch to completion, emitting pass and request records as they happen (log-likelihood
        requests in one prompt-only pass of their own, :meth:`score`)."""
        scoring = [r for r in batch if r.likelihood is not None]
        if scoring:
            self.score(scoring, sink)
        generating = [r for r in batch if r.likelihood is None]
        if generating:
            self.generate(generating, sink)

    def score(self, batch: Sequence[Request], sink: RecordSink) -> None:
        """Log-likelihood requests: one forward pass over their left-padded prompts (context + continuation), no
        KV cache kept, the continuation's log-probabilities read from its logits
        (:func:`~capbench.runners.hf.likelihood.continuation_scores`). The pass is a prefill pass with the
        measured experts of every prompt token; ``sampled`` counts each request once (its logits are computed)."""
        from capbench.runners.hf.likelihood import continuation_scores

        t_submit = now_ns()
        served: list[tuple[Request, Likelihood]] = []
        for request in batch:
            query = request.likelihood
            assert query is not None
            problem = context_problem(len(query.token_ids), 0, self.context_length())
            if problem is not None:
                sink.on_request(self._refused_record(request, list(query.token_ids), t_submit, problem))
                continue
            served.append((request, query))
        if not served:
            return
        prompts = [query.token_ids for _, query in served]
        continuations = [query.continuation_ids for _, query in served]
        ids, mask, positions = self._left_padded(prompts)
        kept = max(len(c) for c in continuations) + 1
        with torch.inference_mode():
            if self.recorder is not None:
                self.recorder.begin_pass()
            t_start = now_ns()
            out = self.model(
                input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False, logits_to_keep=kept
            )
            scores = continuation_scores(out.logits[:, -kept:, :], continuations)
            t_end = now_ns()
            experts_active: list[int] | None = None
            expert_tokens: list[list[int]] | None = None
            if self.recorder is not None:
                experts_active, expert_tokens = self.recorder.end_pass(mask.reshape(-1).bool())
        sink.on_pass(
            pass_record(
                t_start_ns=t_start,
                t_end_ns=t_end,
                reqs=[[len(p), 0] for p in prompts],
                req_ids=[r.id for r, _ in served],
                sampled=len(served),
                experts_active=experts_active,
                expert_tokens=expert_tokens,
                warmup=all(r.warmup for r, _ in served),
            )
        )
        for (request, query), (logprob, greedy) in zip(served, scores, strict=True):
            sink.on_request(self._likelihood_record(request, query, t_submit, t_end, logprob, greedy))

    def generate(self, batch: Sequence[Request], sink: RecordSink) -> None:
        """Generation requests: a prefill pass, then decode passes until every request has finished."""
        from transformers import DynamicCache

        t_submit = now_ns()
        slots = []
        for request in batch:
            prompt_ids = self._prompt_ids(request)
            limit = request.max_tokens or self.config.max_tokens
            problem = context_problem(len(prompt_ids), limit, self.context_length())
            if problem is not None:  # never computed: an error record, no pass
                sink.on_request(self._refused_record(request, prompt_ids, t_submit, problem))
                continue
            slots.append(_Slot(request, prompt_ids, t_submit))
        if not slots:
            return
        ids, mask, positions = self._left_padded([s.prompt_ids for s in slots])
        cache = DynamicCache(config=self.model.config)
        reqs = [[len(s.prompt_ids), 0] for s in slots]
        with torch.inference_mode():
            next_ids = self._timed_pass(ids, mask, positions, cache, slots, reqs, mask.reshape(-1).bool(), sink)
            active = list(range(len(slots)))
            while True:
                keep = [i for i, slot_index in enumerate(active) if slots[slot_index].finish_reason is None]
                if not keep:
                    break
                if len(keep) < len(active):
                    keep_t = torch.tensor(keep, device=self.device)
                    cache.batch_select_indices(keep_t)
                    mask, positions, next_ids = mask[keep_t], positions[keep_t], next_ids[keep_t]
                    active = [active[i] for i in keep]
                ids = next_ids.unsqueeze(-1)
                mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=-1)
                positions = positions[:, -1:] + 1
                cur = [slots[i] for i in active]
                reqs = [[1, s.cached_tokens] for s in cur]
                next_ids = self._timed_pass(ids, mask, positions, cache, cur, reqs, None, sink)

    def _timed_pass(
        self,
        ids: torch.Tensor,
        mask: torch.Tensor,
        positions: torch.Tensor,
        cache: Any,
        slots: Sequence[_Slot],
        reqs: list[list[int]],
        valid: torch.Tensor | None,
        sink: RecordSink,
    ) -> torch.Tensor:
        if self.recorder is not None:
            self.recorder.begin_pass()
        t_start = now_ns()
        next_ids = self._forward(ids, mask, positions, cache)
        tokens = next_ids.tolist()
        t_end = now_ns()
        experts_active: list[int] | None = None
        expert_tokens: list[list[int]] | None = None
        if self.recorder is not None:
            experts_active, expert_tokens = self.recorder.end_pass(valid)
        sink.on_pass(
            pass_record(
                t_start_ns=t_start,
                t_end_ns=t_end,
                reqs=reqs,
                req_ids=[s.request.id for s in slots],
                sampled=len(slots),
                experts_active=experts_active,
                expert_tokens=expert_tokens,
                warmup=all(s.request.warmup for s in slots),
            )
        )
        for slot, token in zip(slots, tokens, strict=True):
            slot.generated.append(int(token))
            slot.token_times_ns.append(t_end)
            slot.finish_reason = self._finish(slot, int(token))
            if slot.finish_reason is not None:
                sink.on_request(self._request_record(slot))
        return next_ids

    def _likelihood_record(
        self, request: Request, query: Likelihood, t_submit: int, t_done: int, logprob: float, greedy: bool
    ) -> RequestRecord:
        """A served log-likelihood request: no token generated (``output_tokens`` 0, no first token), its
        continuation's log-probability and whether it was the greedy continuation."""
        return request_record(
            id=request.id,
            warmup=request.warmup,
            prompt_id=request.prompt.id,
            prompt_tokens=len(query.token_ids),
            output_tokens=0,
            t_submit_ns=t_submit,
            t_first_token_ns=None,
            t_done_ns=t_done,
            token_times_ns=[],
            error=None,
            finish_reason=None,
            output_text="",
            **request.record_fields,
            continuation_tokens=len(query.continuation_ids),
            continuation_logprob=logprob,
            is_greedy=greedy,
        )

    def _refused_record(self, request: Request, prompt_ids: list[int], t_submit: int, error: str) -> RequestRecord:
        """The record of a request that was not served (it does not fit in the model's context)."""
        return request_record(
            id=request.id,
            warmup=request.warmup,
            prompt_id=request.prompt.id,
            prompt_tokens=len(prompt_ids),
            output_tokens=None,
            t_submit_ns=t_submit,
            t_first_token_ns=None,
            t_done_ns=now_ns(),
            token_times_ns=[],
            error=error,
            finish_reason=None,
            output_text="",
            **request.record_fields,
        )

    def _request_record(self, slot: _Slot) -> RequestRecord:
        ended_by_eos = slot.finish_reason == "stop" and slot.stopped_text is None
        text_ids = slot.generated[:-1] if ended_by_eos else slot.generated
        text = slot.stopped_text
        if text is None:
            text = str(self.tokenizer.decode(text_ids, skip_special_tokens=True))
        return request_record(
            id=slot.request.id,
            warmup=slot.request.warmup,
            prompt_id=slot.request.prompt.id,
            prompt_tokens=len(slot.prompt_ids),
            output_tokens=len(slot.generated),
            t_submit_ns=slot.t_submit_ns,
            t_first_token_ns=slot.token_times_ns[0],
            t_done_ns=slot.token_times_ns[-1],
            token_times_ns=slot.token_times_ns,
            error=None,
            finish_reason=slot.finish_reason,
            output_text=text,
            output_token_ids=slot.generated,
            **slot.request.record_fields,
        )
