"""Client-observed request latency and throughput from ``requests.jsonl`` (pitfalls.md §6 names).

Request classes: *warm-up* (``warmup: true``; excluded from everything but the counts, whatever its size),
*measured* (not warm-up), *errored* (measured, ``error`` not null: counted, excluded from latency and
throughput), *completed* (measured, not errored). All times in seconds, from the run's one monotonic clock.

Per completed request:
- ``ttft_s`` = (t_first_token_ns − t_submit_ns) / 1e9: client-observed time to first token, queueing included
  (requests with no first token, e.g. zero output tokens, have none);
- ``e2e_latency_s`` = (t_done_ns − t_submit_ns) / 1e9;
- ``tpot_s`` = (e2e_latency_s − ttft_s) / (output_tokens − 1) = (t_done_ns − t_first_token_ns) / 1e9 /
  (output_tokens − 1), only for output_tokens ≥ 2;
- ``itl_s``: the gaps (t_{j+1} − t_j) / 1e9 between consecutive ``token_times_ns`` entries (one per streamed
  chunk), pooled over all requests that give them; a request without ``token_times_ns`` adds nothing.

Run level: ``wall_s`` from the first measured submit to the last measured done (errored requests included:
they occupied the server); ``requests_per_s`` = completed / wall_s; ``input_tokens`` and ``output_tokens``
sum completed requests' prompt and output tokens, and ``*_per_s`` divide them by wall_s;
``tokens_per_s_per_user`` = 1 / (p50 of ``tpot_s``): the decode speed the median stream saw after its first token
(None without a TPOT). The scorer adds ``output_tokens_per_s_per_gpu`` = output_tokens_per_s / GPUs serving the
run (None when their number is unknown).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from capbench.errors import CapbenchError
from capbench.metrics.stats import FloatColumn, ratio_or_none
from capbench.records.columns import MISSING, RequestChunk, request_chunks

LATENCY_KEYS: tuple[str, ...] = ("ttft_s", "tpot_s", "itl_s", "e2e_latency_s")


class LatencyTally:
    """:func:`request_metrics` over request chunks: counts and sums kept, one float column per distribution
    (TTFT, TPOT, e2e, ITL gaps; in memory up to a threshold, then spilled to a temporary file: memory bounded
    however long the run), nothing per record else. Chunks must be fed in record order."""

    def __init__(self) -> None:
        self.total = self.warmup = self.errors = self.completed = 0
        self.input_tokens = self.output_tokens = 0
        self.input_missing = self.output_missing = 0
        self.first_submit: int | None = None
        self.last_done: int | None = None
        self.ttft = FloatColumn()
        self.tpot = FloatColumn()
        self.e2e = FloatColumn()
        self.itl = FloatColumn()

    def add(self, chunk: RequestChunk) -> None:
        self.total += chunk.size
        warm = chunk.warmup
        self.warmup += int(warm.sum())
        measured = ~warm
        if not measured.any():
            return
        submit, done, first = chunk.t_submit_ns, chunk.t_done_ns, chunk.t_first_token_ns
        _check_times(chunk, measured)
        has_done = measured & (done != MISSING)
        sub = submit[measured]
        low = int(sub.min())
        self.first_submit = low if self.first_submit is None else min(self.first_submit, low)
        if has_done.any():
            high = int(done[has_done].max())
            self.last_done = high if self.last_done is None else max(self.last_done, high)
        failed = measured & chunk.failed
        self.errors += int(failed.sum())
        ok = measured & ~chunk.failed
        self.completed += int(ok.sum())
        for column, name in ((chunk.prompt_tokens, "input"), (chunk.output_tokens, "output")):
            values = column[ok]
            known = values != MISSING
            setattr(self, f"{name}_missing", getattr(self, f"{name}_missing") + int((~known).sum()))
            setattr(self, f"{name}_tokens", getattr(self, f"{name}_tokens") + int(values[known].sum()))
        self.e2e.extend((done[ok] - submit[ok]) / 1e9)
        timed = ok & (first != MISSING)
        self.ttft.extend((first[timed] - submit[timed]) / 1e9)
        out = chunk.output_tokens
        decoded = timed & (out != MISSING) & (out >= 2)
        self.tpot.extend((done[decoded] - first[decoded]) / 1e9 / (out[decoded] - 1))
        self.itl.extend(chunk.gaps_of(ok & (chunk.token_events >= 2)) / 1e9)

    def result(self) -> dict[str, Any]:
        """``{"requests", "throughput", "latency"}`` (module docstring)."""
        first_submit, last_done, completed = self.first_submit, self.last_done, self.completed
        measured = self.total - self.warmup
        wall_s = (last_done - first_submit) / 1e9 if first_submit is not None and last_done is not None else None
        # A token total is known only when every completed request recorded its count (no silent zeros).
        inputs = self.input_tokens if completed and not self.input_missing else None
        outputs = self.output_tokens if completed and not self.output_missing else None
        itl_min = self.itl.min()  # NaN-ignoring: < 0 exactly when some gap is
        if itl_min is not None and itl_min < 0:
            raise CapbenchError("a request's token_times_ns is not in increasing order")
        per_user = ratio_or_none(1.0, self.tpot.median())  # before describe, the column's last use
        return {
            "requests": {
                "total": self.total,
                "measured": measured,
                "warmup": self.warmup,
                "completed": completed,
                "errors": self.errors,
                "error_rate": ratio_or_none(self.errors, measured),
            },
            "throughput": {
                "wall_s": wall_s,
                "window_start_ns": first_submit if wall_s is not None else None,
                "window_end_ns": last_done if wall_s is not None else None,
                "requests_per_s": ratio_or_none(completed, wall_s),
                "input_tokens": inputs,
                "output_tokens": outputs,
                "input_tokens_per_s": ratio_or_none(inputs, wall_s),
                "output_tokens_per_s": ratio_or_none(outputs, wall_s),
                "tokens_per_s_per_user": per_user,
            },
            "latency": {
                "ttft_s": self.ttft.describe(),
                "tpot_s": self.tpot.describe(),
                "itl_s": self.itl.describe(),
                "e2e_latency_s": self.e2e.describe(),
            },
        }


def _check_times(chunk: RequestChunk, measured: np.ndarray) -> None:
    """The errors a measured request's times can raise, for the first offending record (in record order)."""
    submit, done, first = chunk.t_submit_ns, chunk.t_done_ns, chunk.t_first_token_ns
    no_submit = measured & (submit == MISSING)
    has_done = done != MISSING
    backwards = measured & ~no_submit & has_done & (done < submit)
    ok = measured & ~chunk.failed
    no_done = ok & ~no_submit & ~backwards & ~has_done
    has_first = first != MISSING
    outside = ok & ~no_submit & ~backwards & has_done & has_first & ((first < submit) | (first > done))
    problems = (
        (no_submit, "has no t_submit_ns"),
        (backwards, ": t_done_ns is before t_submit_ns"),
        (no_done, "completed without error but has no t_done_ns"),
        (outside, ": t_first_token_ns must lie between t_submit_ns and t_done_ns"),
    )
    rows = [(int(np.argmax(mask)), text) for mask, text in problems if mask.any()]
    if rows:
        row, text = min(rows, key=lambda item: item[0])
        sep = "" if text.startswith(":") else " "
        raise CapbenchError(f"request {chunk.ids[row]!r}{sep}{text}")


def request_metrics(requests: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts, latency distributions and throughput of a run's requests (formulas in the module docstring).

    Returns ``{"requests": {...}, "throughput": {...}, "latency": {...}}``; a figure that cannot be measured
    (no completed request, no streamed chunk times) is ``None``, never 0.
    """
    tally = LatencyTally()
    for chunk in request_chunks(requests):
        tally.add(chunk)
    return tally.result()
