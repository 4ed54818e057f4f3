"""What the ``openai`` runner reads of a run's settings (light: importable anywhere)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal


@dataclass(frozen=True)
class LoadSettings:
    """The load the client applies: a closed loop at ``concurrency`` or an open loop at ``request_rate``."""

    concurrency: int | None
    request_rate: float | None
    arrival: Literal["poisson", "gamma", "constant"]
    burstiness: float
    num_requests: int | None
    duration_s: float | None
    warmup: int
    seed: int
    timeout_s: float
    trace: bool = False
    """Trace replay: the workload's own schedule (``Workload.offsets_ns``) replaces concurrency and rate."""


@dataclass(frozen=True)
class OpenAIConfig:
    """An OpenAI-compatible server's client settings (from :class:`capbench.config.RunSpec`, :meth:`from_spec`)."""

    base_url: str | None
    model: str | None
    model_path: str | None
    api: str
    api_key_env: str | None
    max_tokens: int
    ignore_eos: bool
    temperature: float
    seed: int
    load: LoadSettings

    @classmethod
    def from_spec(cls, spec: Any) -> OpenAIConfig:
        return cls(
            base_url=spec.base_url,
            model=spec.model,
            model_path=spec.model_path,
            api=spec.api,
            api_key_env=spec.api_key_env,
            max_tokens=spec.effective_max_tokens,
            ignore_eos=spec.effective_ignore_eos,
            temperature=spec.temperature,
            seed=spec.seed,
            load=LoadSettings(
                concurrency=spec.effective_concurrency,
                request_rate=spec.request_rate,
                arrival=spec.arrival,
                burstiness=spec.burstiness,
                num_requests=spec.effective_num_requests,
                duration_s=spec.duration_s,
                warmup=spec.warmup,
                seed=spec.seed,
                timeout_s=spec.timeout_s,
                trace=spec.trace is not None,
            ),
        )

    def serving(self, base_url: str, model: str, model_path: str | None) -> OpenAIConfig:
        """The same client aimed at a server capbench launched (its URL, the name it serves, its files)."""
        return replace(self, base_url=base_url, model=model, model_path=self.model_path or model_path)
