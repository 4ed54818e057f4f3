"""The ``openai`` runner: streaming requests to an OpenAI-compatible server under a controlled load.

Requests go to ``/v1/completions`` (``api: completions``) or ``/v1/chat/completions`` (``api: chat``) with
``stream: true`` and ``stream_options.include_usage: true``; the load generator (:mod:`capbench.loadgen`)
times them on the run's monotonic clock. Token counts come from the server's ``usage``; only when the server
sends none are they counted with the model's tokenizer (``model_path``), and ``run.json`` says which
(``token_counts``: ``server_usage``, ``tokenizer_fallback``, ``mixed`` or ``unavailable``). A request the
server never reported and no tokenizer can count has ``output_tokens: null`` (not measured), never 0.

Log-likelihood requests (an accuracy task scored by log-probabilities) are not streamed: the prompt's
log-probabilities come back in one completions answer (:mod:`capbench.runners.openai.likelihood`); a server that
does not return them is refused before the run (:meth:`OpenAIRunner.check_prompt_logprobs`).

No engine steps are visible from outside the server, so this runner writes no ``passes.jsonl``.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from capbench.errors import CapbenchError
from capbench.records.schema import RequestRecord, request_record
from capbench.records.sink import RecordSink
from capbench.records.validate import is_count
from capbench.runners.openai.config import LoadSettings, OpenAIConfig
from capbench.runners.openai.server_info import context_length, model_list, server_version
from capbench.runners.openai.tokens import TokenCounter, check_usage, load_tokenizer
from capbench.workload import Request, Workload

PATHS = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}


def load_model_config(model_path: str | None) -> dict[str, Any] | None:
    """``config.json`` of the served model from a directory or a file path; None when not given."""
    if model_path is None:
        return None
    path = Path(model_path)
    config = path / "config.json" if path.is_dir() else path
    try:
        return dict(json.loads(config.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError) as exc:
        raise CapbenchError(f"model_path {model_path!r}: cannot read a config.json ({exc})") from exc


def _pattern(load: LoadSettings, workload: Workload | None = None) -> Any:
    """The load pattern of ``load`` (``workload`` fills the request count or duration, and a trace's schedule;
    without it a trace is validated with an empty schedule)."""
    from capbench.loadgen import LoadPattern

    offsets: tuple[int, ...] | None = None
    if load.trace:
        offsets = tuple(workload.offsets_ns or ()) if workload else ()
    try:
        return LoadPattern(
            concurrency=load.concurrency,
            request_rate=load.request_rate,
            arrival=load.arrival,
            burstiness=load.burstiness,
            num_requests=workload.num_requests if workload else load.num_requests,
            duration_s=workload.duration_s if workload else load.duration_s,
            warmup=len(workload.warmup) if workload else load.warmup,
            seed=load.seed,
            timeout_s=load.timeout_s,
            arrival_offsets_ns=offsets,
        )
    except ValueError as exc:
        raise CapbenchError(f"invalid load pattern: {exc}") from exc


def _client_fields(result: Any) -> dict[str, Any]:
    """What the load generator measured of one request (:class:`capbench.loadgen.RequestResult`), as record
    fields: its id, warm-up flag, client timestamps and how the response ended."""
    return {
        "id": result.id,
        "warmup": result.warmup,
        "t_scheduled_ns": result.t_scheduled_ns,
        "t_submit_ns": result.t_submit_ns,
        "t_sent_ns": result.t_sent_ns,
        "t_first_byte_ns": result.t_first_byte_ns,
        "t_done_ns": result.t_done_ns,
        "chunks": result.chunks,
        "stream_done": result.stream_done,
        "http_status": result.http_status,
        "finish_reason": result.finish_reason,
    }


def request_seed(seed: int, request: Request) -> int:
    """A distinct, reproducible sampling seed per request: run seed + ordinal (+ 10⁶ for warm-up)."""
    ordinal = int(request.id[1:])
    return seed + ordinal + (1_000_000 if request.warmup else 0)


class OpenAIRunner:
    """Drives an OpenAI-compatible server with capbench's load generator.

    ``facts`` holds what the run learned for ``run.json`` (the load report, where token counts came from);
    it is filled also when the load ends abnormally (a dead server), so a partial run keeps it.
    """

    name = "openai"

    def __init__(self, config: OpenAIConfig | Any, model_dir: Path | None, run_dir: Path | None = None) -> None:
        """``config``: this runner's settings (:class:`OpenAIConfig`), or a whole run spec they are taken from."""
        self.config = config if isinstance(config, OpenAIConfig) else OpenAIConfig.from_spec(config)
        config = self.config
        if config.base_url is None:
            raise CapbenchError("the openai runner needs base_url (e.g. --base-url http://127.0.0.1:8000)")
        self.base_url: str = config.base_url
        _pattern(config.load)  # validate the load settings before any work
        api_key = os.environ.get(config.api_key_env) if config.api_key_env else None
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        entries = model_list(self.base_url, self.headers)  # also fails fast when the server is unreachable
        models = [str(entry["id"]) for entry in entries]
        if config.model is not None and config.model not in models:
            raise CapbenchError(f"the server at {self.base_url} does not serve {config.model!r}; it serves: {models}")
        if config.model is None and not models:
            raise CapbenchError(f"the server at {self.base_url} lists no model")
        self.model_name = config.model or models[0]
        self.server_models = models
        self.server_context_length = context_length(entries[models.index(self.model_name)])
        self.version = server_version(self.base_url, self.headers)
        self.model_config_data = load_model_config(config.model_path)
        tokenizer, self.tokenizer_unavailable = load_tokenizer(config.model_path)
        self.tokenizer = tokenizer
        self.counter = TokenCounter(tokenizer, chat=config.api == "chat")
        self.facts: dict[str, Any] = {}
        self.on_measured_start: Callable[[], None] | None = None
        """Called once between the warm-up and the measured requests (the vllm runner scrapes /metrics)."""

    # --- run.json facts ----------------------------------------------------------------------------------

    def model_config(self) -> dict[str, Any] | None:
        return self.model_config_data

    def context_length(self) -> int | None:
        """The served model's context in tokens: the server's ``max_model_len`` when it states one, else the
        config's ``max_position_embeddings`` (``model_path``), else None (unknown)."""
        if self.server_context_length is not None:
            return self.server_context_length
        from capbench.arch.context import config_context_length

        return config_context_length(self.model_config_data) if self.model_config_data else None

    def engine_info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "base_url": self.base_url,
            "api": self.config.api,
            "api_key_sent": bool(self.headers),
            "served_model": self.model_name,
            "server_models": self.server_models,
            "device": "server",
            # Settings of the engine behind the URL are not visible from the client: unknown, not assumed.
            "tensor_parallel_size": None,
            "pipeline_parallel_size": None,
            "data_parallel_size": None,
            "expert_parallel_size": None,
            "kv_cache_dtype": None,
            "quantization": None,
            "tokenizer_fallback": None if self.tokenizer_unavailable else self.config.model_path,
            "tokenizer_unavailable_reason": self.tokenizer_unavailable,
        }

    def dtypes(self) -> dict[str, str] | None:
        if self.model_config_data is None:
            return None
        from capbench.arch.dtypes import dtypes_from_config
        from capbench.models.checkpoint import stored_group_dtypes

        model_dir = Path(self.config.model_path) if self.config.model_path else None
        return dtypes_from_config(self.model_config_data, stored=stored_group_dtypes(model_dir))

    def close(self) -> None:
        pass

    # --- requests ----------------------------------------------------------------------------------------

    def check_prompt_logprobs(self) -> None:
        """Refuse (before the run) a server that does not return a prompt's log-probabilities, which log-likelihood
        requests need (:func:`~capbench.runners.openai.likelihood.probe_prompt_logprobs`)."""
        from capbench.runners.openai.likelihood import probe_prompt_logprobs

        ids = list(self.tokenizer("Question: 1 + 1 =", add_special_tokens=False)["input_ids"]) if self.tokenizer else []
        why = probe_prompt_logprobs(self.base_url, self.headers, self.model_name, ids if len(ids) >= 2 else [0, 1])
        if why is not None:
            raise CapbenchError(
                f"the server at {self.base_url} does not return prompt log-probabilities, which log-likelihood tasks "
                f"need: a completions request with echo and logprobs got {why}"
            )

    def request_body(self, request: Request) -> bytes:
        """The JSON body of one request: streaming for generation (a sampling seed only when sampling, distinct
        per request); for a log-likelihood request the prompt's log-probabilities, not streamed
        (:mod:`capbench.runners.openai.likelihood`)."""
        if request.likelihood is not None:
            from capbench.runners.openai.likelihood import likelihood_body

            return orjson.dumps(likelihood_body(self.model_name, request.likelihood))
        body: dict[str, Any] = {
            "model": self.model_name,
            "max_tokens": request.max_tokens or self.config.max_tokens,
            "temperature": self.config.temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.config.temperature > 0:
            body["seed"] = request_seed(self.config.seed, request)
        if self.config.api == "chat":
            body["messages"] = request.messages
        elif request.prompt.as_token_ids and request.prompt.token_ids is not None:
            body["prompt"] = list(request.prompt.token_ids)  # exactly these tokens, no special tokens added
        else:
            body["prompt"] = request.prompt.text
        if request.stop:
            body["stop"] = list(request.stop)
        if self.config.ignore_eos:
            body["ignore_eos"] = True  # a vLLM/SGLang extension; other servers ignore unknown fields or reject
        return orjson.dumps(body)

    def _http_specs(self, requests: Iterator[Request]) -> Iterator[Any]:
        from capbench.loadgen import HttpRequestSpec

        for request in requests:
            # a log-likelihood body is a completions request whatever the run's api
            path = PATHS["completions" if request.likelihood is not None else self.config.api]
            yield HttpRequestSpec(id=request.id, warmup=request.warmup, path=path, body=self.request_body(request))

    def _likelihood_record(self, result: Any, request: Request) -> RequestRecord:
        """The record of a log-likelihood request: its prompt's scored continuation (``continuation_logprob``,
        ``is_greedy``), the server's token counts (checked like any usage), and no first token (nothing is
        streamed)."""
        from capbench.runners.openai.likelihood import prompt_scores

        assert request.likelihood is not None
        prompt_ids = request.likelihood.token_ids
        error = result.error
        if error is None and result.usage is not None:
            error = check_usage(
                result.usage,
                max_tokens=1,
                text="",
                stop=None,
                prompt="",
                context_length=self.context_length(),
                prompt_token_ids=len(prompt_ids),
            )
        scores: dict[str, Any] = {}
        if error is None:
            try:
                logprob, greedy = prompt_scores(
                    result.logprobs, len(prompt_ids), len(request.likelihood.continuation_ids)
                )
                scores = {"continuation_logprob": logprob, "is_greedy": greedy}
            except ValueError as exc:
                error = f"no prompt log-probabilities: {exc}"
        usage = result.usage or {}
        reported, output = usage.get("prompt_tokens"), usage.get("completion_tokens")
        return request_record(
            **_client_fields(result),
            prompt_id=request.prompt.id,
            prompt_tokens=reported if is_count(reported) else len(prompt_ids),
            output_tokens=output if error is None and is_count(output) else None,
            t_first_token_ns=None,
            token_times_ns=[],
            error=error,
            output_text="",
            **request.record_fields,
            continuation_tokens=len(request.likelihood.continuation_ids),
            **scores,
        )

    def _record(self, result: Any, request: Request | None) -> RequestRecord:
        """The ``requests.jsonl`` line of one finished request."""
        if request is not None and request.likelihood is not None:
            return self._likelihood_record(result, request)
        prompt = request.prompt if request else None
        messages = request.messages if request is not None and request.session is not None else None
        # the whole prompt: a multi-turn request's is every message of its conversation so far
        prompt_text = "\n".join(m["content"] for m in messages) if messages else (prompt.text if prompt else "")
        text = result.output_text + (result.reasoning_text or "")
        prompt_tokens: int | None = None
        output_tokens: int | None = None
        error = result.error
        if error is None and result.usage is not None:
            error = check_usage(
                result.usage,
                max_tokens=(request.max_tokens if request else None) or self.config.max_tokens,
                text=text,
                stop=request.stop if request else None,
                prompt=prompt_text,
                context_length=self.context_length(),
                prompt_token_ids=len(prompt.token_ids) if prompt and prompt.as_token_ids and prompt.token_ids else None,
            )
        if error is None:
            prompt_tokens, output_tokens = self.counter.count(
                messages or prompt_text, result.usage, text, result.finish_reason, measured=not result.warmup
            )
            if prompt is not None and prompt.as_token_ids and prompt.token_ids is not None:
                # an id prompt is exactly its ids: the server's count when it gave one, else the ids sent
                reported = (result.usage or {}).get("prompt_tokens")
                prompt_tokens = reported if is_count(reported) else len(prompt.token_ids)
        elif result.usage and is_count(result.usage.get("prompt_tokens")):
            prompt_tokens = result.usage.get("prompt_tokens")
        return request_record(
            **_client_fields(result),
            prompt_id=prompt.id if prompt else None,
            prompt_tokens=prompt_tokens,
            output_tokens=output_tokens,
            t_first_token_ns=result.t_first_token_ns,
            token_times_ns=result.token_times_ns,
            error=error,
            output_text=result.output_text,
            reasoning_text=result.reasoning_text or None,
            **(request.record_fields if request is not None else {}),
        )

    def execute(self, workload: Workload, sink: RecordSink) -> None:
        """Run the warm-up, then the measured load; each request's record is written as it ends."""
        from capbench.loadgen import ServerUnavailable, run_load

        pending: dict[str, Request] = {}
        sessions = workload.sessions

        def remember(requests: Iterator[Request]) -> Iterator[Request]:
            for request in requests:
                pending[request.id] = request
                yield request

        def on_result(result: Any) -> None:
            keep = sessions is not None and not result.warmup  # follow_up needs it, and pops it
            request = pending.get(result.id) if keep else pending.pop(result.id, None)
            sink.on_request(self._record(result, request))

        def follow_up(result: Any) -> tuple[Any, float] | None:
            """The next turn of the finished request's session (its answer as the server streamed it)."""
            assert sessions is not None
            request = pending.pop(result.id, None)
            if request is None or result.warmup:
                return None
            nxt = sessions.next_turn(request, result.output_text if result.error is None else None)
            if nxt is None:
                return None
            spec = next(self._http_specs(remember(iter((nxt,)))))
            return spec, sessions.think_time_s

        warmup = list(self._http_specs(remember(iter(workload.warmup))))
        measured = self._http_specs(remember(workload.measured))
        coroutine = run_load(
            self.base_url,
            warmup,
            measured,
            _pattern(self.config.load, workload),
            on_result,
            headers=self.headers,
            on_measured_start=self.on_measured_start,
            follow_up=follow_up if sessions is not None else None,
        )
        try:
            report = asyncio.run(coroutine)
        except ServerUnavailable as exc:
            self.facts = {"client": exc.report.as_dict(), "token_counts": self.counter.summary()}
            raise CapbenchError(f"the server became unavailable during the run: {exc}") from exc
        self.facts = {"client": report.as_dict(), "token_counts": self.counter.summary()}
