"""What the ``hf`` runner reads of a run's settings (light: importable anywhere, no torch)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class HFConfig:
    """The in-process transformers runner's settings (from :class:`capbench.config.RunSpec`, :meth:`from_spec`)."""

    dtype: str
    device: str
    batch_size: int
    max_tokens: int
    ignore_eos: bool
    temperature: float
    seed: int
    top_k: int | None
    record_experts: bool

    @classmethod
    def from_spec(cls, spec: Any) -> HFConfig:
        """The fields of a flat run spec this runner uses (the static batch is the run's concurrency)."""
        return cls(
            dtype=spec.dtype,
            device=spec.device,
            batch_size=int(spec.effective_concurrency or 1),
            max_tokens=spec.effective_max_tokens,
            ignore_eos=spec.effective_ignore_eos,
            temperature=spec.temperature,
            seed=spec.seed,
            top_k=spec.top_k,
            record_experts=spec.record_experts,
        )
