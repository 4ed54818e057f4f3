"""What a run serves, decided before anything expensive: the model (a local directory, the demo MoE, or a model id
a launched vLLM resolves), the workload (an accuracy task, fixed-length prompts, or a prompt file), the ``load``
section of ``run.json``, and whether the requests fit the model's context.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from capbench.config import RunSpec
from capbench.errors import CapbenchError
from capbench.models.directory import check_model_dir
from capbench.runners import runner_traits
from capbench.workload import PromptSet, Workload, build_workload, load_prompts


@dataclass(frozen=True)
class ModelChoice:
    """The model a run serves: a local directory (hf; or the served model's files for openai) or none."""

    path: Path | None
    name: str | None
    source: str


def resolve_model(spec: RunSpec) -> ModelChoice:
    """hf: the given local directory, or the embedded tiny MoE (built/cached); server runners: ``model_path`` if
    any; vllm launching: the model directory (or ``model_path`` when the model is an id vLLM resolves)."""
    traits = runner_traits(spec.runner)
    if traits.launches_server(spec):
        assert spec.model is not None
        local = Path(spec.model)
        if local.is_dir():
            check_model_dir(local)
            return ModelChoice(local, _local_name(local), "local directory, served by vLLM launched by capbench")
        path = Path(spec.model_path) if spec.model_path else None
        return ModelChoice(path, spec.model, "model id resolved by vLLM, served by vLLM launched by capbench")
    if traits.server:
        path = Path(spec.model_path) if spec.model_path else None
        return ModelChoice(path, spec.model, f"served by {spec.base_url}")
    if spec.model is None:
        from capbench.models.demo import DEMO_MODEL_NAME, demo_model_dir

        return ModelChoice(
            demo_model_dir(), DEMO_MODEL_NAME, "embedded demo MoE (trained by capbench on capbench_arithmetic)"
        )
    model_dir = Path(spec.model)
    if not model_dir.is_dir():
        raise CapbenchError(
            f"model {spec.model!r} is not a local model directory; capbench never downloads weights: pass a "
            "directory that holds the model (config.json, tokenizer, weights)"
        )
    check_model_dir(model_dir)
    return ModelChoice(model_dir, _local_name(model_dir), "local directory")


def _local_name(model_dir: Path) -> str:
    """A local model directory's name in results: the demo MoE keeps its one name whatever path served it (so
    runs of it on different engines compare as one model); any other directory is named by its folder."""
    from capbench.models.demo import DEMO_MODEL_NAME, demo_model_dir

    resolved = model_dir.resolve()
    try:
        demo = demo_model_dir().resolve()
    except CapbenchError:  # an install without the demo checkpoint: no directory can be it
        return resolved.name
    return DEMO_MODEL_NAME if resolved == demo else resolved.name


@dataclass
class RunPlan:
    """What a run serves: a workload of prompts (or fixed-length prompts), or an accuracy task whose requests
    lm-eval builds (``task`` set; ``workload`` then only carries the counts for ``run.json``)."""

    workload: Workload
    dataset: dict[str, Any]
    total: int | None
    task: Any = None


def prompts_dataset(prompts: PromptSet, name: str) -> dict[str, Any]:
    return {"name": name, "source": prompts.source, "sha256": prompts.sha256, "num_prompts": len(prompts.prompts)}


def model_tokenizer(model_path: Path | None, needed_by: str) -> Any:
    """The served model's tokenizer, or an error ``"<needed_by> the model's tokenizer (give model_path): why"``."""
    from capbench.runners.openai.tokens import load_tokenizer

    tokenizer, why_not = load_tokenizer(str(model_path) if model_path is not None else None)
    if tokenizer is None:
        raise CapbenchError(f"{needed_by} the model's tokenizer (give model_path): {why_not}")
    return tokenizer


def fixed_length_prompts(spec: RunSpec, model: ModelChoice) -> PromptSet:
    """Prompts of exactly ``fixed_prompt_tokens`` tokens as this run's model will count them (the chat template
    included for ``api: chat``; a server's tokenizer adds its special tokens, the hf runner adds none)."""
    from capbench.workload.fixed_length import build_fixed_prompts

    assert spec.fixed_prompt_tokens is not None
    tokenizer = model_tokenizer(model.path, "fixed_prompt_tokens needs")
    server = runner_traits(spec.runner).server
    count = (spec.effective_num_requests or 256) + spec.warmup
    return build_fixed_prompts(
        tokenizer,
        spec.fixed_prompt_tokens,
        count,
        spec.seed,
        chat=server and spec.api == "chat",
        add_special_tokens=server,
    )


def plan_run(spec: RunSpec, model: ModelChoice) -> RunPlan:
    """The run's workload: an accuracy task (loaded now, so a bad task fails before the model loads), a dataset or
    trace (:mod:`capbench.run.datasets`), fixed-length prompts, or a prompt file (the shipped one by default)."""
    if spec.effective_task is not None:
        from capbench.tasks.evaluate import prepare_task

        task = prepare_task(spec)
        samples = task.num_samples(spec.num_requests)
        requests: int | None = samples
        if task.request_type != "generate":
            requests = _likelihood_task(spec, model, task)
        # rolling windows are counted once tokenized: until then the run plans at least one request per sample
        placeholder = Workload(warmup=[], measured=iter(()), num_requests=requests or samples, duration_s=None)
        dataset = {**task.dataset, "samples": samples}
        return RunPlan(placeholder, dataset, spec.warmup + requests if requests is not None else None, task)
    if spec.synthetic_workload is not None:
        from capbench.run.datasets import dataset_workload

        workload, record = dataset_workload(spec, model.path)
        return RunPlan(workload, record, workload.total)
    fixed = spec.fixed_prompt_tokens is not None
    prompts = fixed_length_prompts(spec, model) if fixed else load_prompts(spec.prompts)
    workload = build_workload(
        prompts,
        num_requests=spec.effective_num_requests,
        duration_s=spec.duration_s,
        warmup=spec.warmup,
        seed=spec.seed,
    )
    return RunPlan(workload, prompts_dataset(prompts, "fixed_length" if fixed else "prompts"), workload.total)


def _likelihood_task(spec: RunSpec, model: ModelChoice, task: Any) -> int | None:
    """Ready a log-likelihood task: the completions API (a server's chat API returns no prompt log-probabilities),
    the served model's tokenizer (lm-eval tokenizes each context/continuation pair with it); returns the number of
    requests it will make (None: rolling windows, known once tokenized)."""
    from capbench.tasks.evaluate import planned_requests

    if runner_traits(spec.runner).server and spec.api == "chat":
        raise CapbenchError(
            f"task {task.name!r} scores log-likelihoods, which need the completions API (prompt log-probabilities); "
            "use --api completions"
        )
    task.tokenizer = model_tokenizer(model.path, f"task {task.name!r} scores log-likelihoods, which needs")
    return planned_requests(task, spec.num_requests)


def load_section(spec: RunSpec, workload: Workload, dataset: dict[str, Any]) -> dict[str, Any]:
    """``run.json`` ``load``: the load pattern and the dataset, as configured."""
    traits = runner_traits(spec.runner)
    return {
        "pattern": traits.load_pattern(spec),
        "concurrency": spec.effective_concurrency,
        "request_rate_per_s": spec.request_rate,
        "arrival": spec.arrival if spec.request_rate is not None else None,
        "burstiness": spec.burstiness if spec.request_rate is not None else None,
        "num_requests": workload.num_requests,
        "duration_s": workload.duration_s,
        # an accuracy task's warm-up requests are built by CapbenchLM from lm-eval's first prompts
        "warmup_requests": spec.warmup if dataset.get("name") == "task" else len(workload.warmup),
        # a dataset's own output lengths set every request's max_tokens
        "max_tokens": None if spec.synthetic_workload and spec.dataset_output_lengths else spec.effective_max_tokens,
        "ignore_eos": spec.effective_ignore_eos,
        "temperature": spec.temperature,
        "timeout_s": spec.timeout_s if traits.server else None,
        "seed": spec.seed,
        "dataset": dataset,
        "dataset_output_lengths": spec.dataset_output_lengths if spec.synthetic_workload else None,
        "fixed_length": {"prompt_tokens": spec.fixed_prompt_tokens, "output_tokens": spec.fixed_output_tokens}
        if spec.fixed_length
        else None,
    }


def check_context(spec: RunSpec, runner: Any, dataset: dict[str, Any] | None = None) -> None:
    """Refuse, before any request, a log-likelihood task on a server that returns no prompt log-probabilities,
    and a run whose requests would exceed the model's context: fixed lengths that do not fit, an output limit as
    long as the context itself, or a dataset or trace whose planned requests (prompt + output tokens) do not all
    fit. (A prompt-file prompt that is too long is a per-request error: the hf runner refuses it, a server answers
    it with an error.)"""
    from capbench.arch.context import context_problem

    if (dataset or {}).get("request_type") in ("loglikelihood", "loglikelihood_rolling"):
        check = getattr(runner, "check_prompt_logprobs", None)
        if check is not None:
            check()  # a server that cannot return prompt log-probabilities is refused before any request
    context = runner.context_length() if hasattr(runner, "context_length") else None
    if context is None:
        return
    planned = (dataset or {}).get("planned") or {}
    longest = planned.get("longest_request_tokens")
    if longest is not None and longest > context:
        raise CapbenchError(
            f"the {(dataset or {}).get('name')} workload has requests of up to {longest} tokens (prompt + output), "
            f"more than the model's context of {context} tokens; shorten them, replay fewer (num_requests) or use "
            "a model with a longer context"
        )
    if spec.fixed_length:
        problem = context_problem(spec.fixed_prompt_tokens or 0, spec.fixed_output_tokens or 0, context)
        if problem is not None:
            raise CapbenchError(f"fixed-length mode: {problem}; lower fixed_prompt_tokens or fixed_output_tokens")
    limit = spec.effective_max_tokens
    if limit is not None and limit >= context:
        raise CapbenchError(
            f"max_tokens {limit} leaves no room for a prompt in the model's context of {context} tokens; lower it"
        )
