"""``capbench run``: set a run up, drive it, score it, report it.

Order matters for the user: everything that can be checked cheaply (config, output directory, prompt file,
model directory) is checked before the model is built or loaded, so a typo fails in milliseconds.
"""

from __future__ import annotations

import contextlib
import errno
import secrets
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from capbench import __version__
from capbench.clock import CLOCK_NAME, now_ns, utc_now_iso
from capbench.config import RunSpec
from capbench.errors import CapbenchError, interruption
from capbench.models.directory import check_model_dir
from capbench.records import SCHEMA_VERSION, RunStatus, RunWriter
from capbench.records.writer import prepare_run_dir
from capbench.versions import run_versions
from capbench.workload import PromptSet, Workload, build_workload, load_prompts


def new_run_id() -> str:
    """A run id: UTC time to the second plus 6 random hex digits, e.g. ``20261121T234501-3fa9c2``."""
    return f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class ModelChoice:
    """The model a run serves: a local directory (hf; or the served model's files for openai) or none."""

    path: Path | None
    name: str | None
    source: str


def resolve_model(spec: RunSpec) -> ModelChoice:
    """hf: the given local directory, or the embedded tiny MoE (built/cached); server runners: ``model_path`` if
    any; vllm launching: the model directory (or ``model_path`` when the model is an id vLLM resolves)."""
    if spec.runner == "vllm" and spec.base_url is None:
        assert spec.model is not None
        local = Path(spec.model)
        if local.is_dir():
            check_model_dir(local)
            return ModelChoice(local, _local_name(local), "local directory, served by vLLM launched by capbench")
        path = Path(spec.model_path) if spec.model_path else None
        return ModelChoice(path, spec.model, "model id resolved by vLLM, served by vLLM launched by capbench")
    if spec.runner != "hf":
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


def fixed_length_prompts(spec: RunSpec, model: ModelChoice) -> PromptSet:
    """Prompts of exactly ``fixed_prompt_tokens`` tokens as this run's model will count them (the chat template
    included for ``api: chat``; a server's tokenizer adds its special tokens, the hf runner adds none)."""
    from capbench.fixed_length import build_fixed_prompts
    from capbench.runners.openai.tokens import load_tokenizer

    assert spec.fixed_prompt_tokens is not None
    tokenizer, why_not = load_tokenizer(str(model.path) if model.path is not None else None)
    if tokenizer is None:
        raise CapbenchError(f"fixed_prompt_tokens needs the model's tokenizer (give model_path): {why_not}")
    server = spec.runner != "hf"
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
    """The run's workload: an accuracy task (loaded now, so a bad task fails before the model loads), fixed-length
    prompts, or a prompt file (the shipped one by default)."""
    if spec.effective_task is not None:
        from capbench.tasks.evaluate import prepare_task

        task = prepare_task(spec)
        samples = task.num_samples(spec.num_requests)
        placeholder = Workload(warmup=[], measured=iter(()), num_requests=samples, duration_s=None)
        dataset = {**task.dataset, "samples": samples}
        return RunPlan(placeholder, dataset, spec.warmup + samples, task)
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


def load_section(spec: RunSpec, workload: Workload, dataset: dict[str, Any]) -> dict[str, Any]:
    """``run.json`` ``load``: the load pattern and the dataset, as configured."""
    if spec.runner == "hf":
        pattern = "static_batches"
    else:
        pattern = "open_loop" if spec.request_rate is not None else "closed_loop"
    return {
        "pattern": pattern,
        "concurrency": spec.effective_concurrency,
        "request_rate_per_s": spec.request_rate,
        "arrival": spec.arrival if spec.request_rate is not None else None,
        "burstiness": spec.burstiness if spec.request_rate is not None else None,
        "num_requests": workload.num_requests,
        "duration_s": workload.duration_s,
        # an accuracy task's warm-up requests are built by CapbenchLM from lm-eval's first prompts
        "warmup_requests": spec.warmup if dataset.get("name") == "task" else len(workload.warmup),
        "max_tokens": spec.effective_max_tokens,
        "ignore_eos": spec.effective_ignore_eos,
        "temperature": spec.temperature,
        "timeout_s": spec.timeout_s if spec.runner != "hf" else None,
        "seed": spec.seed,
        "dataset": dataset,
        "fixed_length": {"prompt_tokens": spec.fixed_prompt_tokens, "output_tokens": spec.fixed_output_tokens}
        if spec.fixed_length
        else None,
    }


