"""Multi-turn workloads: conversations served as sessions over a chat API.

A conversation is a list of turns, each a user message and the length of its reference answer in tokens. A
session serves one conversation turn by turn: turn ``k``'s request carries the whole conversation so far (every
earlier user message and the answer the server really gave to it) plus the new user message, so the prompt grows
turn by turn and its earlier part is exactly what the server has just seen (what a prefix cache can reuse). Turn
``k + 1`` is sent once turn ``k``'s answer has fully arrived, plus ``think_time_s``; a turn that fails ends its
session (there is no answer to continue from). In a closed loop the concurrency counts sessions: a session holds
its slot from its first turn's submission until its last answer, think times included.

Where conversations come from:

- ``sharegpt`` (:func:`sharegpt_conversations`): the file's conversations in the seeded order of the single-turn
  sampler; turn ``k`` is messages ``2k`` (user) and ``2k + 1`` (answer), roles not checked, as vLLM does for the
  first turn. A conversation is cut before its first turn whose user message or answer is under
  :data:`~capbench.workload.sharegpt.MIN_TOKENS` tokens, or that would take the whole conversation past
  :data:`~capbench.workload.sharegpt.MAX_TOTAL_TOKENS` (user messages + answers), or past ``max_turns``; one
  left with fewer than :data:`MIN_TURNS` turns is skipped (counted by reason in ``run.json``).
- ``random`` (:func:`synthetic_conversations`): ``turns`` turns each, user messages of token ids drawn from the
  tokenizer's safe pool and decoded to text (``"<seed>:turns:<c>:<k>"``), lengths from the run's distributions
  (``"<seed>:turns:<c>:<k>:lengths"``), so a seed gives the same conversations on every run.

Request ids are ``r0000``, ``r0001``, ... in the order requests are created (a session's later turns are
numbered when their turn comes); each request knows its session (``s0000``, ...) and turn (0-based). Warm-up
requests are the first turns of conversations of their own, sent as single requests.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from capbench.errors import ConfigError
from capbench.workload.lengths import LengthSpec
from capbench.workload.prompts import Prompt, Request

MIN_TURNS = 2
"""Fewest turns a ShareGPT conversation keeps to count as multi-turn."""


@dataclass(frozen=True)
class Turn:
    """One turn: the user's message, its length in tokens, and the reference answer's length in tokens."""

    user: str
    user_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class Conversation:
    """A conversation to serve as one session."""

    id: str
    turns: tuple[Turn, ...]

    @property
    def total_tokens(self) -> int:
        """Every user message and reference answer, in tokens: about the last turn's prompt + output."""
        return sum(t.user_tokens + t.output_tokens for t in self.turns)


@dataclass(frozen=True)
class SessionTurn:
    """Where a request sits in its session: the session's id, the conversation, the turn's index, and the
    messages before it (``(role, content)`` pairs, the answers as the server gave them)."""

    session_id: str
    conversation: Conversation
    turn: int
    history: tuple[tuple[str, str], ...] = ()

    @property
    def messages(self) -> list[dict[str, str]]:
        """The chat messages of this turn's request: the history, then the new user message."""
        out = [{"role": role, "content": content} for role, content in self.history]
        out.append({"role": "user", "content": self.conversation.turns[self.turn].user})
        return out


