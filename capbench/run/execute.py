"""``capbench run``: set a run up, drive it, score it, report it.

Order matters for the user: everything that can be checked cheaply (config, output directory, prompt file,
model directory) is checked before the model is built or loaded, so a typo fails in milliseconds.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from capbench.config import RunSpec
from capbench.errors import CapbenchError
from capbench.records import RunStatus, RunWriter
from capbench.records.writer import prepare_run_dir
from capbench.run.interrupts import deferred_interrupts
from capbench.run.manifest import build_manifest, new_run_id, write_failed_manifest
from capbench.run.plan import check_context, plan_run, resolve_model
from capbench.runners import runner_config, runner_traits
from capbench.workload import Workload

if TYPE_CHECKING:
    from capbench.summary.live import LiveScore

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


def default_out_dir(run_id: str) -> Path:
    return Path("runs") / run_id


def score_and_report(run_dir: Path, console: Console, live: LiveScore | None = None) -> dict[str, Any] | None:
    """Score a finished run, write ``summary.json`` and print it; a scoring error is reported, not raised,
    because the raw records are complete and ``capbench score`` can be re-run once the cause is fixed.

    ``live``: the run was scored as it went (:mod:`capbench.summary.live`); its summary is taken when it has one,
    else the run is scored here.
    """
    from capbench.summary.report import print_summary
    from capbench.summary.score import score_run_dir, write_summary

    try:
        summary = live.result() if live is not None else None
        if summary is None:
            summary = score_run_dir(run_dir)
        else:
            write_summary(run_dir, summary)
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
    from capbench.run.harness import drive
    from capbench.tasks.evaluate import evaluate_task

    def serve(workload: Workload) -> dict[str, dict[str, Any]]:
        records: dict[str, dict[str, Any]] = {}

        def done(record: dict[str, Any]) -> None:
            on_request_done(record)
            if not record.get("warmup"):
                records[str(record["id"])] = record

        drive(runner, workload, writer, done, power=sensor)
        return records

    context_length = runner.context_length() if hasattr(runner, "context_length") else None
    evaluate_task(task, spec, serve, writer, context_length=context_length)


def execute_run(spec: RunSpec, *, quiet: bool = False) -> tuple[Path, RunStatus]:
    """Run ``spec`` end to end; return the run directory and its final status.

    Whatever ends the run (completion, Ctrl-C, an exception), the run directory is left readable with its
    final status, every completed request on disk, and what was measured scored into ``summary.json``; the
    interruption or exception is then re-raised (the CLI exits 130 on Ctrl-C).
    """
    from capbench.run.hardware import resolve_run_hardware
    from capbench.run.harness import drive
    from capbench.run.power import open_run_sensor
    from capbench.run.progress import RequestProgress
    from capbench.runners import load_runner_class
    from capbench.summary.live import start_live_score, worth_following

    console = Console(stderr=True, quiet=quiet)
    run_id = new_run_id()
    run_dir = prepare_run_dir(Path(spec.out) if spec.out else default_out_dir(run_id))
    runner_cls = load_runner_class(spec.runner)
    model = resolve_model(spec)
    with console.status("loading the task" if spec.effective_task else "preparing the prompts"):
        plan = plan_run(spec, model)
    workload = plan.workload

    launching = runner_traits(spec.runner).launches_server(spec)
    with console.status("starting the vLLM server" if launching else "preparing the model"):
        try:
            runner = runner_cls(runner_config(spec.runner, spec), model.path, run_dir=run_dir)
        except BaseException as exc:
            if any(run_dir.iterdir()):  # e.g. a launched server's log: say what happened next to it
                write_failed_manifest(run_dir, spec, run_id, exc)
            raise
    try:
        check_context(spec, runner, plan.dataset)
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
        what = f"{workload.num_requests} requests" if workload.num_requests else f"{workload.duration_s:g} s"
        if plan.task is not None:
            what = f"task {plan.task.name}: {workload.num_requests} samples"
        with contextlib.ExitStack() as stack:
            # From the first write of run.json ("running"), a Ctrl-C or SIGTERM (a killed sweep's point) must end
            # the run partial, and the writer's context is what does: interruptions are held back until it is
            # entered (capbench.run.interrupts), then handled inside it.
            with deferred_interrupts():
                with disk_errors(run_dir):
                    writer = RunWriter(run_dir, manifest)
                # A task run rewrites requests.jsonl once lm-eval has scored it: it is scored after the run.
                follow = plan.task is None and worth_following(workload.num_requests, workload.duration_s)
                live = start_live_score(run_dir) if follow else None
                stack.callback(score_and_report, run_dir, Console(quiet=quiet), live)  # last, however the run ends
                stack.enter_context(disk_errors(run_dir))
                stack.enter_context(writer)
            console.print(f"run [bold]{run_id}[/]: {what} (+{spec.warmup} warm-up) -> {run_dir}")
            with RequestProgress(console, total=plan.total) as progress:
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
        if sensor is not None:
            sensor.close()
        runner.close()
    return run_dir, RunStatus(writer.status)
