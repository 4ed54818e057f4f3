"""Offline arithmetic word problems in GSM8K format, generated deterministically (standard library only).

Each problem is a one- or two-step word problem (shopping, apples, money, temperatures, distances, sharing
equally, ...) whose worked solution ends with GSM8K's answer marker, e.g. ``"12 + 7 = 19\\n#### 19"``. All
numbers are written as digits; arithmetic is exact (:class:`fractions.Fraction`), so every answer is an exact
terminating decimal in canonical form (``"19"``, ``"-5"``, ``"7.5"``: no trailing zeros, no ``+``, no commas).

The mix covers addition, subtraction, multiplication and exact division, with decimal quantities (prices like
``2.5`` or ``12.25``) and negative results (temperatures, balances, scores) each in well over 10% of problems.
Numbers stay small (mostly 1-99 for + and -, one factor 2-9 for x and /) so a tiny model can learn them.

Splits. A candidate problem belongs to the test split exactly when the SHA-256 of its question text falls in the
first :data:`TEST_FRACTION_PER_MILLE` of 1000 buckets; every other question belongs to train. The partition
depends on the question text only (not on the seed or on ``n``), so the two splits never share a question,
whatever seeds and sizes are drawn. Within a split the candidates come from ``random.Random`` seeded with
``f"capbench-arithmetic-v{version}-{seed}-{split}"``; the test split also drops repeated questions (the train split
keeps them: it is a sample with replacement). Questions in the two splits can share the underlying arithmetic
(the same numbers with another name or item), never the question text.

Any change to the templates, the word lists or the sampling changes the generated content and must bump
:data:`ARITHMETIC_VERSION`.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

ARITHMETIC_VERSION = "1"
"""Bump whenever the generated content (templates, word lists, sampling, split rule) would change."""

ARITHMETIC_SEED = 1234
"""The default seed of :func:`generate_problems`."""

PROMPT_TEMPLATE = "Question: {question}\nAnswer:"
"""The prompt of one problem, the same as lm-eval's ``gsm8k`` task; the target is ``" " + solution``."""

TEST_FRACTION_PER_MILLE = 100
"""Share (per 1000 hash buckets) of the question space reserved for the test split."""

Split = Literal["train", "test"]


@dataclass(frozen=True)
class ArithmeticProblem:
    """One word problem: its question, a GSM8K-style worked solution and the canonical answer."""

    id: str
    question: str
    solution: str
    answer: str


