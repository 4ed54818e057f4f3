"""Run an accuracy task through a capbench run: load it, serve it with the run's runner, record what it scored.

1. :func:`prepare_task` (before the model is loaded, so a bad task fails fast): resolves ``task`` to one of
   capbench's offline tasks (:mod:`capbench.tasks.builtin`; data written locally), a local lm-eval task YAML, or an
   lm-eval task/group/tag name, and loads it with its data. A named task whose data cannot be downloaded (this
   machine is offline) fails with a message saying so and what works offline.
   Its tasks must all be served as one request type (:data:`REQUEST_TYPE_OF_OUTPUT`): generation, or
   log-likelihood (``multiple_choice``, ``loglikelihood``), or rolling log-likelihood (perplexity).
2. :func:`evaluate_task` runs ``lm_eval.simple_evaluate`` with :class:`~capbench.tasks.lm.CapbenchLM`, whose
   requests are served by :func:`capbench.run.harness.drive`. Then it writes ``lm_eval_results.json`` (lm-eval's
   results, configs and versions; samples left out, they are in ``requests.jsonl``), annotates every measured
   record of ``requests.jsonl`` with its ``score`` and extracted ``answer`` (rewritten atomically), and puts the
   ``accuracy`` section into ``run.json``.

The reported metric is ``task_metric`` when given (lm-eval's ``metric,filter`` key), else the first metric of the
first filter. ``accuracy.value`` and ``stderr`` are lm-eval's own figures; ``n`` is the number of scored samples.
``no_answer_rate``: capbench's tasks report it as a metric; for other tasks it is the share of samples whose
filtered response is empty or lm-eval's ``[invalid]`` (no pattern matched); log-likelihood tasks have none (null).
A multiple-choice sample's ``answer`` is its most likely choice; other log-likelihood tasks record no answer.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from capbench.config import RunSpec
from capbench.errors import CapbenchError, MissingDependencyError
from capbench.tasks.builtin import BUILTIN_TASKS, BuiltinTask, task_data
from capbench.tasks.extract import strip_reasoning

NO_ANSWER_RESPONSES = frozenset({"", "[invalid]"})
"""Filtered responses that mean nothing was extracted (``[invalid]`` is lm-eval's regex-filter fallback)."""

LM_EVAL_RESULTS_FILE = "lm_eval_results.json"

REQUEST_TYPE_OF_OUTPUT: dict[str, str] = {
    "generate_until": "generate",
    "loglikelihood": "loglikelihood",
    "multiple_choice": "loglikelihood",
    "loglikelihood_rolling": "loglikelihood_rolling",
}
"""The capbench request type (``request_type`` in ``requests.jsonl``) each lm-eval ``output_type`` is served as."""

LM_EVAL_MAX_GEN_TOKS = 256
"""New tokens for a task that sets no ``max_gen_toks`` (lm-eval's own default), unless ``max_tokens`` is given."""


@dataclass
class PreparedTask:
    """A loaded task, ready to evaluate."""

    name: str
    top: str
    """The name lm-eval reports the result under (the task, or the group that holds the tasks)."""
    manager: Any
    objects: list[Any]
    doc_counts: dict[str, int]
    repeats: dict[str, int]
    dataset: dict[str, Any]
    builtin: BuiltinTask | None = None
    request_type: str = "generate"
    """How lm-eval's requests are served: ``generate`` (text), ``loglikelihood`` or ``loglikelihood_rolling``."""
    output_types: dict[str, str] | None = None
    """Each task's lm-eval ``output_type``."""
    tasks: dict[str, Any] | None = None
    """The loaded lm-eval tasks by name."""
    tokenizer: Any = None
    """The served model's tokenizer (log-likelihood tasks: lm-eval tokenizes their pairs with it)."""

    @property
    def task_names(self) -> list[str]:
        return sorted(self.doc_counts)

    def num_samples(self, limit: int | None) -> int:
        """Requests lm-eval will make: per task, ``limit`` docs at most, ``repeats`` requests each."""
        return sum((n if limit is None else min(n, limit)) * self.repeats[t] for t, n in self.doc_counts.items())


def _import_lm_eval() -> Any:
    try:
        import lm_eval
    except ImportError as exc:
        raise MissingDependencyError("lm_eval", "eval", "an accuracy task") from exc
    for name in ("lm_eval", "lm-eval"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        import datasets

        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
    except ImportError:  # pragma: no cover - lm-eval depends on datasets
        pass
    return lm_eval


def _offline_message(name: str, dataset: str | None, exc: BaseException) -> str:
    where = f"its dataset {dataset!r}" if dataset else "its data"
    return (
        f"lm-eval task {name!r} could not load {where}: it is not in the local Hugging Face cache and cannot be "
        f"downloaded here (offline: {type(exc).__name__}). On a machine with internet access it runs unchanged. "
        f"Offline, use capbench's tasks ({', '.join(BUILTIN_TASKS)}) or a local task YAML whose dataset_path is "
        "'json' with local data_files"
    )


def _dataset_of(manager: Any, name: str) -> str | None:
    entry = manager.task_index.get(name)
    path = getattr(entry, "yaml_path", None)
    if not path:
        return None
    try:  # read the line, not the YAML: lm-eval's task files use custom tags (!function) a plain loader rejects
        text = Path(path).read_text(encoding="utf-8")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("dataset_path:"):
            return line.split(":", 1)[1].strip().strip("'\"")
    return None


def _is_offline_error(exc: BaseException) -> bool:
    names = {type(e).__name__ for e in _chain(exc)}
    offline = {
        "ConnectionError",
        "OfflineModeIsEnabled",
        "LocalEntryNotFoundError",
        "DatasetNotFoundError",
        "HfHubHTTPError",
        "MaxRetryError",
        "NameResolutionError",
        "TimeoutError",
    }
    return bool(names & offline) or any("offline" in str(e).lower() for e in _chain(exc))


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _top_level(loaded: Mapping[str, Any]) -> list[Any]:
    """The loaded objects lm-eval should evaluate: groups not inside another group, then loose tasks."""
    children = {child for names in loaded["group_map"].values() for child in names}
    groups = [g for name, g in loaded["groups"].items() if name not in children]
    in_groups = {t for g in groups for t in (x.task_name for x in g.get_all_tasks())}
    tasks = [t for name, t in loaded["tasks"].items() if name not in in_groups and name not in children]
    return [*groups, *tasks]


def prepare_task(spec: RunSpec) -> PreparedTask:
    """Resolve and load ``spec.effective_task`` (see the module docstring)."""
    name = spec.effective_task
    if name is None:
        raise CapbenchError("this run has no accuracy task")
    _import_lm_eval()
    from lm_eval.tasks import TaskManager

    builtin = BUILTIN_TASKS.get(name)
    path = Path(name)
    dataset: dict[str, Any] = {"name": "task", "task": name}
    if builtin is not None:
        manager = TaskManager(include_defaults=False)
        files, sha = task_data(builtin)
        item: Any = builtin.config(files)
        dataset.update(source=f"capbench offline task v{builtin.version} (seed {builtin.seed})", sha256=sha)
    elif name.endswith((".yaml", ".yml")) or path.is_file():
        if not path.is_file():
            raise CapbenchError(f"task file {name} does not exist")
        manager = TaskManager(include_defaults=False, include_path=str(path.resolve().parent))
        item = str(path.resolve())
        dataset.update(source=f"local task YAML {path.resolve()}")
    else:
        manager = TaskManager()
        if name not in manager.task_index:
            raise CapbenchError(
                f"unknown task {name!r}: not an lm-eval task, group or tag, nor a task YAML file. capbench's offline "
                f"tasks: {', '.join(BUILTIN_TASKS)}"
            )
        item = name
        dataset.update(source=f"lm-eval task {name}")
    try:
        loaded = manager.load([item])
    except CapbenchError:
        raise
    except Exception as exc:
        if builtin is None and _is_offline_error(exc):
            raise CapbenchError(_offline_message(name, _dataset_of(manager, name), exc)) from exc
        raise CapbenchError(f"lm-eval could not load task {name!r}: {type(exc).__name__}: {exc}") from exc
    tasks = loaded["tasks"]
    if not tasks:
        raise CapbenchError(f"task {name!r} holds no tasks")
    output_types = {task_name: str(task.get_config("output_type")) for task_name, task in tasks.items()}
    request_type = _request_type(output_types)
    objects = _top_level(loaded)
    if len(objects) > 1:
        raise CapbenchError(
            f"{name!r} expands to {len(objects)} tasks with no group to aggregate them "
            f"({', '.join(sorted(tasks))}); run one of them, or a group"
        )
    top = name
    if len(objects) == 1:
        top = str(getattr(objects[0], "name", None) or objects[0].task_name)
    doc_counts = {task_name: len(task.eval_docs) for task_name, task in tasks.items()}
    dataset["num_samples"] = sum(doc_counts.values())
    dataset["request_type"] = request_type
    return PreparedTask(
        name=name,
        top=top,
        manager=manager,
        objects=objects,
        doc_counts=doc_counts,
        repeats={task_name: int(task.get_config("repeats") or 1) for task_name, task in tasks.items()},
        dataset=dataset,
        builtin=builtin,
        request_type=request_type,
        output_types=output_types,
        tasks=dict(tasks),
    )


def _request_type(output_types: Mapping[str, str]) -> str:
    """The one request type a task's (or group's) tasks are served as; a clear error for an output type capbench
    cannot serve, or for a group that mixes generation with log-likelihood (a run serves one kind)."""
    kinds: dict[str, list[str]] = {}
    for task_name, output_type in sorted(output_types.items()):
        kind = REQUEST_TYPE_OF_OUTPUT.get(output_type)
        if kind is None:
            raise CapbenchError(
                f"task {task_name!r} has output_type {output_type!r}, which capbench cannot serve (it serves "
                f"{', '.join(REQUEST_TYPE_OF_OUTPUT)})"
            )
        kinds.setdefault(kind, []).append(task_name)
    if len(kinds) > 1:
        described = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in sorted(kinds.items()))
        raise CapbenchError(
            f"this task mixes request types ({described}); a capbench run serves one kind, so run them separately"
        )
    return next(iter(kinds), "generate")


def planned_requests(prepared: PreparedTask, limit: int | None) -> int | None:
    """Requests lm-eval will make for ``prepared`` with ``limit`` samples per task: one per sample and repeat for
    generation, one per choice for multiple choice and single log-likelihoods, None for rolling windows (their
    number depends on the tokenized text)."""
    if prepared.request_type == "loglikelihood_rolling":
        return None
    total = 0
    for name, task in (prepared.tasks or {}).items():
        docs = list(task.eval_docs)
        if limit is not None:
            docs = docs[:limit]
        if (prepared.output_types or {}).get(name) == "multiple_choice":
            total += sum(len(task.doc_to_choice(doc)) for doc in docs)
        else:
            total += len(docs) * prepared.repeats[name]
    return total


def pick_metric(results: Mapping[str, Any], top: str, requested: str | None) -> str:
    """The ``metric,filter`` key to report for ``top`` (a task or group) in lm-eval's ``results``."""
    entry = results.get(top) or {}
    keys = [k for k, v in entry.items() if "," in k and "_stderr," not in k and isinstance(v, int | float)]
    if requested is not None:
        if requested not in keys:
            raise CapbenchError(f"task {top!r} has no metric {requested!r}; it reports: {', '.join(keys) or 'none'}")
        return requested
    primary = [k for k in keys if not k.startswith("no_answer,")]
    if not primary:
        raise CapbenchError(f"lm-eval reported no metric for {top!r}")
    return primary[0]


def _choice_answer(sample: Mapping[str, Any]) -> str | None:
    """A log-likelihood multiple-choice sample's answer: the choice with the highest log-likelihood (lm-eval's
    ``acc`` pick; the first on a tie), as its text without the target delimiter."""
    filtered = sample.get("filtered_resps")
    arguments = sample.get("arguments")
    if not isinstance(filtered, list) or not isinstance(arguments, list) or len(filtered) != len(arguments):
        return None
    lls = [r[0] if isinstance(r, list | tuple) else r for r in filtered]
    if not lls or not all(isinstance(v, int | float) for v in lls):
        return None
    best = max(range(len(lls)), key=lambda i: (lls[i], -i))
    argument = arguments[best]
    return str(argument[1]).strip() if isinstance(argument, list | tuple) and len(argument) > 1 else None


def _answer(
    sample: Mapping[str, Any], record: Mapping[str, Any], builtin: BuiltinTask | None, output_type: str | None
) -> str | None:
    if output_type == "multiple_choice":
        return _choice_answer(sample)
    if output_type in ("loglikelihood", "loglikelihood_rolling"):
        return None  # nothing is extracted: the score is the log-likelihood itself
    if builtin is not None and builtin.extract is not None:
        if record.get("error") is not None:
            return None
        # exactly what lm-eval's process_results saw: the text CapbenchLM returned, then the extractor
        return builtin.extract(strip_reasoning(str(record.get("output_text") or "")))
    filtered = sample.get("filtered_resps")
    value = filtered[0] if isinstance(filtered, list) and filtered else filtered
    if not isinstance(value, str) or value.strip() in NO_ANSWER_RESPONSES:
        return None
    return value


def per_sample_scores(results: Mapping[str, Any], metric_key: str) -> dict[str, tuple[float | None, dict[str, Any]]]:
    """``sample_id -> (score, lm-eval sample)`` for the reported metric's filter."""
    from capbench.tasks.lm import sample_id

    metric, _, filter_name = metric_key.partition(",")
    out: dict[str, tuple[float | None, dict[str, Any]]] = {}
    for task_name, samples in (results.get("samples") or {}).items():
        for sample in samples:
            if sample.get("filter") != filter_name:
                continue
            value = sample.get(metric)
            score = float(value) if isinstance(value, int | float) else None  # bool is an int
            out[sample_id(task_name, sample.get("doc_id"))] = (score, sample)
    return out


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, str | int | float | bool) or obj is None:
        return obj
    return repr(obj) if callable(obj) else str(obj)


