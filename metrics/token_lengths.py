"""What a run really sent: the distribution of prompt and output tokens over its measured requests.

``summary.json`` ``workload``: ``name`` (``run.json`` ``load.dataset.name``), and for ``prompt_tokens`` and
``output_tokens`` the stats of :func:`capbench.metrics.stats.describe` (count, mean, p50, p90, p99, max, in
tokens) over the successful measured requests whose count is known (a request without a count is left out and
counted in ``*_unknown``; with none known the stats are empty: null, never 0).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from capbench.metrics.stats import describe


def token_length_summary(manifest: Mapping[str, Any], requests: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """``summary.json`` ``workload`` (module docstring)."""
    dataset = (manifest.get("load") or {}).get("dataset") or {}
    records = [r for r in requests if not r.get("warmup") and r.get("error") is None]
    out: dict[str, Any] = {"name": dataset.get("name")}
    for key in ("prompt_tokens", "output_tokens"):
        known = [int(r[key]) for r in records if r.get(key) is not None]
        out[key] = describe(known)
        out[f"{key}_unknown"] = len(records) - len(known)
    return out