def build_manifest(
    spec: RunSpec,
    run_id: str,
    runner: Any,
    model: ModelChoice,
    workload: Workload,
    dataset: dict[str, Any],
    hardware: dict[str, Any],
) -> dict[str, Any]:
    """The ``run.json`` content written before the first request (docs/records.md)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "created_at": utc_now_iso(),
        "capbench_version": __version__,
        "status": RunStatus.RUNNING.value,
        "error": None,
        "spec": spec.model_dump(mode="json"),
        "command": sys.argv,
        "versions": run_versions(),
        "model": {
            "name": model.name or getattr(runner, "model_name", None),
            "path": str(model.path.resolve()) if model.path is not None else None,
            "source": model.source,
            "config": runner.model_config(),
            "config_source": model_config_source(runner),
            "top_k_override": spec.top_k,
        },
        "engine": runner.engine_info(),
        "hardware": hardware,
        "dtypes": runner.dtypes(),
        "load": load_section(spec, workload, dataset),
        "clock": {"name": CLOCK_NAME, "start_ns": now_ns(), "start_utc": utc_now_iso()},
    }


def model_config_source(runner: Any) -> str | None:
    """Where ``run.json`` ``model.config`` came from: the runner says (a launched vLLM: the directory, or what the
    engine loaded), else the model directory's config.json, or None when there is no config."""
    if hasattr(runner, "model_config_source"):
        return runner.model_config_source()
    return "model directory config.json" if runner.model_config() is not None else None


DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO})
"""Write failures that mean the run directory cannot take more records (full disk, quota, read-only, I/O)."""


