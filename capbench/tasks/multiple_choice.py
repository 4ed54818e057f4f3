"""The offline multiple-choice task's data: questions with four options A–D and exactly one right letter.

Generated programmatically from a fixed seed (standard library only), so every answer is exact and the data is
the same on every machine. Kinds of question: the largest or smallest of four numbers, the result of a sum or a
difference, and the number that comes next in a step sequence. Each has four distinct options; the right one's
position is drawn uniformly, so always answering one letter scores about 25%. Train and test are disjoint by a
hash partition of each question's content (:func:`split_of`).

Prompt (``PROMPT_TEMPLATE``)::

    Question: Which number is the largest?
    A. 12
    B. 45
    C. 7
    D. 30
    Answer:

and the target is the letter (``B``). Any change to what is generated bumps :data:`MULTIPLE_CHOICE_VERSION`.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Literal

MULTIPLE_CHOICE_VERSION = "1"
MULTIPLE_CHOICE_SEED = 20261122
TEST_PER_MILLE = 200
"""Share (per 1000 hash buckets of :func:`content_key`) of the question space reserved for the test split."""
LETTERS = "ABCD"
PROMPT_TEMPLATE = "Question: {question}\n{options}\nAnswer:"


@dataclass(frozen=True)
class ChoiceProblem:
    """One question: ``choices`` in letter order, ``answer`` the right letter."""

    id: str
    question: str
    choices: tuple[str, str, str, str]
    answer: str

    def prompt(self) -> str:
        options = "\n".join(f"{letter}. {choice}" for letter, choice in zip(LETTERS, self.choices, strict=True))
        return PROMPT_TEMPLATE.format(question=self.question, options=options)


def _distinct(rng: random.Random, right: int, low: int, high: int) -> list[int]:
    """``right`` plus three other distinct integers in [low, high]."""
    values = {right}
    while len(values) < 4:
        values.add(rng.randint(low, high))
    others = sorted(values - {right})
    return [right, *others]


def _extreme(rng: random.Random, largest: bool) -> tuple[str, int, list[int]]:
    values = rng.sample(range(1, 100), 4)
    right = max(values) if largest else min(values)
    return f"Which number is the {'largest' if largest else 'smallest'}?", right, values


def _sum_or_difference(rng: random.Random) -> tuple[str, int, list[int]]:
    a, b = rng.randint(2, 60), rng.randint(2, 60)
    if rng.random() < 0.5:
        question, right = f"What is {a} + {b}?", a + b
    else:
        question, right = f"What is {a} - {b}?", a - b
    near = [right + d for d in rng.sample([-10, -2, -1, 1, 2, 10], 3)]
    return question, right, [right, *near]


def _next_in_sequence(rng: random.Random) -> tuple[str, int, list[int]]:
    start, step = rng.randint(1, 99), rng.randint(2, 12)
    shown = [start + i * step for i in range(4)]
    right = start + 4 * step
    return f"Which number comes next: {', '.join(map(str, shown))}, ...?", right, _distinct(rng, right, 1, right + 20)


def _one(rng: random.Random) -> tuple[str, int, list[int]]:
    kind = rng.randrange(4)
    if kind < 2:
        return _extreme(rng, largest=kind == 0)
    if kind == 2:
        return _sum_or_difference(rng)
    return _next_in_sequence(rng)


def content_key(question: str, choices: tuple[str, ...]) -> str:
    """What makes two questions the same: the text when it holds its numbers (its answer then follows from it),
    else the text with the set of options (``Which number is the largest?`` over 12, 45, 7, 30 in any order)."""
    if any(ch.isdigit() for ch in question):
        return question
    return question + "|" + ",".join(sorted(choices, key=int))


def split_of(key: str) -> str:
    """``test`` when the key's SHA-256 falls in the first :data:`TEST_PER_MILLE` of 1000 buckets, else ``train``."""
    bucket = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 1000
    return "test" if bucket < TEST_PER_MILLE else "train"


def generate_choice_problems(
    split: Literal["train", "test"], n: int, seed: int = MULTIPLE_CHOICE_SEED
) -> list[ChoiceProblem]:
    """``n`` problems of ``split``. A candidate belongs to the split its :func:`content_key` hashes to, so the
    two splits never share a question (nor the same options for a question without numbers), whatever the seed
    and sizes; the test split also has no repeats."""
    rng = random.Random(f"capbench-multiple-choice-v{MULTIPLE_CHOICE_VERSION}-{seed}-{split}")
    problems: list[ChoiceProblem] = []
    seen: set[str] = set()
    while len(problems) < n:
        question, right, values = _one(rng)
        rng.shuffle(values)
        choices = tuple(str(v) for v in values)
        key = content_key(question, choices)
        if split_of(key) != split or (split == "test" and key in seen):
            continue
        seen.add(key)
        problems.append(
            ChoiceProblem(
                id=f"{split}-{len(problems):04d}",
                question=question,
                choices=(choices[0], choices[1], choices[2], choices[3]),
                answer=LETTERS[values.index(right)],
            )
        )
    return problems
