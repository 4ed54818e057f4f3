"""Answer extraction (capbench.tasks.extract): tricky outputs, each a named case with the value it must give.

A false positive (crediting an answer the model did not clearly give) is worse than no answer, so ambiguous
outputs must extract None.
"""

from __future__ import annotations

import pytest

from capbench.tasks.extract import (
    canonical_number,
    extract_choice,
    extract_gsm8k_answer,
    numbers_match,
    strip_reasoning,
)

HARMONY_FAKE_THEN_REAL = (
    "<|channel|>analysis<|message|>Maybe #### 99?<|end|>"
    "<|start|>assistant<|channel|>final<|message|>3 + 4 = 7\n#### 7<|return|>"
)
HARMONY_ANALYSIS_ONLY = "<|channel|>analysis<|message|>I think #### 99<|end|>"

GSM8K_CASES = [
    pytest.param("#### 42", "42", id="plain"),
    pytest.param("3 + 4 = 7\n####    7", "7", id="marker-with-spaces"),
    pytest.param("####\n12", "12", id="marker-then-newline"),
    pytest.param("####42", "42", id="marker-no-space"),
    pytest.param("#### $18", "18", id="dollar"),
    pytest.param("#### $ 18", "18", id="dollar-space"),
    pytest.param("#### 1,234,567", "1234567", id="thousands-commas"),
    pytest.param("#### $1,234.50", "1234.5", id="dollar-commas-decimal"),
    pytest.param("#### 19.", "19", id="trailing-period"),
    pytest.param("#### 1,234.", "1234", id="commas-and-trailing-period"),
    pytest.param("#### −7", "-7", id="unicode-minus"),
    pytest.param("#### - 7", "-7", id="minus-then-space"),
    pytest.param("#### -3.25", "-3.25", id="negative-decimal"),
    pytest.param("#### −0.75", "-0.75", id="unicode-minus-decimal"),
    pytest.param("#### .5", "0.5", id="leading-dot"),
    pytest.param("#### 7.50", "7.5", id="trailing-zero-dropped"),
    pytest.param("#### 5.0", "5", id="point-zero-is-integer"),
    pytest.param("#### 007", "7", id="leading-zeros"),
    pytest.param("#### -0", "0", id="negative-zero"),
    pytest.param("#### 12 eggs", "12", id="unit-after-number"),
    pytest.param("#### 3\n#### 4", "3", id="two-markers-first-wins"),
    pytest.param("x = 5\n#### 5\nQuestion: y? #### 6", "5", id="continued-question-ignored"),
    pytest.param("####", None, id="marker-only"),
    pytest.param("#### none of them", None, id="marker-no-number"),
    pytest.param("#### , 5", None, id="marker-comma-number"),
    pytest.param("The answer is 42.", None, id="no-marker-no-fallback"),
    pytest.param("3 + 4 = 7, so 7 apples", None, id="numbers-but-no-marker"),
    pytest.param("", None, id="empty"),
    pytest.param("#### 1e5", None, id="exponent-not-a-truncated-1"),
    pytest.param("#### 12.5E-3", None, id="exponent-decimal"),
    pytest.param("<think>it is #### 9</think>#### 10", "10", id="think-marker-ignored"),
    pytest.param("<think>first</think><think>#### 9</think>\n#### 10", "10", id="two-think-blocks"),
    pytest.param("</think>#### 11", "11", id="close-tag-only"),
    pytest.param("<think>#### 9 and still thinking", None, id="unclosed-think"),
    pytest.param("#### 8 <think>but wait", "8", id="answer-before-unclosed-think"),
    pytest.param(HARMONY_FAKE_THEN_REAL, "7", id="harmony-final-channel"),
    pytest.param(HARMONY_ANALYSIS_ONLY, None, id="harmony-analysis-only"),
]


@pytest.mark.parametrize(("text", "expected"), GSM8K_CASES)
def test_extract_gsm8k_answer(text: str, expected: str | None) -> None:
    assert extract_gsm8k_answer(text) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("$1,234.50", "1234.5", id="money"),
        pytest.param("−7", "-7", id="unicode-minus"),
        pytest.param("-0.0", "0", id="negative-zero"),
        pytest.param("100", "100", id="no-exponent-form"),
        pytest.param("1E+2", "100", id="exponent-normalized"),
        pytest.param("abc", None, id="not-a-number"),
        pytest.param("NaN", None, id="nan"),
        pytest.param("Infinity", None, id="infinity"),
        pytest.param("", None, id="empty"),
    ],
)
def test_canonical_number(raw: str, expected: str | None) -> None:
    assert canonical_number(raw) == expected


@pytest.mark.parametrize(
    ("pred", "gold", "expected"),
    [
        pytest.param("7.5", "7.50", True, id="trailing-zero"),
        pytest.param("7.5", "7.6", False, id="different"),
        pytest.param("-5", "5", False, id="sign-matters"),
        pytest.param(None, "5", False, id="none-never-matches"),
        pytest.param("0", "-0", True, id="zero-negative-zero"),
        pytest.param("$1,000", "1000", True, id="formatted-pred"),
        pytest.param("abc", "5", False, id="unparsable-pred"),
        pytest.param("5", "abc", False, id="unparsable-gold"),
        # The default tolerance is an absolute 1e-6 with no relative part: a large near-miss is wrong.
        pytest.param("2000002", "2000000", False, id="big-near-miss-is-wrong"),
        pytest.param("2000000.0000005", "2000000", True, id="big-within-abs-tolerance"),
        pytest.param("-2000000", "2000000", False, id="big-sign-matters"),
        pytest.param("7.5000001", "7.5", True, id="within-abs-tolerance"),
        pytest.param("0.000000001", "0", True, id="abs-tolerance-at-zero"),
        pytest.param("0.000002", "0", False, id="outside-abs-tolerance-at-zero"),
    ],
)
def test_numbers_match(pred: str | None, gold: str, expected: bool) -> None:
    assert numbers_match(pred, gold) is expected


