"""Everything that depends on vLLM's internals, in one place, checked by capability before it hooks anything.

:func:`install` first checks, in vLLM's own source, every symbol this module uses (:mod:`.compat`): a vLLM that
lacks one is refused with :class:`UnsupportedVLLMVersionError` naming it (the server then fails at start-up
with that message, and ``capbench run`` checks the same before launching); one that has them all but is not a
tested version runs, and the engine file says ``adapter_status: compatible_untested``.

What it hooks, all in the worker process that runs the model (``GPUModelRunner``, which the CPU model runner
subclasses), when that process imports the model-runner module (:class:`_PatchAfterImport`; the API server
and the engine core never import it on capbench's account):

- ``load_model``: binds the routing counter (:mod:`.routing`) to every fused-MoE router right after the model
  is built, before vLLM compiles it or captures CUDA graphs, and writes ``vllm/engine-dp<R>.json``: the
  settings vLLM resolved, the model config it loaded, the versions of this process's packages.
- ``execute_model(scheduler_output)``: opens a step with ``[n_i, c_i]`` per scheduled request, from
  ``scheduler_output.num_scheduled_tokens`` and the ``num_computed_tokens`` of the new and cached requests
  (prefix-cache hits included), and sets the routing counter's real token count. After the forward pass, the
  requests that will sample are those the runner does not discard (``discard_request_mask``: a partial
  prefill chunk samples nothing).
- ``sample_tokens(...)``: closes the step (its end timestamp), hands the step's expert counts to the writer
  thread and zeroes them. When ``execute_model`` returns an output itself (nothing to sample, or a non-last
  pipeline stage), the step closes there.
- Routing (not under pipeline or data parallelism, nor with kernels that route inside themselves, see
  :func:`routing_blocker`) is counted by a custom op on persistent device buffers, so it is measured in eager,
  ``torch.compile`` and CUDA-graph modes alike; each step is self-checked (every layer's counts add up to
  top_k × the step's tokens) and a step that fails the check has ``experts_active_b64: null`` and its reason.

Exactly one record per engine step: only the first tensor-parallel rank of the first pipeline stage records,
tagged with its data-parallel rank (each data-parallel replica has its own scheduler and steps).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from capbench.paths import replace_text
from capbench.runners.vllm.step_recorder import AppendOnlyLines, StepRecorder

ENV_FAULT = "CAPBENCH_VLLM_FAULT"
"""Fault injection for tests: ``unbind_routers`` binds the counter, then removes it from every router before vLLM
compiles the model, which is what a stale compile artifact made without the recorder looks like to a recorded
run; every step then fails the routing self-check."""

RECORDER_VERSION = 2
"""What the recorder puts into a compiled graph (:mod:`.routing`); part of the compile-cache key (docs/vllm.md)."""

PASSES_FILE = "passes.jsonl"
ENGINE_DIR = "vllm"

_installed = False


class UnsupportedVLLMVersionError(RuntimeError):
    """The installed vLLM lacks something this adapter uses (:mod:`.compat`)."""


def check_installed_vllm() -> dict[str, Any]:
    """Classify the installed vLLM (:func:`.compat.check_installed`); raise when it is refused."""
    from capbench.runners.vllm.compat import check_installed, refusal_message

    result = check_installed()
    if result["status"] != "tested" and result["status"] != "compatible_untested":
        raise UnsupportedVLLMVersionError(refusal_message(result["version"], result["problems"]))
    return result


def engine_settings(vllm_config: Any) -> dict[str, Any]:
    """The engine settings vLLM resolved (what it really runs with, not what was asked for)."""
    import vllm

    par = vllm_config.parallel_config
    sched = vllm_config.scheduler_config
    cache = vllm_config.cache_config
    model = vllm_config.model_config
    comp = vllm_config.compilation_config
    eager = bool(getattr(model, "enforce_eager", False))
    mode = getattr(comp, "mode", None)
    return {
        "version": vllm.__version__,
        "tensor_parallel_size": par.tensor_parallel_size,
        "pipeline_parallel_size": par.pipeline_parallel_size,
        "data_parallel_size": par.data_parallel_size,
        "expert_parallel": bool(getattr(par, "enable_expert_parallel", False)),
        "expert_parallel_size": None,
        "max_num_batched_tokens": sched.max_num_batched_tokens,
        "max_num_seqs": sched.max_num_seqs,
        "max_model_len": model.max_model_len,
        "chunked_prefill": bool(sched.enable_chunked_prefill),
        "async_scheduling": bool(getattr(sched, "async_scheduling", False)),
        "prefix_caching": bool(cache.enable_prefix_caching),
        "kv_cache_dtype": str(cache.cache_dtype),
        "block_size": cache.block_size,
        "dtype": str(model.dtype).removeprefix("torch."),
        "quantization": model.quantization,
        "enforce_eager": eager,
        "compilation_mode": None if mode is None else str(getattr(mode, "name", mode)),
        "cudagraph_mode": str(getattr(comp, "cudagraph_mode", None)),
        "compiled": not eager and mode is not None and str(getattr(mode, "name", mode)) != "NONE",
        "device": str(vllm_config.device_config.device_type),
    }


def loaded_model_config(vllm_config: Any) -> dict[str, Any]:
    """The model configuration vLLM really loaded: its Hugging Face config as a dict (``hf_overrides`` such as a
    top-k override already applied), the quantization config, and the overrides themselves."""
    model = vllm_config.model_config
    hf_config = getattr(model, "hf_config", None)
    config: dict[str, Any] | None = None
    if hf_config is not None and hasattr(hf_config, "to_dict"):
        config = json.loads(json.dumps(hf_config.to_dict(), default=str))
    overrides = getattr(model, "hf_overrides", None)
    return {
        "model": str(getattr(model, "model", "")) or None,
        "config": config,
        "quantization": getattr(model, "quantization", None),
        "hf_overrides": overrides if isinstance(overrides, dict) else None,
    }


def _layer_index(name: str) -> int:
    numbers = re.findall(r"\.(\d+)\.", f".{name}.")
    return int(numbers[0]) if numbers else -1


def moe_routers(model: Any) -> list[tuple[str, Any]]:
    """``(layer name, router)`` of every fused-MoE layer, in layer order."""
    from vllm.model_executor.layers.fused_moe.runner.moe_runner import MoERunner

    found = []
    for name, module in model.named_modules():
        router = getattr(module, "router", None)
        if isinstance(module, MoERunner) and hasattr(router, "set_capture_fn"):
            found.append((getattr(module, "layer_name", name), router))
    return sorted(found, key=lambda item: _layer_index(item[0]))


def max_step_tokens(vllm_config: Any) -> int:
    """The most token rows a router sees in one forward: the scheduler's token budget, or a larger CUDA-graph
    capture size (padded batches)."""
    budget = int(getattr(vllm_config.scheduler_config, "max_num_batched_tokens", 0) or 0)
    comp = vllm_config.compilation_config
    capture = [int(s) for s in (getattr(comp, "cudagraph_capture_sizes", None) or [])]
    largest = int(getattr(comp, "max_cudagraph_capture_size", 0) or 0)
    return max([budget, largest, *capture, 1])


def routing_blocker(vllm_config: Any, model: Any) -> str | None:
    """Why routing cannot be attributed to this replica's steps, or None when it can."""
    par = vllm_config.parallel_config
    if par.pipeline_parallel_size > 1:
        return (
            "pipeline parallelism: the recording rank (first stage) sees only its own MoE layers, so per-layer "
            "counts would not cover the model"
        )
    if par.data_parallel_size > 1:
        return (
            "data parallelism: replicas may gather each other's tokens before routing, so a replica's router "
            "output cannot be attributed to its own step"
        )
    for module in model.modules():
        method = getattr(module, "_quant_method", None)
        if getattr(method, "is_monolithic", False) and hasattr(module, "router"):
            return "the MoE kernel routes inside the kernel (monolithic), so the router callback is never called"
    return None