def format_number(value: Fraction) -> str:
    """``value`` as a canonical decimal string: ``"19"``, ``"-5"``, ``"7.5"``, ``"0.25"``.

    Raises:
        ValueError: ``value`` has no terminating decimal expansion.
    """
    den = value.denominator
    places = 0
    while (10**places) % den and places < 20:
        places += 1
    if (10**places) % den:
        raise ValueError(f"{value} has no terminating decimal expansion")
    sign = "-" if value < 0 else ""
    scaled = abs(value.numerator) * (10**places // den)
    if places == 0:
        return f"{sign}{scaled}"
    digits = str(scaled).rjust(places + 1, "0")
    whole, frac = digits[:-places], digits[-places:].rstrip("0")
    return f"{sign}{whole}.{frac}" if frac else f"{sign}{whole}"


def _n(value: Fraction | int) -> str:
    return format_number(Fraction(value))


NAMES = (
    "Tom", "Maria", "Ben", "Lily", "Sam", "Anna", "Leo", "Mia", "Jack", "Emma", "Noah", "Zoe", "Omar", "Ella",
    "Ravi", "Sofia", "Liam", "Nina", "Carlos", "Grace", "Hugo", "Aisha", "Ivan", "Julia",
)  # fmt: skip
COUNTABLES = ("apples", "marbles", "stickers", "cards", "pencils", "cookies", "shells", "stamps", "books", "eggs")
PRICED_ITEMS = ("notebook", "pen", "sandwich", "ticket", "toy car", "cup of tea", "muffin", "comic book", "kite")
CITIES = ("Oslo", "Denver", "Moscow", "Toronto", "Helsinki", "Chicago", "Calgary", "Boston")
GROUPS = ("children", "friends", "students", "players", "cousins", "teams", "classmates", "neighbours")


def _price(rng: random.Random, low: int, high: int, quarters: bool = True) -> Fraction:
    """A price from ``low`` to ``high`` dollars: whole, or with cents .5 (or .25/.75 when ``quarters``)."""
    whole = rng.randint(low, high)
    cents = rng.choice((0, 0, 50, 50, 25, 75) if quarters else (0, 50, 50))
    return Fraction(whole) + Fraction(cents, 100)


# Each template draws its numbers and returns (question, solution steps, answer). A step is "a op b = c".
_Drawn = tuple[str, list[str], Fraction]


def _step(a: Fraction | int, op: str, b: Fraction | int, result: Fraction) -> str:
    return f"{_n(a)} {op} {_n(b)} = {_n(result)}"


def _apples_gain(rng: random.Random) -> _Drawn:
    name, thing = rng.choice(NAMES), rng.choice(COUNTABLES)
    a, b = rng.randint(1, 99), rng.randint(1, 99)
    q = f"{name} has {a} {thing} and gets {b} more. How many {thing} does {name} have now?"
    return q, [_step(a, "+", b, Fraction(a + b))], Fraction(a + b)


def _give_away(rng: random.Random) -> _Drawn:
    name, thing = rng.choice(NAMES), rng.choice(COUNTABLES)
    a = rng.randint(2, 99)
    b = rng.randint(1, a - 1)
    q = f"{name} had {a} {thing} and gave away {b}. How many {thing} are left?"
    return q, [_step(a, "-", b, Fraction(a - b))], Fraction(a - b)


def _temperature_drop(rng: random.Random) -> _Drawn:
    city = rng.choice(CITIES)
    t, d = rng.randint(-15, 30), rng.randint(1, 40)
    q = f"It was {t} degrees in {city} at noon. By midnight it dropped by {d} degrees. What was the temperature then?"
    return q, [_step(t, "-", d, Fraction(t - d))], Fraction(t - d)


def _temperature_rise(rng: random.Random) -> _Drawn:
    city = rng.choice(CITIES)
    t, d = rng.randint(-30, 10), rng.randint(1, 30)
    q = f"It was {t} degrees in {city} at dawn. By noon it rose by {d} degrees. What was the temperature at noon?"
    return q, [_step(t, "+", d, Fraction(t + d))], Fraction(t + d)


def _bank_balance(rng: random.Random) -> _Drawn:
    name = rng.choice(NAMES)
    a = _price(rng, 1, 60, quarters=False)
    b = _price(rng, 1, 90, quarters=False)
    q = f"{name} had {_n(a)} dollars in the bank and paid a bill of {_n(b)} dollars. What is the balance now?"
    return q, [_step(a, "-", b, a - b)], a - b


def _game_score(rng: random.Random) -> _Drawn:
    name = rng.choice(NAMES)
    a, b = rng.randint(0, 60), rng.randint(1, 80)
    q = f"{name} had {a} points in a game and then lost {b} points. What is the score now?"
    return q, [_step(a, "-", b, Fraction(a - b))], Fraction(a - b)


def _shopping_total(rng: random.Random) -> _Drawn:
    name, item = rng.choice(NAMES), rng.choice(PRICED_ITEMS)
    price, count = _price(rng, 1, 12, quarters=False), rng.randint(2, 9)
    q = f"A {item} costs {_n(price)} dollars. How much does {name} pay for {count} of them?"
    return q, [_step(count, "*", price, count * price)], count * price


def _two_prices(rng: random.Random) -> _Drawn:
    item_a, item_b = rng.sample(PRICED_ITEMS, 2)
    a, b = _price(rng, 1, 40), _price(rng, 1, 40)
    q = f"A {item_a} costs {_n(a)} dollars and a {item_b} costs {_n(b)} dollars. How much do both cost?"
    return q, [_step(a, "+", b, a + b)], a + b


def _change(rng: random.Random) -> _Drawn:
    name, item = rng.choice(NAMES), rng.choice(PRICED_ITEMS)
    bill = rng.choice((10, 20, 50, 100))
    price = _price(rng, 1, bill - 1)
    q = f"{name} buys a {item} for {_n(price)} dollars and pays with {bill} dollars. How much is the change?"
    return q, [_step(bill, "-", price, bill - price)], bill - price


def _distance(rng: random.Random) -> _Drawn:
    vehicle = rng.choice(("car", "bus", "train", "cyclist", "boat"))
    speed, hours = rng.randint(2, 30), rng.randint(2, 9)
    q = f"A {vehicle} goes {speed} kilometers per hour. How far does it go in {hours} hours?"
    return q, [_step(speed, "*", hours, Fraction(speed * hours))], Fraction(speed * hours)


def _weekly_savings(rng: random.Random) -> _Drawn:
    name = rng.choice(NAMES)
    amount, weeks = rng.randint(2, 25), rng.randint(2, 9)
    q = f"{name} saves {amount} dollars a week. How much does {name} save in {weeks} weeks?"
    return q, [_step(amount, "*", weeks, Fraction(amount * weeks))], Fraction(amount * weeks)


def _share_equally(rng: random.Random) -> _Drawn:
    thing, group = rng.choice(COUNTABLES), rng.choice(GROUPS)
    k, each = rng.randint(2, 9), rng.randint(1, 20)
    total = k * each
    q = f"{total} {thing} are shared equally by {k} {group}. How many {thing} does each get?"
    return q, [_step(total, "/", k, Fraction(each))], Fraction(each)


def _pour_equally(rng: random.Random) -> _Drawn:
    drink = rng.choice(("juice", "water", "milk", "lemonade", "soup"))
    k, each = rng.randint(2, 6), Fraction(rng.randint(1, 30), 2)
    total = k * each
    q = f"{_n(total)} liters of {drink} fill {k} bottles equally. How many liters are in each bottle?"
    return q, [_step(total, "/", k, each)], each


def _bags_and_extra(rng: random.Random) -> _Drawn:
    name, thing = rng.choice(NAMES), rng.choice(COUNTABLES)
    start, bags, per_bag = rng.randint(1, 30), rng.randint(2, 5), rng.randint(2, 9)
    bought = bags * per_bag
    q = f"{name} has {start} {thing} and buys {bags} bags of {per_bag} {thing}. How many {thing} does {name} have now?"
    steps = [_step(bags, "*", per_bag, Fraction(bought)), _step(start, "+", bought, Fraction(start + bought))]
    return q, steps, Fraction(start + bought)


TEMPLATES: tuple[Callable[[random.Random], _Drawn], ...] = (
    _apples_gain,
    _give_away,
    _temperature_drop,
    _temperature_rise,
    _bank_balance,
    _game_score,
    _shopping_total,
    _two_prices,
    _change,
    _distance,
    _weekly_savings,
    _share_equally,
    _pour_equally,
    _bags_and_extra,
)
"""The problem templates, drawn with equal probability."""


def split_of(question: str) -> Split:
    """The split a question belongs to, from the SHA-256 of its text (independent of seed and size)."""
    bucket = int.from_bytes(hashlib.sha256(question.encode("utf-8")).digest()[:8], "big") % 1000
    return "test" if bucket < TEST_FRACTION_PER_MILLE else "train"


def generate_problems(split: Split, n: int, seed: int = ARITHMETIC_SEED) -> list[ArithmeticProblem]:
    """``n`` problems of ``split``, deterministic in ``(split, n, seed)`` and :data:`ARITHMETIC_VERSION`.

    The first ``m`` problems of a call with ``n >= m`` are the problems of the call with ``m``. Train and test
    never share a question (see the module doc). Ids are ``f"{split}-{index:04d}"``.

    Raises:
        ValueError: unknown split or negative ``n``.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    if n < 0:
        raise ValueError(f"n must be >= 0, not {n}")
    rng = random.Random(f"capbench-arithmetic-v{ARITHMETIC_VERSION}-{seed}-{split}")
    problems: list[ArithmeticProblem] = []
    seen: set[str] = set()
    while len(problems) < n:
        question, steps, answer = rng.choice(TEMPLATES)(rng)
        if split_of(question) != split:
            continue
        if split == "test":
            if question in seen:
                continue
            seen.add(question)
        text = format_number(answer)
        solution = "\n".join([*steps, f"#### {text}"])
        problems.append(
            ArithmeticProblem(id=f"{split}-{len(problems):04d}", question=question, solution=solution, answer=text)
        )
    return problems
