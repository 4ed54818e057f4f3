"""What the ``vllm`` runner reads of a run's settings (light: importable anywhere, no vLLM)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from capbench.runners.openai.config import OpenAIConfig


@dataclass(frozen=True)
class VLLMConfig:
    """A launched (``base_url`` None) or attached vLLM server's settings, and the client that drives it."""

    base_url: str | None
    model: str | None
    model_path: str | None
    dtype: str | None
    """Passed as ``--dtype`` only when the run gave one (vLLM otherwise picks its own)."""
    enforce_eager: bool
    engine_args: dict[str, Any] = field(default_factory=dict)
    gpus: list[int] | None = None
    top_k: int | None = None
    record_steps: bool = True
    record_experts: bool = True
    vllm_python: str | None = None
    server_start_timeout_s: float = 900.0
    metrics_interval_s: float = 5.0
    client: OpenAIConfig | None = None
    """The client's settings; ``base_url`` filled in once a launched server is up."""

    @property
    def launches(self) -> bool:
        return self.base_url is None

    @classmethod
    def from_spec(cls, spec: Any) -> VLLMConfig:
        return cls(
            base_url=spec.base_url,
            model=spec.model,
            model_path=spec.model_path,
            dtype=spec.dtype if "dtype" in spec.model_fields_set else None,
            enforce_eager=spec.enforce_eager,
            engine_args=dict(spec.engine_args),
            gpus=list(spec.gpus) if spec.gpus is not None else None,
            top_k=spec.top_k,
            record_steps=spec.record_steps,
            record_experts=spec.record_experts,
            vllm_python=spec.vllm_python,
            server_start_timeout_s=spec.server_start_timeout_s,
            metrics_interval_s=spec.metrics_interval_s,
            client=OpenAIConfig.from_spec(spec),
        )