class _StepState:
    """The recorder attached to one model runner (the recording rank of one data-parallel replica).

    ``routing_observed`` in the engine file: null before the first step, then true (every step so far passed
    the routing self-check), false (none did) or ``"partial"`` (some did); ``routing_unavailable_reason`` says
    why routing is not measured (a blocker) or, once steps failed the check, the last reason. Which steps had
    routing is in ``passes.jsonl`` itself (``experts_active_b64`` null or not, ``routing_error``). The file is
    rewritten when that state changes, from the writer thread (under a lock).
    """

    def __init__(self, runner: Any, record_dir: Path, record_experts: bool, adapter: Mapping[str, Any]) -> None:
        par = runner.vllm_config.parallel_config
        self.dp_rank = int(getattr(par, "data_parallel_rank", 0) or 0)
        self.record_dir = record_dir
        self.recorder = StepRecorder(
            AppendOnlyLines(record_dir / PASSES_FILE), dp_rank=self.dp_rank, writer_thread=True
        )
        self.settings = engine_settings(runner.vllm_config)
        self.loaded = loaded_model_config(runner.vllm_config)
        from capbench.run.versions import run_versions

        self.versions = run_versions()  # this process's environment: the packages that computed the model
        self.adapter = dict(adapter)
        self.routing: Any = None  # a routing.RoutingCounter
        self.routing_reason: str | None = "expert recording was switched off (record_experts: false)"
        self.routing_observed: bool | str | None = None
        self.steps_with_routing = 0
        self.steps_without_routing = 0
        self.moe_layers: list[str] = []
        self.pending_sampled: list[str] = []
        self._file_lock = threading.Lock()
        if record_experts:
            model = runner.get_model()
            routers = moe_routers(model)
            self.moe_layers = [name for name, _ in routers]
            blocker = routing_blocker(runner.vllm_config, model)
            if not routers:
                self.routing_reason = "no fused-MoE router with a capture hook was found in the model"
            elif blocker is not None:
                self.routing_reason = blocker
            else:
                from capbench.runners.vllm.routing import RoutingCounter

                self.routing = RoutingCounter(routers, runner.device, max_step_tokens(runner.vllm_config))
                self.routing_reason = None
                if os.environ.get(ENV_FAULT) == "unbind_routers":  # fault injection for tests (docs/vllm.md)
                    for _, router in routers:
                        router.set_capture_fn(None)
        self.write_engine_file()

    def write_engine_file(self) -> None:
        data = {
            **self.settings,
            "recorder": "capbench vLLM plugin",
            "recorder_version": RECORDER_VERSION,
            "model_runner": "v1",
            "adapter_status": self.adapter.get("status"),
            "adapter_problems": self.adapter.get("problems") or [],
            "versions": self.versions,
            "loaded_model": self.loaded,
            "dp_rank": self.dp_rank,
            "moe_layers": self.moe_layers,
            "routing_counter": None
            if self.routing is None
            else {
                "device": str(self.routing.device),
                "top_k": self.routing.top_k,
                "num_experts": self.routing.num_experts,
            },
            "routing_observed": self.routing_observed,
            "routing_unavailable_reason": self.routing_reason,
            "written_ns": time.monotonic_ns(),
        }
        path = self.record_dir / ENGINE_DIR / f"engine-dp{self.dp_rank}.json"
        with self._file_lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            replace_text(path, json.dumps(data, indent=2))

    def begin(self, scheduler_output: Any) -> None:
        computed: dict[str, int] = {r.req_id: r.num_computed_tokens for r in scheduler_output.scheduled_new_reqs}
        cached = scheduler_output.scheduled_cached_reqs
        computed.update(zip(cached.req_ids, cached.num_computed_tokens, strict=False))
        scheduled = [(rid, n, computed.get(rid, 0)) for rid, n in scheduler_output.num_scheduled_tokens.items()]
        step = self.recorder.begin(scheduled)
        if step is not None and self.routing is not None:
            self.routing.begin(step.num_tokens)

    def sampled(self, runner: Any) -> list[str]:
        """Requests of the step that sample a token (not a partial prefill chunk)."""
        step = self.recorder.current
        if step is None:
            return []
        batch = runner.input_batch
        num_reqs = batch.num_reqs
        discard = runner.discard_request_mask.np[:num_reqs]
        keep = {rid for rid, drop in zip(batch.req_ids[:num_reqs], discard, strict=False) if not drop}
        return [rid for rid in step.engine_ids if rid in keep]

    def finish(self, sampled: list[str]) -> None:
        step = self.recorder.current
        if step is None:
            return
        expert_tokens = None
        if self.routing is not None:
            expert_tokens = partial(self._checked_counts, self.routing.end(step.num_tokens))
        self.recorder.finish(sampled, expert_tokens)

    def _checked_counts(self, snapshot: Any) -> tuple[list[list[int]] | None, str | None]:
        """On the writer thread: read the step's counts, self-check them, keep the routing state."""
        from capbench.runners.expert_counts import check_counts

        routing = self.routing
        tokens, reason = check_counts(
            snapshot.read(), snapshot.tokens, routing.num_experts, routing.top_k, routing.names
        )
        self._count_routing(tokens is not None, reason)
        return tokens, reason

    def _count_routing(self, observed: bool, reason: str | None) -> None:
        if observed:
            self.steps_with_routing += 1
        else:
            self.steps_without_routing += 1
        state: bool | str = (
            "partial" if self.steps_with_routing and self.steps_without_routing else bool(self.steps_with_routing)
        )
        if state != self.routing_observed or (reason is not None and reason != self.routing_reason):
            self.routing_observed = state
            if reason is not None:
                self.routing_reason = reason
            self.write_engine_file()

    def abort(self) -> None:
        if self.routing is not None:
            self.routing.abort()
        self.recorder.abort()


