"""Multi-turn runs: latency and prompt growth by turn.

``summary.json`` ``sessions`` (None unless the run's measured requests carry ``turn``, i.e. a multi-turn run):

- ``sessions``: measured sessions seen (distinct ``session_id``); ``sessions_failed``: those with a failed turn
  (a session ends at its first failure: there is no answer to continue from); ``sessions_cut``: sessions whose
  next turn fell due after the run's duration ended or the load stopped (the client report's
  ``follow_ups_dropped``; None without a client report);
- ``by_turn``: one entry per turn index ``k`` (0-based): ``requests`` (measured requests at that turn),
  ``errors``, ``ttft_s`` and ``prompt_tokens`` as :func:`capbench.metrics.stats.describe` stats over that
  turn's successful requests (``ttft_s`` = (t_first_token_ns − t_submit_ns) / 1e9, seconds; prompt tokens as
  counted for the request: the whole conversation so far, so they grow with ``k``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from capbench.metrics.stats import describe
from capbench.records.columns import MISSING, RequestChunk, request_chunks


class _Turn:
    def __init__(self) -> None:
        self.requests = self.errors = 0
        self.ttft: list[np.ndarray] = []
        self.prompt: list[np.ndarray] = []


class TurnTally:
    """:func:`turn_summary` over request chunks: per turn, counts and the TTFT and prompt-token columns."""

    def __init__(self) -> None:
        self.turns: dict[int, _Turn] = {}
        self.sessions: set[str] = set()
        self.failed_sessions: set[str] = set()

    def add(self, chunk: RequestChunk) -> None:
        if chunk.session_id is None:
            return
        rows = ~chunk.warmup & (chunk.turn != MISSING)
        for i in np.flatnonzero(rows):
            sid = str(chunk.session_id[i])
            self.sessions.add(sid)
            if chunk.failed[i]:
                self.failed_sessions.add(sid)
        submit, first, prompt = chunk.t_submit_ns, chunk.t_first_token_ns, chunk.prompt_tokens
        for k in np.unique(chunk.turn[rows]).tolist():
            mine = rows & (chunk.turn == k)
            turn = self.turns.setdefault(int(k), _Turn())
            turn.requests += int(mine.sum())
            ok = mine & ~chunk.failed
            turn.errors += int((mine & chunk.failed).sum())
            timed = ok & (first != MISSING)
            turn.ttft.append((first[timed] - submit[timed]) / 1e9)
            counted = ok & (prompt != MISSING)
            turn.prompt.append(prompt[counted])

    def result(self, client: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """``summary.json`` ``sessions`` (module docstring), or None for a run without sessions."""
        if not self.turns:
            return None
        turns = []
        for k in sorted(self.turns):
            turn = self.turns[k]
            turns.append(
                {
                    "turn": k,
                    "requests": turn.requests,
                    "errors": turn.errors,
                    "ttft_s": describe(np.concatenate(turn.ttft) if turn.ttft else np.empty(0)),
                    "prompt_tokens": describe(np.concatenate(turn.prompt) if turn.prompt else np.empty(0)),
                }
            )
        return {
            "sessions": len(self.sessions),
            "sessions_failed": len(self.failed_sessions),
            "sessions_cut": (client or {}).get("follow_ups_dropped"),
            "by_turn": turns,
        }


def turn_summary(requests: Iterable[Mapping[str, Any]], client: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``summary.json`` ``sessions`` (module docstring), or None for a run without sessions."""
    tally = TurnTally()
    for chunk in request_chunks(requests):
        tally.add(chunk)
    return tally.result(client)
