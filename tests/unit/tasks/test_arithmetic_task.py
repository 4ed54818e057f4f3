"""The offline arithmetic generator: deterministic, disjoint splits, exactly right answers, GSM8K format."""

from __future__ import annotations

import re
from decimal import Decimal
from fractions import Fraction

import pytest

from capbench.tasks.arithmetic import (
    ARITHMETIC_SEED,
    ARITHMETIC_VERSION,
    PROMPT_TEMPLATE,
    TEMPLATES,
    ArithmeticProblem,
    format_number,
    generate_problems,
    split_of,
)

_STEP = re.compile(r"^(-?\d+(?:\.\d+)?) ([-+*/]) (-?\d+(?:\.\d+)?) = (-?\d+(?:\.\d+)?)$")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_CANONICAL = re.compile(r"^-?(?:0|[1-9]\d*)(?:\.\d*[1-9])?$")


def _apply(a: Fraction, op: str, b: Fraction) -> Fraction:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    assert b != 0
    return a / b


@pytest.fixture(scope="module")
def train() -> list[ArithmeticProblem]:
    return generate_problems("train", 3000)


@pytest.fixture(scope="module")
def held_out() -> list[ArithmeticProblem]:
    return generate_problems("test", 1000)


def test_constants() -> None:
    assert PROMPT_TEMPLATE == "Question: {question}\nAnswer:"
    assert isinstance(ARITHMETIC_VERSION, str) and ARITHMETIC_VERSION
    assert isinstance(ARITHMETIC_SEED, int)
    assert 10 <= len(TEMPLATES) <= 15


def test_deterministic_and_prefix_stable() -> None:
    a = generate_problems("test", 200)
    assert a == generate_problems("test", 200)
    assert generate_problems("test", 50) == a[:50]
    assert generate_problems("train", 100, seed=7) == generate_problems("train", 100, seed=7)
    assert generate_problems("train", 100, seed=7) != generate_problems("train", 100, seed=8)


def test_ids_and_sizes() -> None:
    problems = generate_problems("test", 12)
    assert [p.id for p in problems] == [f"test-{i:04d}" for i in range(12)]
    assert generate_problems("train", 0) == []
    with pytest.raises(ValueError):
        generate_problems("valid", 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        generate_problems("train", -1)


def test_splits_are_disjoint(train: list[ArithmeticProblem], held_out: list[ArithmeticProblem]) -> None:
    test_questions = {p.question for p in held_out}
    assert len(test_questions) == len(held_out), "test questions are unique"
    assert not test_questions & {p.question for p in train}
    # Other seeds and sizes never cross the split either: membership is a function of the question text.
    other = generate_problems("train", 2000, seed=ARITHMETIC_SEED + 1)
    assert not test_questions & {p.question for p in other}
    assert all(split_of(p.question) == "test" for p in held_out)
    assert all(split_of(p.question) == "train" for p in other)


def test_answers_are_exact_by_recomputation(train: list[ArithmeticProblem], held_out: list[ArithmeticProblem]) -> None:
    for p in train + held_out:
        *steps, final = p.solution.split("\n")
        assert final == f"#### {p.answer}"
        assert 1 <= len(steps) <= 2
        known = set(_NUMBER.findall(p.question))  # every operand is in the question or an earlier result
        result = None
        for step in steps:
            match = _STEP.match(step)
            assert match, step
            a, op, b, c = match.groups()
            assert a in known and b in known, (step, p.question)
            result = _apply(Fraction(a), op, Fraction(b))
            assert result == Fraction(c), step
            known.add(c)
        assert result is not None and Fraction(p.answer) == result


def test_answers_are_canonical(train: list[ArithmeticProblem]) -> None:
    for p in train:
        assert _CANONICAL.match(p.answer), p.answer
        assert format(Decimal(p.answer).normalize(), "f") == p.answer or p.answer == "0"


def test_decimals_and_negatives_present(train: list[ArithmeticProblem], held_out: list[ArithmeticProblem]) -> None:
    for problems in (train, held_out):
        n = len(problems)
        assert sum("." in p.answer for p in problems) / n >= 0.10
        assert sum(p.answer.startswith("-") for p in problems) / n >= 0.10
        ops = {step.split(" ")[1] for p in problems for step in p.solution.split("\n")[:-1]}
        assert ops == {"+", "-", "*", "/"}


def test_questions_use_digits_and_small_numbers(train: list[ArithmeticProblem]) -> None:
    for p in train:
        assert p.question.endswith("?")
        assert "\n" not in p.question and "####" not in p.question
        numbers = [Fraction(x) for x in _NUMBER.findall(p.question)]
        assert numbers and all(abs(x) <= 200 for x in numbers)
    words = " ".join(p.question.lower() for p in train)
    assert not re.search(r"\b(one|two|three|four|five|six|seven|eight|nine|ten)\b", words)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Fraction(19), "19"),
        (Fraction(-5), "-5"),
        (Fraction(15, 2), "7.5"),
        (Fraction(3, 1), "3"),
        (Fraction(-1, 4), "-0.25"),
        (Fraction(0), "0"),
        (Fraction(4575, 100), "45.75"),
        (Fraction(1, 20), "0.05"),
    ],
)
def test_format_number(value: Fraction, text: str) -> None:
    assert format_number(value) == text


def test_format_number_rejects_non_terminating() -> None:
    with pytest.raises(ValueError):
        format_number(Fraction(1, 3))