@contextlib.contextmanager
def disk_errors(run_dir: Path) -> Iterator[None]:
    """Turn a failure to write the run's records into one clear error (the run is recorded as failed or partial
    in run.json first, when run.json can still be written; everything written before stays readable)."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in DISK_ERRNOS:
            raise
        raise CapbenchError(
            f"cannot write the run's records in {run_dir}: {exc.strerror or exc}; the run stopped, and what it "
            "wrote before is kept (run.json says failed or partial where it could still be written)"
        ) from exc


def check_context(spec: RunSpec, runner: Any) -> None:
    """Refuse, before any request, a run whose every request would exceed the model's context: fixed lengths
    that do not fit, or an output limit as long as the context itself. (A data-driven prompt that is too long
    is a per-request error: the hf runner refuses it, a server answers it with an error.)"""
    from capbench.metrics.context import context_problem

    context = runner.context_length() if hasattr(runner, "context_length") else None
    if context is None:
        return
    if spec.fixed_length:
        problem = context_problem(spec.fixed_prompt_tokens or 0, spec.fixed_output_tokens or 0, context)
        if problem is not None:
            raise CapbenchError(f"fixed-length mode: {problem}; lower fixed_prompt_tokens or fixed_output_tokens")
    limit = spec.effective_max_tokens
    if limit is not None and limit >= context:
        raise CapbenchError(
            f"max_tokens {limit} leaves no room for a prompt in the model's context of {context} tokens; lower it"
        )


def write_failed_manifest(run_dir: Path, spec: RunSpec, run_id: str, exc: BaseException) -> None:
    """A ``run.json`` for a run that failed before its first request after writing something (e.g. a launched
    server's log: the server never became healthy), so the run directory says what happened instead of holding
    only logs. A run that failed before writing anything (bad input, an unreachable server) leaves no run.json."""
    from capbench.records.writer import write_json_atomic

    interrupted = isinstance(exc, KeyboardInterrupt)
    write_json_atomic(
        run_dir / "run.json",
        {
            "schema_version": SCHEMA_VERSION,
            "run_id": run_id,
            "created_at": utc_now_iso(),
            "ended_at": utc_now_iso(),
            "capbench_version": __version__,
            "status": (RunStatus.PARTIAL if interrupted else RunStatus.FAILED).value,
            "error": f"{interruption(exc)} during set-up" if interrupted else f"{type(exc).__name__}: {exc}",
            "spec": spec.model_dump(mode="json"),
            "command": sys.argv,
            "engine": {"name": spec.runner},
        },
    )


def default_out_dir(run_id: str) -> Path:
    return Path("runs") / run_id


def score_and_report(run_dir: Path, console: Console) -> dict[str, Any] | None:
    """Score a finished run, write ``summary.json`` and print it; a scoring error is reported, not raised,
    because the raw records are complete and ``capbench score`` can be re-run once the cause is fixed."""
    from capbench.report import print_summary
    from capbench.scoring import score_run_dir

    try:
        summary = score_run_dir(run_dir)
    except CapbenchError as exc:
        console.print(
            f"[red]scoring failed:[/] {exc}\nthe raw records are complete; fix this, then run "
            f"`capbench score {run_dir}`"
        )
        return None
    print_summary(summary, console)
    return summary


def serve_task(
    task: Any,
    spec: RunSpec,
    runner: Any,
    writer: RunWriter,
    on_request_done: Callable[[dict[str, Any]], None],
    sensor: Any,
) -> None:
    """Evaluate ``task`` with lm-eval, its generations served by ``runner`` through :func:`drive` (one call)."""
    from capbench.harness import drive
    from capbench.tasks.evaluate import evaluate_task

    def serve(workload: Workload) -> dict[str, dict[str, Any]]:
        records: dict[str, dict[str, Any]] = {}

        def done(record: dict[str, Any]) -> None:
            on_request_done(record)
            if not record.get("warmup"):
                records[str(record["id"])] = record

        drive(runner, workload, writer, done, power=sensor)
        return records

    evaluate_task(task, spec, serve, writer)


def execute_run(spec: RunSpec, *, quiet: bool = False) -> tuple[Path, RunStatus]:
    """Run ``spec`` end to end; return the run directory and its final status.

    Whatever ends the run (completion, Ctrl-C, an exception), the run directory is left readable with its
    final status, every completed request on disk, and what was measured scored into ``summary.json``; the
    interruption or exception is then re-raised (the CLI exits 130 on Ctrl-C).
    """
    from capbench.harness import drive
    from capbench.progress import RequestProgress
    from capbench.run_hardware import resolve_run_hardware
    from capbench.run_power import open_run_sensor
    from capbench.runners import load_runner_class

    console = Console(stderr=True, quiet=quiet)
    run_id = new_run_id()
    run_dir = prepare_run_dir(Path(spec.out) if spec.out else default_out_dir(run_id))
    runner_cls = load_runner_class(spec.runner)
    model = resolve_model(spec)
    with console.status("loading the task" if spec.effective_task else "preparing the prompts"):
        plan = plan_run(spec, model)
    workload = plan.workload

    launching = spec.runner == "vllm" and spec.base_url is None
    with console.status("starting the vLLM server" if launching else "preparing the model"):
        try:
            runner = runner_cls(spec, model.path, run_dir=run_dir)
        except BaseException as exc:
            if any(run_dir.iterdir()):  # e.g. a launched server's log: say what happened next to it
                write_failed_manifest(run_dir, spec, run_id, exc)
            raise
    try:
        check_context(spec, runner)
    except BaseException:
        runner.close()
        raise
    gpus = runner.gpu_indices() if hasattr(runner, "gpu_indices") else None
    if gpus is not None and spec.gpus is None:  # a launched multi-GPU engine: sample and count all its GPUs
        spec = spec.model_copy(update={"gpus": gpus})
    sensor = None
    try:
        device = runner.engine_info()["device"]
        sensor = open_run_sensor(spec, device)
        with console.status("resolving the hardware profile"):
            hardware = resolve_run_hardware(spec, device, sensor, console)
        manifest = build_manifest(spec, run_id, runner, model, workload, plan.dataset, hardware)
        manifest["power"] = sensor.info()
        with disk_errors(run_dir):
            writer = RunWriter(run_dir, manifest)
        what = f"{workload.num_requests} requests" if workload.num_requests else f"{workload.duration_s:g} s"
        if plan.task is not None:
            what = f"task {plan.task.name}: {workload.num_requests} samples"
        console.print(f"run [bold]{run_id}[/]: {what} (+{spec.warmup} warm-up) -> {run_dir}")
        try:
            with disk_errors(run_dir), writer, RequestProgress(console, total=plan.total) as progress:
                try:
                    if plan.task is None:
                        drive(runner, workload, writer, progress.request_done, power=sensor)
                    else:
                        serve_task(plan.task, spec, runner, writer, progress.request_done, sensor)
                finally:  # also for a partial run: what the runner learned, the sensor's statistics
                    writer.update_manifest(**runner.facts, power=sensor.info())
                failure = writer.failure(spec.max_error_rate)
                if failure is not None:
                    writer.finish(RunStatus.FAILED, error=failure)
        finally:
            score_and_report(run_dir, Console(quiet=quiet))
    finally:
        if sensor is not None:
            sensor.close()
        runner.close()
    return run_dir, RunStatus(writer.status)