@dataclass
class Sessions:
    """The measured sessions of a run: first turns on demand (:meth:`first_turns`), later turns as answers
    arrive (:meth:`next_turn`); ids are numbered in creation order."""

    conversations: Sequence[Conversation]
    count: int | None
    """Sessions to serve; None: cycle ``conversations`` until the run's duration ends."""
    think_time_s: float = 0.0
    dataset_output_lengths: bool = True
    _ids: Iterator[int] = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        if not self.conversations:
            raise ConfigError("a multi-turn workload needs at least one conversation")
        if not self.think_time_s >= 0:
            raise ConfigError(f"think_time_s must be >= 0, got {self.think_time_s!r}")

    def _request(self, session: SessionTurn) -> Request:
        turn = session.conversation.turns[session.turn]
        rid = f"r{next(self._ids):04d}"
        prompt = Prompt(id=f"{session.conversation.id}#{session.turn}", text=turn.user)
        max_tokens = turn.output_tokens if self.dataset_output_lengths else None
        return Request(id=rid, prompt=prompt, warmup=False, max_tokens=max_tokens, session=session)

    def first_turns(self) -> Iterator[Request]:
        """Each session's first request, taken one at a time as sessions start."""
        for s in itertools.count() if self.count is None else range(self.count):
            conversation = self.conversations[s % len(self.conversations)]
            yield self._request(SessionTurn(f"s{s:04d}", conversation, 0))

    def next_turn(self, request: Request, answer: str | None) -> Request | None:
        """The request after ``request`` in its session, given the answer it got (None: it failed, so the
        session ends); None after the last turn."""
        session = request.session
        if session is None or answer is None or session.turn + 1 >= len(session.conversation.turns):
            return None
        user = session.conversation.turns[session.turn].user
        history = (*session.history, ("user", user), ("assistant", answer))
        return self._request(SessionTurn(session.session_id, session.conversation, session.turn + 1, history))

    def chosen(self) -> list[Conversation] | None:
        """The conversations the measured sessions serve, in order (None in duration mode: they cycle)."""
        if self.count is None:
            return None
        return [self.conversations[s % len(self.conversations)] for s in range(self.count)]

    @property
    def planned_requests(self) -> int | None:
        """Every measured request the sessions will send if none fails (None in duration mode)."""
        chosen = self.chosen()
        return None if chosen is None else sum(len(c.turns) for c in chosen)


def warmup_requests(conversations: Sequence[Conversation], outputs: bool) -> list[Request]:
    """Warm-up: the first turn of each of ``conversations`` as a single request ``w0000``, ``w0001``, ..."""
    out = []
    for i, c in enumerate(conversations):
        turn = c.turns[0]
        prompt = Prompt(id=f"{c.id}#0", text=turn.user)
        out.append(
            Request(id=f"w{i:04d}", prompt=prompt, warmup=True, max_tokens=turn.output_tokens if outputs else None)
        )
    return out


def synthetic_conversations(
    decode: Callable[[list[int]], str],
    draw: Callable[[str, int], list[int]],
    *,
    count: int,
    turns: int,
    user: LengthSpec,
    output: LengthSpec,
    seed: int,
    name: str = "turns",
) -> list[Conversation]:
    """``count`` conversations of ``turns`` turns (module docstring): ``draw(name, n)`` gives ``n`` seeded
    token ids, ``decode`` turns ids into the message text."""
    if turns < 1:
        raise ConfigError(f"turns must be >= 1, got {turns!r}")
    out = []
    for c in range(count):
        made = []
        for k in range(turns):
            rng = random.Random(f"{seed}:{name}:{c}:{k}:lengths")
            user_tokens, output_tokens = user.draw(rng), output.draw(rng)
            text = decode(draw(f"{seed}:{name}:{c}:{k}", user_tokens))
            made.append(Turn(text, user_tokens, output_tokens))
        out.append(Conversation(f"{name}{c:04d}", tuple(made)))
    return out


def conversation_turns(
    messages: list[Any],
    count_tokens: Callable[[str], int],
    *,
    min_tokens: int,
    max_total_tokens: int,
    max_turns: int | None,
) -> tuple[list[Turn], str | None]:
    """The turns kept from one ShareGPT conversation's messages, and why it was cut (None: it ran out).

    Turn ``k`` is messages ``2k`` and ``2k + 1``; the conversation is cut at the first malformed message, the
    first turn with a message under ``min_tokens`` tokens, the turn that would take the conversation past
    ``max_total_tokens``, or after ``max_turns`` turns.
    """
    kept: list[Turn] = []
    total = 0
    for k in range(len(messages) // 2):
        if max_turns is not None and k >= max_turns:
            return kept, None
        user, answer = messages[2 * k], messages[2 * k + 1]
        user_text = user.get("value") if isinstance(user, dict) else None
        answer_text = answer.get("value") if isinstance(answer, dict) else None
        if not isinstance(user_text, str) or not isinstance(answer_text, str):
            return kept, "malformed"
        user_tokens, output_tokens = count_tokens(user_text), count_tokens(answer_text)
        if user_tokens < min_tokens or output_tokens < min_tokens:
            return kept, "too_short"
        if total + user_tokens + output_tokens > max_total_tokens:
            return kept, "too_long"
        total += user_tokens + output_tokens
        kept.append(Turn(user_text, user_tokens, output_tokens))
    return kept, None
