"""capbench's own offline accuracy tasks, as lm-eval task configs over data files capbench writes itself.

- ``capbench_arithmetic``: GSM8K-format word problems (:mod:`capbench.tasks.arithmetic`), scored by exact
  numeric match of the number after ``####`` (:func:`~capbench.tasks.extract.extract_gsm8k_answer`,
  :func:`~capbench.tasks.extract.numbers_match`), 200 held-out test problems, few-shot examples from train.
- ``capbench_multiple_choice``: four-option questions (:mod:`capbench.tasks.multiple_choice`), scored by the
  extracted letter (:func:`~capbench.tasks.extract.extract_choice`), 200 test questions.
- ``capbench_arithmetic_mc``: the arithmetic problems as four worked solutions, one right
  (:mod:`capbench.tasks.arithmetic_mc`), scored by log-likelihood: ``acc`` is 1 when the right solution is the most
  likely. 200 test problems (the same questions as ``capbench_arithmetic``).

The generative tasks report ``exact_match`` (1 right, 0 wrong or no answer) and ``no_answer`` (1 when nothing could be
extracted, e.g. an empty or failed generation), both averaged over samples. Reasoning text is stripped by the
extractors. The data files are generated on first use into ``<cache>/tasks/<task>-v<version>-s<seed>/`` (written
atomically; the same content on every machine) and their SHA-256 goes into ``run.json``.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from capbench.paths import cache_dir, replace_file
from capbench.tasks import arithmetic, arithmetic_mc, multiple_choice
from capbench.tasks.extract import EXTRACTION_VERSION, extract_choice, extract_gsm8k_answer, numbers_match

TEST_SIZE = 200
TRAIN_SIZE = 1000


_METRICS = [
    {"metric": "exact_match", "aggregation": "mean", "higher_is_better": True},
    {"metric": "no_answer", "aggregation": "mean", "higher_is_better": False},
]
_CHOICE_METRICS = [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}]
_STOPS = ["Question:", "<|im_end|>", "</s>"]


@dataclass(frozen=True)
class BuiltinTask:
    """One of capbench's offline tasks: how to write its data, and its lm-eval config (:meth:`config`).

    A ``generate_until`` task is scored by ``process_results`` on the generated text, with ``extract`` giving the
    answer it read; a ``multiple_choice`` task is scored by lm-eval from the choices' log-likelihoods
    (``doc_to_choice``; metric ``acc``), and has no extraction.
    """

    name: str
    version: str
    seed: int
    description: str
    rows: Callable[[str, int, int], list[dict[str, Any]]]
    doc_to_text: str
    doc_to_target: str
    extract: Callable[[str], str | None] | None = None
    process_results: Callable[[dict[str, Any], Sequence[str]], dict[str, float]] | None = None
    max_gen_toks: int = 0
    output_type: str = "generate_until"
    doc_to_choice: str | None = None

    def config(self, files: dict[str, str]) -> dict[str, Any]:
        """The lm-eval task config over the data ``files`` (``{split: path}``, from :func:`task_data`)."""
        common = {
            "task": self.name,
            "dataset_path": "json",
            "dataset_kwargs": {"data_files": files},
            "test_split": "test",
            "fewshot_split": "train",
            "output_type": self.output_type,
            "doc_to_text": self.doc_to_text,
            "doc_to_target": self.doc_to_target,
            "num_fewshot": 0,
        }
        if self.output_type == "multiple_choice":
            return {
                **common,
                "doc_to_choice": self.doc_to_choice,
                "metric_list": _CHOICE_METRICS,
                "metadata": {"version": float(self.version)},
            }
        return {
            **common,
            "process_results": self.process_results,
            "metric_list": _METRICS,
            "generation_kwargs": {
                "until": _STOPS,
                "max_gen_toks": self.max_gen_toks,
                "do_sample": False,
                "temperature": 0.0,
            },
            "metadata": {"version": float(self.version), "extraction_version": EXTRACTION_VERSION},
        }


def _arithmetic_rows(split: str, n: int, seed: int) -> list[dict[str, Any]]:
    problems = arithmetic.generate_problems("test" if split == "test" else "train", n, seed)
    return [{"id": p.id, "question": p.question, "solution": p.solution, "answer": p.answer} for p in problems]


def _choice_rows(split: str, n: int, seed: int) -> list[dict[str, Any]]:
    problems = multiple_choice.generate_choice_problems("test" if split == "test" else "train", n, seed)
    return [{"id": p.id, "prompt": p.prompt(), "answer": p.answer} for p in problems]


def _arithmetic_choice_rows(split: str, n: int, seed: int) -> list[dict[str, Any]]:
    problems = arithmetic_mc.generate_choice_problems("test" if split == "test" else "train", n, seed)
    return [
        {"id": p.id, "question": p.question, "choices": list(p.choices), "label": p.label, "answer": p.answer}
        for p in problems
    ]


def arithmetic_results(doc: dict[str, Any], results: Sequence[str]) -> dict[str, float]:
    """lm-eval ``process_results``: ``exact_match`` and ``no_answer`` of one generated answer."""
    answer = extract_gsm8k_answer(results[0] if results else "")
    return {"exact_match": float(numbers_match(answer, str(doc["answer"]))), "no_answer": float(answer is None)}


def choice_results(doc: dict[str, Any], results: Sequence[str]) -> dict[str, float]:
    """lm-eval ``process_results``: ``exact_match`` and ``no_answer`` of one chosen letter."""
    letter = extract_choice(results[0] if results else "")
    return {"exact_match": float(letter == doc["answer"]), "no_answer": float(letter is None)}


BUILTIN_TASKS: dict[str, BuiltinTask] = {
    "capbench_arithmetic": BuiltinTask(
        name="capbench_arithmetic",
        version=arithmetic.ARITHMETIC_VERSION,
        seed=arithmetic.ARITHMETIC_SEED,
        description="GSM8K-format arithmetic word problems (#### N), numeric exact match",
        rows=_arithmetic_rows,
        extract=extract_gsm8k_answer,
        doc_to_text="Question: {{question}}\nAnswer:",
        doc_to_target="{{solution}}",
        process_results=arithmetic_results,
        max_gen_toks=48,
    ),
    "capbench_multiple_choice": BuiltinTask(
        name="capbench_multiple_choice",
        version=multiple_choice.MULTIPLE_CHOICE_VERSION,
        seed=multiple_choice.MULTIPLE_CHOICE_SEED,
        description="four-option questions (A-D), letter match without a capital-letter fallback",
        rows=_choice_rows,
        extract=extract_choice,
        doc_to_text="{{prompt}}",
        doc_to_target="{{answer}}",
        process_results=choice_results,
        max_gen_toks=16,
    ),
    "capbench_arithmetic_mc": BuiltinTask(
        name="capbench_arithmetic_mc",
        version=arithmetic_mc.ARITHMETIC_MC_VERSION,
        seed=arithmetic.ARITHMETIC_SEED,
        description="the arithmetic problems as four worked solutions, scored by log-likelihood (acc)",
        rows=_arithmetic_choice_rows,
        doc_to_text="Question: {{question}}\nAnswer:",
        doc_to_target="{{label}}",
        output_type="multiple_choice",
        doc_to_choice="{{choices}}",
    ),
}


def _write_bytes(f: IO[bytes], data: bytes) -> None:
    f.write(data)


def task_data(task: BuiltinTask, root: Path | None = None) -> tuple[dict[str, str], str]:
    """Write (or reuse) the task's ``test.jsonl`` and ``train.jsonl``; returns ``({split: path}, sha256)`` with
    the SHA-256 over both files' content (test first)."""
    folder = (root or cache_dir() / "tasks") / f"{task.name}-v{task.version}-s{task.seed}"
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    digest = hashlib.sha256()
    for split, size in (("test", TEST_SIZE), ("train", TRAIN_SIZE)):
        text = "".join(json.dumps(row, sort_keys=True) + "\n" for row in task.rows(split, size, task.seed))
        data = text.encode()
        path = folder / f"{split}.jsonl"
        if not path.is_file() or path.read_bytes() != data:
            replace_file(path, functools.partial(_write_bytes, data=data))
        files[split] = str(path)
        digest.update(data)
    return files, digest.hexdigest()