@contextlib.contextmanager
def _quiet_lm_eval() -> Iterator[None]:
    """lm-eval draws a tqdm bar while it builds requests; capbench shows its own progress (and ``--quiet`` means
    quiet), so that bar is turned off for the call."""
    import lm_eval.api.task as task_module

    original = getattr(task_module, "tqdm", None)
    if original is None:
        yield
        return
    task_module.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        task_module.tqdm = original


def evaluate_task(
    prepared: PreparedTask,
    spec: RunSpec,
    serve: Callable[[Any], dict[str, dict[str, Any]]],
    writer: Any,
    *,
    context_length: int | None = None,
) -> dict[str, Any]:
    """Evaluate ``prepared`` with requests served by ``serve``; returns (and writes) the ``accuracy`` section.

    ``context_length`` (the served model's context in tokens) bounds log-likelihood prompts.
    """
    lm_eval = _import_lm_eval()
    from capbench.records.writer import write_json_atomic
    from capbench.tasks.lm import CapbenchLM

    tokenizer = prepared.tokenizer
    if prepared.request_type != "generate" and tokenizer is None:
        raise CapbenchError(f"task {prepared.name!r} scores log-likelihoods, which needs the served model's tokenizer")
    lm = CapbenchLM(
        serve,
        warmup=spec.warmup,
        max_tokens=spec.max_tokens,
        default_max_tokens=LM_EVAL_MAX_GEN_TOKS,
        tokenizer=tokenizer,
        context_length=context_length,
    )
    with _quiet_lm_eval():
        results = lm_eval.simple_evaluate(
            model=lm,
            tasks=prepared.objects,
            task_manager=prepared.manager,
            limit=spec.num_requests,
            num_fewshot=spec.num_fewshot,
            log_samples=True,
            bootstrap_iters=1000,
            random_seed=spec.seed,
            numpy_random_seed=spec.seed,
            torch_random_seed=spec.seed,
            fewshot_random_seed=spec.seed,
        )
    if results is None:
        raise CapbenchError("lm-eval returned no results")
    top = prepared.top
    if top not in results["results"]:
        raise CapbenchError(
            f"lm-eval reported no aggregate result for {top!r}; choose one of its tasks: "
            + ", ".join(prepared.task_names)
        )
    metric_key = pick_metric(results["results"], top, spec.task_metric)
    entry = results["results"][top]
    metric, _, filter_name = metric_key.partition(",")
    stderr = entry.get(f"{metric}_stderr,{filter_name}")
    scores = per_sample_scores(results, metric_key)

    answers: dict[str, str | None] = {}

    def annotate(record: dict[str, Any]) -> dict[str, Any]:
        sid = record.get("sample_id")
        if record.get("warmup") or sid is None:
            return record
        score, sample = scores.get(sid, (None, {}))
        output_type = (prepared.output_types or {}).get(sid.rsplit("/", 1)[0])
        answer = _answer(sample, record, prepared.builtin, output_type) if sample else None
        answers[sid] = answer
        return {**record, "score": score, "answer": answer}

    writer.rewrite_requests(annotate)
    no_answer_key = f"no_answer,{filter_name}"
    if isinstance(entry.get(no_answer_key), int | float):
        no_answer_rate: float | None = float(entry[no_answer_key])
    elif prepared.request_type != "generate":
        no_answer_rate = None  # a log-likelihood always picks: there is no "no answer"
    else:
        no_answer_rate = sum(a is None for a in answers.values()) / len(answers) if answers else None
    accuracy = {
        "task": prepared.name,
        "tasks": prepared.task_names,
        "metric": metric_key,
        "value": float(entry[metric_key]),
        "stderr": float(stderr) if isinstance(stderr, int | float) else None,
        "n": len(scores),  # samples lm-eval scored for the reported metric's filter
        "no_answer_rate": no_answer_rate,
        "higher_is_better": (results.get("higher_is_better") or {}).get(top, {}).get(metric),
        "num_fewshot": (results.get("n-shot") or {}).get(top),
        "limit": spec.num_requests,
        "request_type": prepared.request_type,
        "temperature": spec.temperature,  # the run's sampling applies, not the task's generation_kwargs
        "task_versions": results.get("versions"),
        "lm_eval_version": results.get("lm_eval_version"),
        "extraction_version": None,
        "dataset": prepared.dataset,
    }
    if prepared.builtin is not None and prepared.builtin.extract is not None:
        from capbench.tasks.extract import EXTRACTION_VERSION

        accuracy["extraction_version"] = EXTRACTION_VERSION
    keep = ("results", "group_subtasks", "configs", "versions", "n-shot", "higher_is_better", "n-samples")
    write_json_atomic(
        writer.run_dir / LM_EVAL_RESULTS_FILE,
        _jsonable({**{k: results.get(k) for k in keep}, "lm_eval_version": results.get("lm_eval_version")}),
    )
    writer.update_manifest(accuracy=accuracy)
    return accuracy
