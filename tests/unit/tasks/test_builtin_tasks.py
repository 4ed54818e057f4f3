"""capbench's offline tasks: the multiple-choice generator, the data files, and the lm-eval scoring functions."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from capbench.tasks.builtin import (
    BUILTIN_TASKS,
    TEST_SIZE,
    TRAIN_SIZE,
    arithmetic_results,
    choice_results,
    task_data,
)
from capbench.tasks.multiple_choice import LETTERS, ChoiceProblem, generate_choice_problems

_SUM = re.compile(r"^What is (\d+) \+ (\d+)\?$")
_DIFFERENCE = re.compile(r"^What is (\d+) - (\d+)\?$")
_SEQUENCE = re.compile(r"^Which number comes next: ((?:\d+, )+)\.\.\.\?$")


def _right_value(problem: ChoiceProblem) -> int:
    """The right option's value, recomputed from the question text alone (and the options, for extremes)."""
    q = problem.question
    values = [int(c) for c in problem.choices]
    if q == "Which number is the largest?":
        return max(values)
    if q == "Which number is the smallest?":
        return min(values)
    if m := _SUM.match(q):
        return int(m.group(1)) + int(m.group(2))
    if m := _DIFFERENCE.match(q):
        return int(m.group(1)) - int(m.group(2))
    if m := _SEQUENCE.match(q):
        shown = [int(x) for x in m.group(1).rstrip(", ").split(", ")]
        steps = {b - a for a, b in itertools.pairwise(shown)}
        assert len(steps) == 1, f"not an arithmetic sequence: {q}"
        return shown[-1] + steps.pop()
    raise AssertionError(f"unknown kind of question: {q!r}")


def _kind(problem: ChoiceProblem) -> str:
    q = problem.question
    if "largest" in q:
        return "largest"
    if "smallest" in q:
        return "smallest"
    if _SUM.match(q):
        return "sum"
    if _DIFFERENCE.match(q):
        return "difference"
    return "sequence"


@pytest.fixture(scope="module")
def test_problems() -> list[ChoiceProblem]:
    return generate_choice_problems("test", 400)


@pytest.fixture(scope="module")
def train_problems() -> list[ChoiceProblem]:
    return generate_choice_problems("train", TRAIN_SIZE)


def test_choice_generator_is_deterministic(test_problems: list[ChoiceProblem]) -> None:
    assert generate_choice_problems("test", 400) == test_problems
    assert generate_choice_problems("test", 50) == test_problems[:50]  # a prefix: n does not reshuffle
    other_seed = generate_choice_problems("test", 50, seed=7)
    assert other_seed != test_problems[:50]


def test_every_kind_is_generated(test_problems: list[ChoiceProblem]) -> None:
    kinds = Counter(_kind(p) for p in test_problems)
    assert set(kinds) == {"largest", "smallest", "sum", "difference", "sequence"}
    assert all(count >= 20 for count in kinds.values()), kinds


@pytest.mark.parametrize("split", ["train", "test"])
def test_answer_letter_points_at_the_right_option(split: str) -> None:
    problems = generate_choice_problems(split, 400)  # type: ignore[arg-type]
    for p in problems:
        assert p.answer in LETTERS
        assert len(p.choices) == 4 and len(set(p.choices)) == 4, p
        right = _right_value(p)
        assert p.choices[LETTERS.index(p.answer)] == str(right), p
        assert [c for c in p.choices if c == str(right)] == [str(right)], p
        assert p.id == f"{split}-{problems.index(p):04d}"


def test_prompt_format() -> None:
    p = ChoiceProblem(id="x", question="Which number is the largest?", choices=("12", "45", "7", "30"), answer="B")
    assert p.prompt() == "Question: Which number is the largest?\nA. 12\nB. 45\nC. 7\nD. 30\nAnswer:"


def test_train_and_test_share_no_item(test_problems: list[ChoiceProblem], train_problems: list[ChoiceProblem]) -> None:
    def key(p: ChoiceProblem) -> tuple[str, tuple[str, ...]]:
        return p.question, p.choices

    test_keys = [key(p) for p in test_problems]
    assert len(set(test_keys)) == len(test_keys)  # no repeat inside a split either
    assert not set(test_keys) & {key(p) for p in train_problems}


def test_test_questions_with_a_fixed_answer_are_not_in_train(
    test_problems: list[ChoiceProblem], train_problems: list[ChoiceProblem]
) -> None:
    train_questions = {p.question for p in train_problems}
    fixed_answer = [p for p in test_problems[:TEST_SIZE] if _kind(p) in ("sum", "difference", "sequence")]
    assert not [p.question for p in fixed_answer if p.question in train_questions]


@pytest.mark.parametrize("split", ["train", "test"])
def test_letters_roughly_balanced(split: str) -> None:
    counts = Counter(p.answer for p in generate_choice_problems(split, 400))  # type: ignore[arg-type]
    assert set(counts) == set(LETTERS)
    assert all(70 <= counts[letter] <= 130 for letter in LETTERS), counts  # 100 expected, sd ~8.7


