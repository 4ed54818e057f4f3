"""Answer extraction, the same for every scorer: reasoning stripped first, then a strict, documented pattern.

Versioned (:data:`EXTRACTION_VERSION`, recorded with every accuracy result): a change of wording or pattern can
move an accuracy figure by tens of points, so any change here bumps the version.

- :func:`strip_reasoning` removes reasoning text before any scorer sees an output: everything up to the last
  ``</think>`` (a ``<think>`` left open hides the rest: no answer), and harmony channel markup (only the text of
  the last ``final`` channel message is kept; reasoning-only output becomes empty).
- :func:`extract_gsm8k_answer`: the number after the first ``####`` (GSM8K's answer marker), thousands commas,
  ``$`` and a trailing period dropped, ``−`` read as a minus; None when there is no marker or no number after it
  (or the number is in exponent notation, ``1e5``).
  There is no "last number in the text" fallback.
- :func:`numbers_match`: exact decimal comparison within a tolerance ``|p − g| <= max(abs_tol, rel_tol·|g|)``;
  by default an absolute 1e-6 and no relative part, so a large near-miss (2000002 for 2000000) is wrong.
- :func:`extract_choice`: a multiple-choice letter (A–D by default), uppercase only, from an explicit statement
  (``Answer: B``, ``the answer is (C)``; the last one wins) or a response that starts with the letter standing
  alone (``B``, ``(B) 45``, ``B. 45``, ``B)``); None otherwise. There is no "any capital letter" fallback, so
  ``A car has ...`` gives no answer instead of ``A``. A hedge (a letter followed by ``or``, ``and``, ``/`` or
  ``,`` and another letter: ``the answer is B or C``, ``A, B``) states no answer.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

EXTRACTION_VERSION = "1"
"""Bump whenever any rule in this module changes what is extracted."""

_THINK_CLOSE = "</think>"
_THINK_OPEN = "<think>"
_FINAL_CHANNEL = re.compile(r"<\|channel\|>\s*final\s*(?:<\|constrain\|>[^<]*)?<\|message\|>")
_CHANNEL_END = re.compile(r"<\|(?:end|return|call)\|>")
_ANY_CHANNEL = re.compile(r"<\|channel\|>")

# Atomic group: no backtracking into the digits, so ``1e5`` or ``12e3`` (not a plain decimal) give no number
# instead of a truncated ``1``.
_NUMBER = r"[-−]?\s*\$?\s*(?>\d[\d,]*(?:\.\d+)?|\.\d+)(?![eE][-+]?\d)"
_GSM8K_ANSWER = re.compile(r"####\s*(" + _NUMBER + r")")


def strip_reasoning(text: str) -> str:
    """``text`` without reasoning: what follows the last ``</think>``; empty when a ``<think>`` is never closed;
    with harmony channels, the last ``final`` message (empty when there is none)."""
    if _THINK_CLOSE in text:
        text = text.rsplit(_THINK_CLOSE, 1)[1]
    elif _THINK_OPEN in text:
        text = text.split(_THINK_OPEN, 1)[0]  # reasoning never ended: only what came before it counts
    if _ANY_CHANNEL.search(text):
        finals = list(_FINAL_CHANNEL.finditer(text))
        if not finals:
            return ""
        text = text[finals[-1].end() :]
        end = _CHANNEL_END.search(text)
        if end:
            text = text[: end.start()]
    return text.strip()


def canonical_number(raw: str) -> str | None:
    """``raw`` (e.g. ``"$1,234.50"``, ``"−7"``) as a canonical decimal string (``"1234.5"``, ``"-7"``), or None."""
    cleaned = raw.replace("−", "-").replace("$", "").replace(",", "").replace(" ", "").rstrip(".")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def extract_gsm8k_answer(text: str) -> str | None:
    """The canonical number after the first ``####`` of the reasoning-stripped ``text``, or None."""
    match = _GSM8K_ANSWER.search(strip_reasoning(text))
    return canonical_number(match.group(1)) if match else None


def numbers_match(pred: str | None, gold: str, rel_tol: float = 0.0, abs_tol: float = 1e-6) -> bool:
    """Whether ``pred`` equals ``gold`` within ``|p − g| <= max(abs_tol, rel_tol·|g|)`` (None never matches)."""
    if pred is None:
        return False
    p, g = canonical_number(pred), canonical_number(gold)
    if p is None or g is None:
        return False
    diff = abs(Decimal(p) - Decimal(g))
    return diff <= max(Decimal(str(abs_tol)), Decimal(str(rel_tol)) * abs(Decimal(g)))


def _choice_patterns(letters: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    cls = "[" + re.escape(letters) + "]"
    # A letter followed by another one (``A or B``, ``(A)/(B)``, ``A, B``, ``A and B``) is a hedge, not an answer.
    hedge = r"(?!\)?\s*(?:,|/|\bor\b|\band\b)\s*\(?" + cls + r"\)?(?![A-Za-z0-9]))"
    explicit = re.compile(r"(?i:\banswer\b)(?:\s+is)?\s*[:\-]?\s*\(?(" + cls + r")" + hedge + r"\)?(?![A-Za-z0-9])")
    leading = re.compile(r"^\s*(?:\((" + cls + r")" + hedge + r"\)|(" + cls + r")" + hedge + r"(?:[.):,]|\s*$|\s*\n))")
    return explicit, leading


def extract_choice(text: str, letters: str = "ABCD") -> str | None:
    """The chosen letter in the reasoning-stripped ``text`` (uppercase only), or None (see the module doc)."""
    body = strip_reasoning(text).replace("*", "")
    explicit, leading = _choice_patterns(letters)
    stated = explicit.findall(body)
    if stated:
        return str(stated[-1])
    match = leading.match(body)
    if match:
        return match.group(1) or match.group(2)
    return None