def _records_on_this_rank() -> bool:
    from vllm.distributed.parallel_state import get_pp_group, get_tensor_model_parallel_rank

    return get_tensor_model_parallel_rank() == 0 and bool(get_pp_group().is_first_rank)


GPU_RUNNER_MODULE = "vllm.v1.worker.gpu_model_runner"
CPU_RUNNER_MODULE = "vllm.v1.worker.cpu_model_runner"


class _Recording:
    """What the hooks share in one process: where to write, and the state of each model runner."""

    def __init__(self, record_dir: Path, record_experts: bool, adapter: Mapping[str, Any]) -> None:
        self.record_dir = record_dir
        self.record_experts = record_experts
        self.adapter = adapter
        self.states: dict[int, _StepState | None] = {}

    def state_of(self, runner: Any) -> _StepState | None:
        key = id(runner)
        if key not in self.states:
            recording = _records_on_this_rank()
            self.states[key] = (
                _StepState(runner, self.record_dir, self.record_experts, self.adapter) if recording else None
            )
        return self.states[key]


def _attach_after(load_model: Callable[..., Any], recording: _Recording) -> Callable[..., Any]:
    def load_then_attach(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = load_model(self, *args, **kwargs)
        recording.state_of(self)  # bind the routers and describe the engine before the first request
        return result

    return load_then_attach


def patch_gpu_model_runner(module: Any, recording: _Recording) -> None:
    """Wrap ``GPUModelRunner.execute_model``, ``sample_tokens`` and ``load_model`` (see the module docstring)."""
    runner_cls = module.GPUModelRunner
    execute_model: Callable[..., Any] = runner_cls.execute_model
    sample_tokens: Callable[..., Any] = runner_cls.sample_tokens

    def recorded_execute_model(self: Any, scheduler_output: Any, *args: Any, **kwargs: Any) -> Any:
        state = recording.state_of(self)
        if state is None:
            return execute_model(self, scheduler_output, *args, **kwargs)
        state.begin(scheduler_output)
        try:
            output = execute_model(self, scheduler_output, *args, **kwargs)
            sampled = state.sampled(self)
        except BaseException:
            state.abort()
            raise
        if output is not None:  # no sampling step follows (nothing scheduled, or a non-last pipeline stage)
            state.finish(sampled)
        else:
            state.pending_sampled = sampled
        return output

    def recorded_sample_tokens(self: Any, *args: Any, **kwargs: Any) -> Any:
        output = sample_tokens(self, *args, **kwargs)
        state = recording.states.get(id(self))
        if state is not None:
            state.finish(state.pending_sampled)
            state.pending_sampled = []
        return output

    runner_cls.load_model = _attach_after(runner_cls.load_model, recording)
    runner_cls.execute_model = recorded_execute_model
    runner_cls.sample_tokens = recorded_sample_tokens


def patch_cpu_model_runner(module: Any, recording: _Recording) -> None:
    """``CPUModelRunner.load_model`` replaces the GPU runner's without calling it: wrap it too."""
    runner_cls = module.CPUModelRunner
    if "load_model" in runner_cls.__dict__:
        runner_cls.load_model = _attach_after(runner_cls.__dict__["load_model"], recording)


class _PatchAfterImport(importlib.abc.MetaPathFinder):
    """Runs ``patch(module)`` right after the named module is first imported, in whichever process imports it.

    vLLM loads plugins in every process (API server, engine core, workers); only the processes that run a
    model import the model-runner modules, so only they are touched (importing those modules elsewhere is slow
    and set up torch state in processes that never compute)."""

    def __init__(self, patches: dict[str, Callable[[Any], None]]) -> None:
        self.patches = dict(patches)

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        patch = self.patches.pop(fullname, None)
        if patch is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_then_patch(module: Any) -> None:
            exec_module(module)
            patch(module)

        loader.exec_module = exec_then_patch  # type: ignore[method-assign]
        return spec


def install(record_dir: Path, record_experts: bool = True) -> None:
    """Check that vLLM has everything the hooks use (:mod:`.compat`), then hook the model runner (now if its
    module is loaded, else when it is) so that the recording rank writes ``record_dir/passes.jsonl``.
    Idempotent."""
    global _installed
    if _installed:
        return
    adapter = check_installed_vllm()
    recording = _Recording(record_dir, record_experts, adapter)
    patches: dict[str, Callable[[Any], None]] = {
        GPU_RUNNER_MODULE: partial(patch_gpu_model_runner, recording=recording),
        CPU_RUNNER_MODULE: partial(patch_cpu_model_runner, recording=recording),
    }
    for name in list(patches):
        if name in sys.modules:
            patches.pop(name)(sys.modules[name])
    if patches:
        sys.meta_path.insert(0, _PatchAfterImport(patches))
    _installed = True