@pytest.mark.parametrize("name", sorted(BUILTIN_TASKS))
def test_task_data_is_reproducible(name: str, tmp_path: Path) -> None:
    task = BUILTIN_TASKS[name]
    files, sha = task_data(task, root=tmp_path / "a")
    folder = tmp_path / "a" / f"{task.name}-v{task.version}-s{task.seed}"
    assert files == {"test": str(folder / "test.jsonl"), "train": str(folder / "train.jsonl")}
    contents = {split: Path(path).read_bytes() for split, path in files.items()}
    assert sha == hashlib.sha256(contents["test"] + contents["train"]).hexdigest()
    tests = [json.loads(line) for line in contents["test"].splitlines()]
    trains = [json.loads(line) for line in contents["train"].splitlines()]
    assert (len(tests), len(trains)) == (TEST_SIZE, TRAIN_SIZE)
    assert all(row["answer"] for row in tests)

    # Twice in the same place: same sha, and the identical files are left alone (not rewritten).
    inodes = {split: Path(path).stat().st_ino for split, path in files.items()}
    files_again, sha_again = task_data(task, root=tmp_path / "a")
    assert (files_again, sha_again) == (files, sha)
    assert {split: Path(path).stat().st_ino for split, path in files.items()} == inodes

    # Elsewhere: byte-identical files.
    files_b, sha_b = task_data(task, root=tmp_path / "b")
    assert sha_b == sha
    assert {split: Path(path).read_bytes() for split, path in files_b.items()} == contents

    # A damaged file is rewritten whole.
    Path(files["test"]).write_text("garbage\n", encoding="utf-8")
    _, sha_fixed = task_data(task, root=tmp_path / "a")
    assert sha_fixed == sha and Path(files["test"]).read_bytes() == contents["test"]
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_multiple_choice_rows_match_the_generator(tmp_path: Path) -> None:
    files, _ = task_data(BUILTIN_TASKS["capbench_multiple_choice"], root=tmp_path)
    rows = [json.loads(line) for line in Path(files["test"]).read_text(encoding="utf-8").splitlines()]
    problems = generate_choice_problems("test", TEST_SIZE)
    assert [(r["id"], r["prompt"], r["answer"]) for r in rows] == [(p.id, p.prompt(), p.answer) for p in problems]


def test_arithmetic_rows_end_with_their_answer(tmp_path: Path) -> None:
    files, _ = task_data(BUILTIN_TASKS["capbench_arithmetic"], root=tmp_path)
    for line in Path(files["test"]).read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        assert row["solution"].endswith(f"#### {row['answer']}")
        assert BUILTIN_TASKS["capbench_arithmetic"].extract(row["solution"]) == row["answer"]


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        pytest.param(["3 + 4 = 7\n#### 7"], {"exact_match": 1.0, "no_answer": 0.0}, id="right"),
        pytest.param(["#### 7.0"], {"exact_match": 1.0, "no_answer": 0.0}, id="right-other-form"),
        pytest.param(["3 + 4 = 8\n#### 8"], {"exact_match": 0.0, "no_answer": 0.0}, id="wrong"),
        pytest.param(["The answer is 7"], {"exact_match": 0.0, "no_answer": 1.0}, id="no-marker"),
        pytest.param([""], {"exact_match": 0.0, "no_answer": 1.0}, id="empty"),
        pytest.param([], {"exact_match": 0.0, "no_answer": 1.0}, id="no-result"),
    ],
)
def test_arithmetic_results(results: list[str], expected: dict[str, float]) -> None:
    assert arithmetic_results({"answer": "7"}, results) == expected


def test_arithmetic_results_numeric_gold() -> None:
    assert arithmetic_results({"answer": -2.5}, ["#### −2.50"]) == {"exact_match": 1.0, "no_answer": 0.0}


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        pytest.param([" B"], {"exact_match": 1.0, "no_answer": 0.0}, id="right"),
        pytest.param(["The answer is (B)."], {"exact_match": 1.0, "no_answer": 0.0}, id="right-explicit"),
        pytest.param([" C"], {"exact_match": 0.0, "no_answer": 0.0}, id="wrong"),
        pytest.param(["Because B is big"], {"exact_match": 0.0, "no_answer": 1.0}, id="no-letter"),
        pytest.param(["B or C"], {"exact_match": 0.0, "no_answer": 1.0}, id="hedge"),
        pytest.param([""], {"exact_match": 0.0, "no_answer": 1.0}, id="empty"),
        pytest.param([], {"exact_match": 0.0, "no_answer": 1.0}, id="no-result"),
    ],
)
def test_choice_results(results: list[str], expected: dict[str, float]) -> None:
    assert choice_results({"answer": "B"}, results) == expected


@pytest.mark.parametrize("name", ["capbench_arithmetic", "capbench_multiple_choice"])
def test_configs_score_with_the_task_functions(name: str) -> None:
    task = BUILTIN_TASKS[name]
    config = task.config({"test": "t.jsonl", "train": "r.jsonl"})
    assert config["task"] == name
    assert config["output_type"] == "generate_until"
    assert config["dataset_kwargs"] == {"data_files": {"test": "t.jsonl", "train": "r.jsonl"}}
    expected = arithmetic_results if name == "capbench_arithmetic" else choice_results
    assert config["process_results"] is expected
    assert [m["metric"] for m in config["metric_list"]] == ["exact_match", "no_answer"]
