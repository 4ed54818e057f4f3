"""The arithmetic problems as four-way multiple choice, scored by log-likelihood (``capbench_arithmetic_mc``).

Each problem of :mod:`capbench.tasks.arithmetic` (same splits, same questions) gets four worked solutions: the
right one and three distractors that follow the same steps but end in a wrong result. A distractor replaces the
final result ``c`` in the last step (``a op b = c``) and in the answer line (``#### c``) by a wrong value drawn
from near misses of ``c``: ``c ± 1``, ``c ± 2``, ``c ± 10`` and ``-c`` (for a decimal answer ``c ± 0.25`` and
``c ± 0.5`` too), every one distinct and different from ``c``, written in the canonical form
(:func:`~capbench.tasks.arithmetic.format_number`). The right solution's position is drawn uniformly, so a
model that cannot tell them apart scores 25% on average.

lm-eval scores ``" " + choice`` after ``Question: ...\\nAnswer:`` for each choice (its default target
delimiter), and ``acc`` is 1 when the right choice has the highest log-likelihood. Everything is seeded
(``f"capbench-arithmetic-mc-v{version}-{seed}-{problem id}"``), so the data is the same on every machine; any
change to what is generated bumps :data:`ARITHMETIC_MC_VERSION`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from fractions import Fraction

from capbench.tasks.arithmetic import ArithmeticProblem, Split, format_number, generate_problems

ARITHMETIC_MC_VERSION = "1"
"""Bump whenever the generated choices would change."""

NUM_CHOICES = 4


@dataclass(frozen=True)
class ArithmeticChoiceProblem:
    """One problem with its four candidate solutions; ``label`` is the index of the right one."""

    id: str
    question: str
    choices: tuple[str, ...]
    label: int
    answer: str


def _near_misses(answer: Fraction) -> list[Fraction]:
    steps = [Fraction(1), Fraction(2), Fraction(10)]
    if answer.denominator != 1:
        steps += [Fraction(1, 4), Fraction(1, 2)]
    out = [answer + s for s in steps] + [answer - s for s in steps]
    if answer != 0:
        out.append(-answer)
    return [v for v in dict.fromkeys(out) if v != answer]


def with_result(solution: str, result: str) -> str:
    """``solution`` with its final result replaced by ``result``: after the last ``=`` of the last step and in
    the ``#### `` answer line."""
    *steps, marker = solution.split("\n")
    if not marker.startswith("#### ") or not steps or " = " not in steps[-1]:
        raise ValueError(f"not a worked solution ending in '#### N': {solution!r}")
    last = steps[-1].rsplit(" = ", 1)[0] + " = " + result
    return "\n".join([*steps[:-1], last, f"#### {result}"])


def choice_problem(problem: ArithmeticProblem, seed: int) -> ArithmeticChoiceProblem:
    """The four-choice form of ``problem`` (deterministic for a given ``seed``)."""
    rng = random.Random(f"capbench-arithmetic-mc-v{ARITHMETIC_MC_VERSION}-{seed}-{problem.id}")
    wrong = rng.sample(_near_misses(Fraction(problem.answer)), NUM_CHOICES - 1)
    label = rng.randrange(NUM_CHOICES)
    choices = [with_result(problem.solution, format_number(v)) for v in wrong]
    choices.insert(label, problem.solution)
    return ArithmeticChoiceProblem(
        id=problem.id, question=problem.question, choices=tuple(choices), label=label, answer=problem.answer
    )


def generate_choice_problems(split: Split, n: int, seed: int) -> list[ArithmeticChoiceProblem]:
    """The first ``n`` problems of ``split`` (:func:`~capbench.tasks.arithmetic.generate_problems`), as choices."""
    return [choice_problem(p, seed) for p in generate_problems(split, n, seed)]
