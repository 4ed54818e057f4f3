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

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from capbench.metrics.stats import describe


def turn_summary(requests: Iterable[Mapping[str, Any]], client: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``summary.json`` ``sessions`` (module docstring), or None for a run without sessions."""
    by_turn: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    failed_sessions: set[str] = set()
    sessions: set[str] = set()
    for r in requests:
        turn = r.get("turn")
        if r.get("warmup") or turn is None:
            continue
        by_turn[int(turn)].append(r)
        sid = str(r.get("session_id"))
        sessions.add(sid)
        if r.get("error") is not None:
            failed_sessions.add(sid)
    if not by_turn:
        return None
    turns = []
    for k in sorted(by_turn):
        ok = [r for r in by_turn[k] if r.get("error") is None]
        ttft = [(r["t_first_token_ns"] - r["t_submit_ns"]) / 1e9 for r in ok if r.get("t_first_token_ns") is not None]
        prompt = [int(r["prompt_tokens"]) for r in ok if r.get("prompt_tokens") is not None]
        turns.append(
            {
                "turn": k,
                "requests": len(by_turn[k]),
                "errors": len(by_turn[k]) - len(ok),
                "ttft_s": describe(ttft),
                "prompt_tokens": describe(prompt),
            }
        )
    cut = (client or {}).get("follow_ups_dropped")
    return {
        "sessions": len(sessions),
        "sessions_failed": len(failed_sessions),
        "sessions_cut": cut,
        "by_turn": turns,
    }
