"""Goodput: the requests that met every given latency SLO, as a count, a fraction and a rate.

For a measured request and the SLO bounds given (any of ``ttft_s``, ``tpot_s``, ``itl_s``, ``e2e_latency_s``,
in seconds), the request *meets* the SLOs when it completed without error and:
- ``ttft_s``: (t_first_token_ns − t_submit_ns)/1e9 ≤ bound (a request with no first token fails it);
- ``tpot_s``: (t_done_ns − t_first_token_ns)/1e9/(output_tokens − 1) ≤ bound; a request with fewer than 2
  output tokens has no TPOT and cannot violate this bound;
- ``itl_s``: its largest gap between consecutive ``token_times_ns`` ≤ bound (no gaps: cannot violate);
- ``e2e_latency_s``: (t_done_ns − t_submit_ns)/1e9 ≤ bound.
Warm-up requests are excluded; errored requests count as not meeting.

A ``tpot_s`` bound with a completed request whose ``output_tokens`` is unknown makes every figure ``None``
(with ``null_reason``): whether that request met the bound cannot be known.

Figures: ``requests_meeting``; ``fraction`` = requests_meeting / measured requests; ``requests_per_s`` =
requests_meeting / wall_s; ``output_tokens_per_s`` = Σ output_tokens of meeting requests / wall_s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from capbench.metrics.stats import ratio_or_none
from capbench.records.columns import MISSING, RequestChunk, request_chunks
from capbench.records.token_times import longest_gap_ns


def meets_slo(rec: Mapping[str, Any], slo: Mapping[str, float]) -> bool:
    """Whether one measured request met every bound of ``slo`` (module docstring); a record of either schema."""
    if rec.get("error") is not None:
        return False
    submit, first, done = rec.get("t_submit_ns"), rec.get("t_first_token_ns"), rec.get("t_done_ns")
    if done is None or submit is None:
        return False
    if "e2e_latency_s" in slo and (done - submit) / 1e9 > slo["e2e_latency_s"]:
        return False
    if "ttft_s" in slo and (first is None or (first - submit) / 1e9 > slo["ttft_s"]):
        return False
    out = rec.get("output_tokens")
    if "tpot_s" in slo and first is not None and out is not None and out >= 2:
        tpot_s = (done - first) / 1e9 / (out - 1)
        if tpot_s > slo["tpot_s"]:
            return False
    return not ("itl_s" in slo and longest_gap_ns(rec) / 1e9 > slo["itl_s"])


def meeting_rows(chunk: RequestChunk, slo: Mapping[str, float]) -> np.ndarray:
    """:func:`meets_slo` for every row of a chunk, as a boolean column (the same float operations)."""
    submit, first, done, out = chunk.t_submit_ns, chunk.t_first_token_ns, chunk.t_done_ns, chunk.output_tokens
    ok = ~chunk.failed & (done != MISSING) & (submit != MISSING)
    if "e2e_latency_s" in slo:
        rows = np.flatnonzero(ok)
        ok[rows] = ~((done[rows] - submit[rows]) / 1e9 > slo["e2e_latency_s"])
    if "ttft_s" in slo:
        ok &= first != MISSING
        rows = np.flatnonzero(ok)
        ok[rows] = ~((first[rows] - submit[rows]) / 1e9 > slo["ttft_s"])
    if "tpot_s" in slo:
        rows = np.flatnonzero(ok & (first != MISSING) & (out != MISSING) & (out >= 2))
        ok[rows] = ~((done[rows] - first[rows]) / 1e9 / (out[rows] - 1) > slo["tpot_s"])
    if "itl_s" in slo:
        longest = np.where(chunk.gap_max_ns == MISSING, 0, chunk.gap_max_ns)
        ok &= ~(longest / 1e9 > slo["itl_s"])
    return ok


class GoodputTally:
    """:func:`goodput` over request chunks, fed in record order."""

    def __init__(self, slo: Mapping[str, float]) -> None:
        self.slo = dict(slo)
        self.measured = self.meeting = self.unknown = 0
        self.tokens: int | None = 0

    def add(self, chunk: RequestChunk) -> None:
        if not self.slo:
            return
        measured = ~chunk.warmup
        self.measured += int(measured.sum())
        self.unknown += int((measured & ~chunk.failed & (chunk.output_tokens == MISSING)).sum())
        meets = measured & meeting_rows(chunk, self.slo)
        self.meeting += int(meets.sum())
        counts = chunk.output_tokens[meets]
        if self.tokens is not None:
            self.tokens = None if (counts == MISSING).any() else self.tokens + int(counts.sum())

    def result(self, wall_s: float | None) -> dict[str, Any]:
        """Goodput figures (module docstring); ``None`` figures when no SLO is given or nothing was measured."""
        slo = self.slo
        out: dict[str, Any] = {
            "slo": dict(slo),
            "requests_meeting": None,
            "fraction": None,
            "requests_per_s": None,
            "output_tokens_per_s": None,
            "null_reason": None,
        }
        if not slo:
            out["null_reason"] = "no SLO given"
            return out
        if "tpot_s" in slo and self.unknown:
            out["null_reason"] = (
                f"{self.unknown} completed requests have no output token count, so their TPOT (and whether they "
                "meet tpot_s) is unknown"
            )
            return out
        if self.measured == 0:
            return out
        out["requests_meeting"] = self.meeting
        out["fraction"] = self.meeting / self.measured
        out["requests_per_s"] = ratio_or_none(self.meeting, wall_s)
        out["output_tokens_per_s"] = ratio_or_none(self.tokens, wall_s) if self.tokens is not None else None
        return out


def goodput(requests: Iterable[Mapping[str, Any]], slo: Mapping[str, float], wall_s: float | None) -> dict[str, Any]:
    """Goodput figures (module docstring); ``None`` figures when no SLO is given or nothing was measured."""
    tally = GoodputTally(slo)
    if slo:
        for chunk in request_chunks(requests):
            tally.add(chunk)
    return tally.result(wall_s)
