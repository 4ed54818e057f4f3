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

import itertools
from collections.abc import Iterable, Mapping
from typing import Any

from capbench.metrics.stats import ratio_or_none


def meets_slo(rec: Mapping[str, Any], slo: Mapping[str, float]) -> bool:
    """Whether one measured request met every bound of ``slo`` (module docstring)."""
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
    times = rec.get("token_times_ns") or []
    longest_gap_s = max((b - a for a, b in itertools.pairwise(times)), default=0) / 1e9
    return not ("itl_s" in slo and longest_gap_s > slo["itl_s"])


def goodput(requests: Iterable[Mapping[str, Any]], slo: Mapping[str, float], wall_s: float | None) -> dict[str, Any]:
    """Goodput figures (module docstring); ``None`` figures when no SLO is given or nothing was measured."""
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
    requests = list(requests)
    unknown = [
        r.get("id")
        for r in requests
        if not r.get("warmup") and r.get("error") is None and r.get("output_tokens") is None
    ]
    if "tpot_s" in slo and unknown:
        out["null_reason"] = (
            f"{len(unknown)} completed requests have no output token count, so their TPOT (and whether they "
            "meet tpot_s) is unknown"
        )
        return out
    measured = meeting = 0
    tokens: int | None = 0
    for rec in requests:
        if rec.get("warmup"):
            continue
        measured += 1
        if meets_slo(rec, slo):
            meeting += 1
            count = rec.get("output_tokens")
            tokens = None if tokens is None or count is None else tokens + int(count)
    if measured == 0:
        return out
    out["requests_meeting"] = meeting
    out["fraction"] = meeting / measured
    out["requests_per_s"] = ratio_or_none(meeting, wall_s)
    out["output_tokens_per_s"] = ratio_or_none(tokens, wall_s) if tokens is not None else None
    return out
