"""The ``openai`` runner: streaming requests to an OpenAI-compatible server under a controlled load.

Requests go to ``/v1/completions`` (``api: completions``) or ``/v1/chat/completions`` (``api: chat``) with
``stream: true`` and ``stream_options.include_usage: true``; the load generator (:mod:`capbench.loadgen`)
times them on the run's monotonic clock. Token counts come from the server's ``usage``; only when the server
sends none are they counted with the model's tokenizer (``model_path``), and ``run.json`` says which
(``token_counts``: ``server_usage``, ``tokenizer_fallback``, ``mixed`` or ``unavailable``). A request the
server never reported and no tokenizer can count has ``output_tokens: null`` (not measured), never 0.

No engine steps are visible from outside the server, so this runner writes no ``passes.jsonl``.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from capbench.config import RunSpec
from capbench.errors import CapbenchError
from capbench.harness import RecordSink
from capbench.runners.openai.server_info import served_models, server_version
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


class OpenAIRunner:
    """Drives an OpenAI-compatible server with capbench's load generator."""

    name = "openai"

    def __init__(self, spec: RunSpec, model_dir: Path | None) -> None:
        assert spec.base_url is not None  # RunSpec validation guarantees it for this runner
        self.spec = spec
        self.base_url = spec.base_url.rstrip("/")
        models = served_models(self.base_url)  # also fails fast when the server is unreachable
        if spec.model is not None and spec.model not in models:
            raise CapbenchError(f"the server at {self.base_url} does not serve {spec.model!r}; it serves: {models}")
        if spec.model is None and not models:
            raise CapbenchError(f"the server at {self.base_url} lists no model")
        self.model_name = spec.model or models[0]
        self.server_models = models
        self.version = server_version(self.base_url)
        self.config = load_model_config(spec.model_path)
        self._tokenizer: Any = None
        self._count_sources: Counter[str] = Counter()

    # --- run.json facts ----------------------------------------------------------------------------------

    def model_config(self) -> dict[str, Any] | None:
        return self.config

    def engine_info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "base_url": self.base_url,
            "api": self.spec.api,
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
        }

    def dtypes(self) -> dict[str, str] | None:
        if self.config is None:
            return None
        from capbench.metrics.dtypes import dtypes_from_config

        return dtypes_from_config(self.config)

    def close(self) -> None:
        pass

    # --- requests ----------------------------------------------------------------------------------------

    def request_body(self, request: Request) -> bytes:
        """The JSON body of one streaming request."""
        body: dict[str, Any] = {
            "model": self.model_name,
            "max_tokens": self.spec.max_tokens,
            "temperature": self.spec.temperature,
            "seed": self.spec.seed,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.spec.api == "chat":
            body["messages"] = [{"role": "user", "content": request.prompt.text}]
        else:
            body["prompt"] = request.prompt.text
        if self.spec.ignore_eos:
            body["ignore_eos"] = True  # a vLLM/SGLang extension; other servers ignore unknown fields or reject
        return json.dumps(body).encode()

    def _http_specs(self, requests: Iterator[Request]) -> Iterator[Any]:
        from capbench.loadgen import HttpRequestSpec

        path = PATHS[self.spec.api]
        for request in requests:
            yield HttpRequestSpec(id=request.id, warmup=request.warmup, path=path, body=self.request_body(request))

    def _tokenizer_or_none(self) -> Any:
        if self._tokenizer is None and self.spec.model_path is not None:
            from transformers import AutoTokenizer

            path = Path(self.spec.model_path)
            self._tokenizer = AutoTokenizer.from_pretrained(path if path.is_dir() else path.parent)
        return self._tokenizer

    def _count_tokens(self, prompt: str, usage: dict[str, Any] | None, output_text: str) -> tuple[Any, Any]:
        if usage and usage.get("completion_tokens") is not None:
            self._count_sources["server_usage"] += 1
            return usage.get("prompt_tokens"), usage.get("completion_tokens")
        tokenizer = self._tokenizer_or_none()
        if tokenizer is None:
            self._count_sources["unavailable"] += 1
            return None, None
        self._count_sources["tokenizer_fallback"] += 1
        if self.spec.api == "chat" and getattr(tokenizer, "chat_template", None):
            prompt_ids = tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], add_generation_prompt=True
            )
        else:
            prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
        return len(prompt_ids), len(tokenizer(output_text, add_special_tokens=False)["input_ids"])

    def token_counts_source(self) -> str:
        """How token counts were obtained over the run."""
        sources = [s for s, n in self._count_sources.items() if n]
        if not sources:
            return "unavailable"
        return sources[0] if len(sources) == 1 else "mixed"

    def execute(self, workload: Workload, sink: RecordSink) -> dict[str, Any]:
        """Run the warm-up, then the measured load; each request's record is written as it ends."""
        from capbench.loadgen import LoadPattern, ServerUnavailable, run_load

        prompts: dict[str, str] = {}

        def remember(requests: Iterator[Request]) -> Iterator[Request]:
            for request in requests:
                prompts[request.id] = request.prompt.text
                yield request

        def on_result(result: Any) -> None:
            prompt = prompts.pop(result.id, "")
            prompt_tokens, output_tokens = self._count_tokens(prompt, result.usage, result.output_text)
            sink.on_request(
                {
                    "id": result.id,
                    "warmup": result.warmup,
                    "prompt_tokens": prompt_tokens,
                    "output_tokens": output_tokens if result.error is None else None,
                    "t_submit_ns": result.t_submit_ns,
                    "t_first_token_ns": result.t_first_token_ns,
                    "t_done_ns": result.t_done_ns,
                    "token_times_ns": result.token_times_ns,
                    "chunks": result.chunks,
                    "error": result.error,
                    "http_status": result.http_status,
                    "finish_reason": result.finish_reason,
                    "output_text": result.output_text,
                }
            )

        pattern = LoadPattern(
            concurrency=self.spec.effective_concurrency,
            request_rate=self.spec.request_rate,
            arrival=self.spec.arrival,
            burstiness=self.spec.burstiness,
            num_requests=workload.num_requests,
            duration_s=workload.duration_s,
            warmup=len(workload.warmup),
            seed=self.spec.seed,
            timeout_s=self.spec.timeout_s,
        )
        warmup = list(self._http_specs(remember(iter(workload.warmup))))
        measured = self._http_specs(remember(workload.measured))
        try:
            report = asyncio.run(run_load(self.base_url, warmup, measured, pattern, on_result))
        except ServerUnavailable as exc:
            raise CapbenchError(f"the server became unavailable during the run: {exc}") from exc
        return {"client": report.as_dict(), "token_counts": self.token_counts_source()}
