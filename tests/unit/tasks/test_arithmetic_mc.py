"""capbench_arithmetic_mc: the arithmetic problems as four worked solutions, exactly one right, scored by lm-eval
from log-likelihoods."""

from __future__ import annotations

import json
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pytest

from capbench.tasks.arithmetic import ARITHMETIC_SEED, generate_problems
from capbench.tasks.arithmetic_mc import NUM_CHOICES, generate_choice_problems, with_result
from capbench.tasks.builtin import BUILTIN_TASKS, TEST_SIZE, task_data


@pytest.fixture(scope="module")
def problems() -> list:
    return generate_choice_problems("test", 400, ARITHMETIC_SEED)


def test_one_right_solution_at_the_label(problems: list) -> None:
    originals = generate_problems("test", 400, ARITHMETIC_SEED)
    for problem, original in zip(problems, originals, strict=True):
        assert problem.question == original.question and problem.answer == original.answer
        assert len(problem.choices) == NUM_CHOICES == len(set(problem.choices))
        assert problem.choices[problem.label] == original.solution
        finals = [choice.rsplit("#### ", 1)[1] for choice in problem.choices]
        assert [Fraction(f) == Fraction(original.answer) for f in finals].count(True) == 1
        for choice, final in zip(problem.choices, finals, strict=True):
            # each distractor is the same worked steps with a wrong result, in the last step and the answer line
            assert choice == with_result(original.solution, final)


def test_labels_are_uniform_and_the_data_is_deterministic(problems: list) -> None:
    counts = Counter(p.label for p in problems)
    assert set(counts) == set(range(NUM_CHOICES)) and all(70 <= n <= 130 for n in counts.values()), counts
    assert generate_choice_problems("test", 400, ARITHMETIC_SEED) == problems
    assert generate_choice_problems("test", 400, ARITHMETIC_SEED + 1) != problems


def test_with_result_replaces_the_final_result_only() -> None:
    assert with_result("3 * 4 = 12\n12 + 5 = 17\n#### 17", "18") == "3 * 4 = 12\n12 + 5 = 18\n#### 18"
    with pytest.raises(ValueError, match="worked solution"):
        with_result("17", "18")


def test_the_task_config_is_lm_evals_multiple_choice(tmp_path: Path) -> None:
    task = BUILTIN_TASKS["capbench_arithmetic_mc"]
    files, _ = task_data(task, root=tmp_path)
    config = task.config(files)
    assert config["output_type"] == "multiple_choice"
    assert [m["metric"] for m in config["metric_list"]] == ["acc"]
    assert config["doc_to_choice"] == "{{choices}}" and config["doc_to_target"] == "{{label}}"
    rows = [json.loads(line) for line in Path(files["test"]).read_text(encoding="utf-8").splitlines()]
    assert len(rows) == TEST_SIZE
    assert all(row["choices"][row["label"]].endswith(f"#### {row['answer']}") for row in rows)
