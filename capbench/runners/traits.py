"""What the rest of capbench asks about a runner, answered by the runner, never by comparing its name.

Each registered runner (:data:`capbench.runners.REGISTRY`) carries one :class:`RunnerTraits` object: whether its
requests go to a server, whether it launches one, whether the model computes on this machine, the load pattern it
applies, the GPUs a sweep point occupies, whether it can change the served model (a top-k override), and the
settings that only it uses. The ``spec`` argument is a :class:`capbench.config.RunSpec` (duck-typed here, so this
module stays below the config it helps validate). Standard library only.
"""

from __future__ import annotations

from typing import Any

VLLM_LAUNCH_FIELDS: tuple[str, ...] = ("engine_args", "enforce_eager", "vllm_python")
"""Settings that only matter when capbench launches the vLLM server."""
SERVER_FIELDS: tuple[str, ...] = ("base_url", "model_path", "request_rate")
"""Settings that only server runners use."""


class RunnerTraits:
    """The defaults: an in-process runner (no server) that computes here."""

    name = ""
    server = False
    """Requests go over HTTP to an OpenAI-compatible server (client-side timing, a load generator)."""

    def launches_server(self, spec: Any) -> bool:
        """capbench starts (and stops) the server this run talks to."""
        return False

    def computes_locally(self, spec: Any) -> bool:
        """The model computes on this machine (so its hardware is the run's hardware)."""
        return not self.server or self.launches_server(spec)

    def load_pattern(self, spec: Any) -> str:
        """``run.json`` ``load.pattern``: ``static_batches``, ``closed_loop``, ``open_loop`` or ``trace_replay``."""
        if not self.server:
            return "static_batches"
        if getattr(spec, "trace", None) is not None:
            return "trace_replay"
        return "open_loop" if spec.request_rate is not None else "closed_loop"

    def changes_model(self, spec: Any) -> bool:
        """The run can change the served model (a top-k override): only when capbench loads it."""
        return not self.server

    def gpus_needed(self, spec: Any, *, gpus_available: bool) -> int:
        """GPUs a sweep point occupies while it runs (what a Ray task asks for): 0 on a cluster without GPUs
        or with ``device: cpu``, 1 for a model computed in process (always 1 with ``device: cuda``)."""
        if spec.device == "cuda":
            return 1
        return 1 if gpus_available and spec.device != "cpu" else 0

    def problems(self, spec: Any) -> list[str]:
        """Settings this runner needs but lacks, or was given but does not use (one message each)."""
        out = []
        if not self.server:
            given = [k for k in SERVER_FIELDS if getattr(spec, k) is not None]
            if given:
                out.append(f"{', '.join(given)}: not used by runner '{self.name}' (server runners only)")
            if getattr(spec, "multi_turn", False):
                out.append(
                    f"multi_turn: runner '{self.name}' serves static batches, not sessions that wait for each answer; "
                    "run conversations with runner openai or vllm"
                )
            if getattr(spec, "trace", None) is not None:
                out.append(
                    f"trace: runner '{self.name}' serves static batches and cannot send requests at recorded times; "
                    "replay a trace with runner openai or vllm"
                )
        return out


def _set_non_default(spec: Any, fields: tuple[str, ...]) -> list[str]:
    """The ``fields`` the spec was given at a value other than their default."""
    return [k for k in fields if k in spec.model_fields_set and getattr(spec, k) != type(spec).model_fields[k].default]


class HFTraits(RunnerTraits):
    name = "hf"

    def problems(self, spec: Any) -> list[str]:
        out = super().problems(spec)
        given = _set_non_default(spec, (*VLLM_LAUNCH_FIELDS, "record_steps"))
        if given:
            out.append(f"{', '.join(given)}: only used by runner 'vllm'")
        return out


class OpenAITraits(RunnerTraits):
    name = "openai"
    server = True

    def changes_model(self, spec: Any) -> bool:
        return False

    def gpus_needed(self, spec: Any, *, gpus_available: bool) -> int:
        return 0  # the server computes elsewhere

    def problems(self, spec: Any) -> list[str]:
        out = super().problems(spec)
        if not spec.base_url:
            out.append(f"runner '{self.name}' needs base_url (e.g. --base-url http://127.0.0.1:8000)")
        given = _set_non_default(spec, (*VLLM_LAUNCH_FIELDS, "record_steps"))
        if given:
            out.append(f"{', '.join(given)}: only used by runner 'vllm'")
        return out


class VLLMTraits(RunnerTraits):
    name = "vllm"
    server = True

    def launches_server(self, spec: Any) -> bool:
        return spec.base_url is None

    def changes_model(self, spec: Any) -> bool:
        return self.launches_server(spec)

    def gpus_needed(self, spec: Any, *, gpus_available: bool) -> int:
        """A launched engine on a GPU cluster: tensor × pipeline × data parallel sizes from ``engine_args``; an
        attached server or a CPU point: 0."""
        if not self.launches_server(spec) or not gpus_available or spec.device == "cpu":
            return 0
        args = {k.replace("-", "_"): v for k, v in spec.engine_args.items()}
        world = 1
        for key in ("tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size"):
            world *= int(args.get(key, 1) or 1)
        return world

    def problems(self, spec: Any) -> list[str]:
        out = super().problems(spec)
        if not spec.base_url and not spec.model:
            out.append("runner 'vllm' needs model (to launch a server for it) or base_url (to attach to a running one)")
        if spec.base_url:
            given = [k for k in VLLM_LAUNCH_FIELDS if k in spec.model_fields_set and getattr(spec, k)]
            if given:
                out.append(f"{', '.join(given)}: only used when capbench launches the server, not with base_url")
        return out


__all__ = ["SERVER_FIELDS", "VLLM_LAUNCH_FIELDS", "HFTraits", "OpenAITraits", "RunnerTraits", "VLLMTraits"]