def test_numbers_match_explicit_tolerances() -> None:
    assert numbers_match("101", "100", rel_tol=0.01)
    assert not numbers_match("101.5", "100", rel_tol=0.01)
    assert numbers_match("0.4", "0", abs_tol=0.5)
    assert not numbers_match("0.6", "0", abs_tol=0.5)


CHOICE_CASES = [
    pytest.param("B", "B", id="bare-letter"),
    pytest.param(" B", "B", id="leading-space"),
    pytest.param("(C)", "C", id="parenthesised"),
    pytest.param("D.", "D", id="letter-period"),
    pytest.param("B) 45", "B", id="letter-paren-option"),
    pytest.param("A. 12", "A", id="letter-period-option"),
    pytest.param("B\nBecause 45 is the largest.", "B", id="letter-then-newline"),
    pytest.param("**B**", "B", id="markdown-bold"),
    pytest.param("The answer is (C).", "C", id="answer-is-parenthesised"),
    pytest.param("Answer: D", "D", id="answer-colon"),
    pytest.param("ANSWER: B", "B", id="answer-word-any-case"),
    pytest.param("So the answer is **A**.", "A", id="answer-is-bold"),
    pytest.param("The answer is not A. The answer is C", "C", id="last-explicit-wins"),
    pytest.param("Answer: A\nWait, no. Answer: C", "C", id="self-correction-last-wins"),
    pytest.param("B. Hmm, the answer is D", "D", id="explicit-beats-leading"),
    pytest.param("The answer is not A.", None, id="negated-only"),
    pytest.param("A car has four wheels", None, id="article-no-capital-fallback"),
    pytest.param("I think B is right", None, id="letter-inside-sentence"),
    pytest.param("B is right", None, id="leading-letter-in-sentence"),
    pytest.param("answer: b", None, id="lowercase-letter"),
    pytest.param("The answer is a", None, id="lowercase-after-answer-is"),
    pytest.param("E", None, id="letter-outside-range"),
    pytest.param("Answer: E", None, id="explicit-outside-range"),
    pytest.param("The answer is A1", None, id="letter-glued-to-digit"),
    pytest.param("Answer: Definitely B", None, id="word-between"),
    pytest.param("The answer is B or C", None, id="hedge-or"),
    pytest.param("The answer is (A) or (B).", None, id="hedge-parenthesised"),
    pytest.param("Answer: A/B", None, id="hedge-slash"),
    pytest.param("Answer: A, B", None, id="hedge-comma"),
    pytest.param("Answer: A and C", None, id="hedge-and"),
    pytest.param("A, B and C are all wrong", None, id="leading-list"),
    pytest.param("Answer: A or B? The answer is B.", "B", id="hedge-then-decision"),
    pytest.param("The answer is A, 12 is the largest", "A", id="comma-then-number-not-hedge"),
    pytest.param("The answer is A and the reason is simple", "A", id="and-then-word-not-hedge"),
    pytest.param("", None, id="empty"),
    pytest.param("<think>Answer: A</think>B", "B", id="reasoning-stripped"),
    pytest.param("<think>Answer: A</think>I am not sure", None, id="answer-only-in-reasoning"),
    pytest.param("<think>the answer is C", None, id="unclosed-think"),
    pytest.param(
        "<|channel|>analysis<|message|>Answer: A<|end|><|channel|>final<|message|>C<|return|>", "C", id="harmony"
    ),
]


@pytest.mark.parametrize(("text", "expected"), CHOICE_CASES)
def test_extract_choice(text: str, expected: str | None) -> None:
    assert extract_choice(text) == expected


def test_extract_choice_other_letters() -> None:
    assert extract_choice("Answer: E", letters="ABCDE") == "E"
    assert extract_choice("Answer: D", letters="ABC") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("<think>x</think>  answer  ", "answer", id="closed-think"),
        pytest.param("<think>a</think>b</think>c", "c", id="last-close-wins"),
        pytest.param("before<think>never closed", "before", id="unclosed"),
        pytest.param(HARMONY_FAKE_THEN_REAL, "3 + 4 = 7\n#### 7", id="harmony-final"),
        pytest.param(HARMONY_ANALYSIS_ONLY, "", id="harmony-analysis-only"),
        pytest.param(
            "<|channel|>final<|message|>one<|end|><|channel|>final<|message|>two<|return|>", "two", id="last-final"
        ),
        pytest.param("<|channel|>final <|constrain|>json<|message|>{}<|return|>", "{}", id="harmony-constrained-final"),
        pytest.param("plain text", "plain text", id="no-reasoning"),
    ],
)
def test_strip_reasoning(text: str, expected: str) -> None:
    assert strip_reasoning(text) == expected
