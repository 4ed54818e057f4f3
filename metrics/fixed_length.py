"""Did a fixed-length run get the lengths it asked for? Counted from the measured request records.

``run.json`` ``load.fixed_length`` holds the asked ``prompt_tokens`` and ``output_tokens`` (either may be null:
not fixed). For each fixed length this counts the successful measured requests whose recorded count differs
(``*_mismatches``) or is unknown (``*_unknown``, e.g. a server that reported no usage); ``exact`` is true only when
every successful measured request has exactly the asked counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from capbench.records.columns import MISSING, RequestChunk, request_chunks


class FixedLengthTally:
    """Counts of :func:`fixed_length_summary` over request chunks."""

    def __init__(self, manifest: Mapping[str, Any]) -> None:
        self.asked = (manifest.get("load") or {}).get("fixed_length")
        self.requests = 0
        self.unknown = {"prompt_tokens": 0, "output_tokens": 0}
        self.wrong = {"prompt_tokens": 0, "output_tokens": 0}

    def add(self, chunk: RequestChunk) -> None:
        if not self.asked:
            return
        ok = ~chunk.warmup & ~chunk.failed
        self.requests += int(ok.sum())
        for key in ("prompt_tokens", "output_tokens"):
            want = self.asked.get(key)
            if want is None:
                continue
            values = getattr(chunk, key)[ok]
            known = values != MISSING
            self.unknown[key] += int((~known).sum())
            self.wrong[key] += int((values[known] != int(want)).sum())

    def result(self) -> dict[str, Any] | None:
        """``summary.json`` ``fixed_length`` (None when the run was not in fixed-length mode)."""
        asked = self.asked
        if not asked:
            return None
        out: dict[str, Any] = {"prompt_tokens": asked.get("prompt_tokens"), "output_tokens": asked.get("output_tokens")}
        exact = bool(self.requests)
        for key in ("prompt_tokens", "output_tokens"):
            if asked.get(key) is None:
                out[f"{key}_mismatches"] = out[f"{key}_unknown"] = None
                continue
            wrong, unknown = self.wrong[key], self.unknown[key]
            out[f"{key}_mismatches"], out[f"{key}_unknown"] = wrong, unknown
            exact = exact and wrong == 0 and unknown == 0
        out["requests"] = self.requests
        out["exact"] = exact
        return out


def fixed_length_summary(manifest: Mapping[str, Any], requests: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """``summary.json`` ``fixed_length`` (None when the run was not in fixed-length mode)."""
    tally = FixedLengthTally(manifest)
    if tally.asked:
        for chunk in request_chunks(requests):
            tally.add(chunk)
    return tally.result()
