"""Did a fixed-length run get the lengths it asked for? Counted from the measured request records.

``run.json`` ``load.fixed_length`` holds the asked ``prompt_tokens`` and ``output_tokens`` (either may be null:
not fixed). For each fixed length this counts the successful measured requests whose recorded count differs
(``*_mismatches``) or is unknown (``*_unknown``, e.g. a server that reported no usage); ``exact`` is true only when
every successful measured request has exactly the asked counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def fixed_length_summary(manifest: Mapping[str, Any], requests: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """``summary.json`` ``fixed_length`` (None when the run was not in fixed-length mode)."""
    asked = (manifest.get("load") or {}).get("fixed_length")
    if not asked:
        return None
    out: dict[str, Any] = {"prompt_tokens": asked.get("prompt_tokens"), "output_tokens": asked.get("output_tokens")}
    records = [r for r in requests if not r.get("warmup") and r.get("error") is None]
    exact = bool(records)
    for key in ("prompt_tokens", "output_tokens"):
        want = asked.get(key)
        if want is None:
            out[f"{key}_mismatches"] = out[f"{key}_unknown"] = None
            continue
        unknown = sum(1 for r in records if r.get(key) is None)
        wrong = sum(1 for r in records if r.get(key) is not None and int(r[key]) != int(want))
        out[f"{key}_mismatches"], out[f"{key}_unknown"] = wrong, unknown
        exact = exact and wrong == 0 and unknown == 0
    out["requests"] = len(records)
    out["exact"] = exact
    return out
