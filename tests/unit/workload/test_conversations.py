"""Multi-turn conversations: sessions grow turn by turn from the answers really given, ShareGPT's conversations are
cut where the filters say, synthetic ones are seeded."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from capbench.errors import ConfigError
from capbench.workload.conversations import (
    Conversation,
    Sessions,
    Turn,
    conversation_turns,
    synthetic_conversations,
    warmup_requests,
)
from capbench.workload.lengths import LengthSpec
from capbench.workload.sharegpt import sample_sharegpt_conversations


class WordTokenizer:
    def __call__(self, text: str) -> dict[str, list[int]]:
        return {"input_ids": [len(word) for word in text.split()]}


def chat(i: int, *lengths: int) -> dict[str, Any]:
    """A ShareGPT conversation whose message ``k`` has ``lengths[k]`` words."""
    return {
        "id": f"c{i}",
        "conversations": [
            {"from": "human" if k % 2 == 0 else "gpt", "value": " ".join([f"m{k}"] * n)} for k, n in enumerate(lengths)
        ],
    }


def conversation(name: str, turns: int) -> Conversation:
    return Conversation(name, tuple(Turn(f"{name} says {k}", 3, 5 + k) for k in range(turns)))


def test_a_session_carries_the_conversation_so_far_with_the_answers_given() -> None:
    sessions = Sessions([conversation("a", 3), conversation("b", 1)], count=3, think_time_s=0.5)
    first = list(sessions.first_turns())
    assert [r.id for r in first] == ["r0000", "r0001", "r0002"]
    assert [r.session.session_id for r in first if r.session] == ["s0000", "s0001", "s0002"]
    a0 = first[0]
    assert a0.session is not None and a0.session.messages == [{"role": "user", "content": "a says 0"}]
    assert a0.max_tokens == 5 and not a0.warmup
    a1 = sessions.next_turn(a0, "first answer")
    assert a1 is not None and a1.id == "r0003" and a1.session is not None and a1.session.turn == 1
    assert a1.session.messages == [
        {"role": "user", "content": "a says 0"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "a says 1"},
    ]
    a2 = sessions.next_turn(a1, "second")
    assert a2 is not None and a2.session is not None and len(a2.session.messages) == 5 and a2.max_tokens == 7
    assert sessions.next_turn(a2, "third") is None  # the conversation's last turn
    assert sessions.next_turn(first[1], "x") is None  # a one-turn conversation
    assert sessions.next_turn(first[2], None) is None  # a failed turn ends its session
    assert sessions.planned_requests == 3 + 1 + 3
    chosen = sessions.chosen()
    assert chosen is not None and [c.id for c in chosen] == ["a", "b", "a"]
    assert max(c.total_tokens for c in chosen) == 3 * 3 + 5 + 6 + 7
    assert Sessions([conversation("a", 2)], count=None).planned_requests is None  # duration mode: endless


def test_without_dataset_output_lengths_the_model_stops_itself() -> None:
    sessions = Sessions([conversation("a", 2)], count=1, dataset_output_lengths=False)
    first = next(sessions.first_turns())
    assert first.max_tokens is None
    nxt = sessions.next_turn(first, "answer")
    assert nxt is not None and nxt.max_tokens is None


def test_sessions_refuse_nothing_to_serve_and_negative_think_times() -> None:
    with pytest.raises(ConfigError, match="at least one conversation"):
        Sessions([], count=1)
    with pytest.raises(ConfigError, match="think_time_s"):
        Sessions([conversation("a", 2)], count=1, think_time_s=-1.0)


def test_warmup_is_first_turns_as_single_requests() -> None:
    warm = warmup_requests([conversation("w", 3), conversation("v", 2)], outputs=True)
    assert [r.id for r in warm] == ["w0000", "w0001"] and all(r.warmup and r.session is None for r in warm)
    assert [r.prompt.text for r in warm] == ["w says 0", "v says 0"]


def test_synthetic_conversations_are_seeded_and_lengths_follow_the_spec() -> None:
    def draw(name: str, n: int) -> list[int]:
        return [random.Random(name).randrange(100) for _ in range(n)]

    def decode(ids: list[int]) -> str:
        return " ".join(map(str, ids))

    made = synthetic_conversations(
        decode,
        draw,
        count=4,
        turns=3,
        user=LengthSpec(20, "uniform", 0.5),
        output=LengthSpec(7),
        seed=1,
    )
    again = synthetic_conversations(
        decode, draw, count=4, turns=3, user=LengthSpec(20, "uniform", 0.5), output=LengthSpec(7), seed=1
    )
    other = synthetic_conversations(
        decode, draw, count=4, turns=3, user=LengthSpec(20, "uniform", 0.5), output=LengthSpec(7), seed=2
    )
    assert made == again and made != other
    assert all(len(c.turns) == 3 for c in made)
    assert all(10 <= t.user_tokens <= 30 and t.output_tokens == 7 for c in made for t in c.turns)
    assert all(len(t.user.split()) == t.user_tokens for c in made for t in c.turns)
    with pytest.raises(ConfigError, match="turns must be >= 1"):
        synthetic_conversations(decode, draw, count=1, turns=0, user=LengthSpec(2), output=LengthSpec(2), seed=0)


def count_words(text: str) -> int:
    return len(text.split())


@pytest.mark.parametrize(
    ("lengths", "max_turns", "kept", "reason"),
    [
        ((5, 6, 7, 8, 9, 10), None, 3, None),  # every pair
        ((5, 6, 7, 8, 9), None, 2, None),  # a trailing user message without an answer is not a turn
        ((5, 6, 7, 8, 9, 10), 2, 2, None),  # at most max_turns
        ((5, 6, 2, 8, 9, 10), None, 1, "too_short"),  # cut before the first turn under 4 tokens
        ((5, 6, 1000, 1040, 9, 10), None, 1, "too_long"),  # cut before the turn that passes 2,048 in all
    ],
)
def test_a_sharegpt_conversation_is_cut_where_the_filters_say(
    lengths: tuple[int, ...], max_turns: int | None, kept: int, reason: str | None
) -> None:
    messages = chat(0, *lengths)["conversations"]
    turns, why = conversation_turns(messages, count_words, min_tokens=4, max_total_tokens=2048, max_turns=max_turns)
    assert len(turns) == kept and why == reason
    assert [t.user_tokens for t in turns] == list(lengths[0 : 2 * kept : 2])
    assert [t.output_tokens for t in turns] == list(lengths[1 : 2 * kept : 2])


def test_sharegpt_conversations_keep_the_multi_turn_ones_in_the_seeded_order(tmp_path: Path) -> None:
    entries = [chat(i, 5, 6, 7, 8) for i in range(10)]
    entries += [chat(20, 5, 6), chat(21, 5, 2, 7, 8), chat(22, 5, 6, 7, 8, 9, 10)]
    path = tmp_path / "sharegpt.json"
    path.write_text(json.dumps(entries))
    sample = sample_sharegpt_conversations(str(path), WordTokenizer(), 11, seed=3, max_turns=None)
    order = list(entries)
    random.Random(3).shuffle(order)
    expected = [e["id"] for e in order if e["id"] not in ("c20", "c21")]
    assert [c.id for c in sample.conversations] == expected
    assert sample.skipped["too_few_turns"] == 1 and sample.skipped["too_short"] == 1
    assert sample.available == 13
    longest = next(c for c in sample.conversations if c.id == "c22")
    assert [t.user_tokens for t in longest.turns] == [5, 7, 9]
    again = sample_sharegpt_conversations(str(path), WordTokenizer(), 11, seed=3, max_turns=None)
    assert again.conversations == sample.conversations
    with pytest.raises(ConfigError, match="only 11 of 13 conversations have 2 or more turns"):
        sample_sharegpt_conversations(str(path), WordTokenizer(), 12, seed=3, max_turns=None)
