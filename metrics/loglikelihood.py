"""Log-likelihood requests (``request_type`` ``loglikelihood`` or ``loglikelihood_rolling``): their own group.

Such a request scores a given text instead of generating one: it has no first token, no TPOT and no inter-token
gaps, so it is kept out of every generation figure (``requests``, ``throughput``, ``latency``, ``goodput``,
``workload``, ``fixed_length``, ``sessions``) and reported in ``summary.json`` ``loglikelihood`` (None when the run
has none):

- ``requests``: measured (non-warm-up) log-likelihood requests; ``warmup``; ``completed`` (no error) and
  ``failed``; ``by_type``: measured requests per ``request_type``;
- ``prompt_tokens``: Σ prompt_tokens of the completed ones (None when one did not record it);
- ``latency_s``: :func:`capbench.metrics.stats.describe` of (t_done_ns − t_submit_ns) / 1e9 over the completed
  ones (seconds);
- ``wall_s``: from their first submit to their last done (errored ones included), seconds;
  ``requests_per_s`` = completed / wall_s; ``prompt_tokens_per_s`` = prompt_tokens / wall_s.
"""

from __future__ import annotations

from typing import Any

from capbench.metrics.stats import FloatColumn, ratio_or_none
from capbench.records.columns import GENERATE, MISSING, RequestChunk
from capbench.records.validate import REQUEST_TYPES


class LoglikelihoodTally:
    """The log-likelihood requests' counts, prompt tokens, window and latency column (a
    :class:`~capbench.metrics.stats.FloatColumn`: bounded memory), over request chunks."""

    def __init__(self) -> None:
        self.measured = self.warmup = self.completed = self.failed = 0
        self.by_type = dict.fromkeys(REQUEST_TYPES[1:], 0)
        self.prompt_tokens = 0
        self.prompt_missing = 0
        self.first_submit: int | None = None
        self.last_done: int | None = None
        self.latency = FloatColumn()

    def add(self, chunk: RequestChunk) -> None:
        mine = chunk.request_type != GENERATE
        if not mine.any():
            return
        self.warmup += int((mine & chunk.warmup).sum())
        measured = mine & ~chunk.warmup
        self.measured += int(measured.sum())
        for code, name in enumerate(REQUEST_TYPES[1:], start=1):
            self.by_type[name] += int((measured & (chunk.request_type == code)).sum())
        submit, done = chunk.t_submit_ns, chunk.t_done_ns
        timed = measured & (submit != MISSING)
        if timed.any():
            low = int(submit[timed].min())
            self.first_submit = low if self.first_submit is None else min(self.first_submit, low)
        ended = measured & (done != MISSING)
        if ended.any():
            high = int(done[ended].max())
            self.last_done = high if self.last_done is None else max(self.last_done, high)
        self.failed += int((measured & chunk.failed).sum())
        ok = measured & ~chunk.failed
        self.completed += int(ok.sum())
        prompt = chunk.prompt_tokens[ok]
        self.prompt_missing += int((prompt == MISSING).sum())
        self.prompt_tokens += int(prompt[prompt != MISSING].sum())
        both = ok & (submit != MISSING) & (done != MISSING)
        self.latency.extend((done[both] - submit[both]) / 1e9)

    @property
    def window_ns(self) -> tuple[int, int] | None:
        """[first submit, last done] of the measured log-likelihood requests, when both are known."""
        if self.first_submit is None or self.last_done is None:
            return None
        return self.first_submit, self.last_done

    def result(self) -> dict[str, Any] | None:
        """``summary.json`` ``loglikelihood`` (module docstring), or None without log-likelihood requests. Called
        once: it describes the latency column, that column's last use."""
        if not self.measured and not self.warmup:
            return None
        window = self.window_ns
        wall_s = (window[1] - window[0]) / 1e9 if window is not None else None
        tokens = self.prompt_tokens if self.completed and not self.prompt_missing else None
        return {
            "requests": self.measured,
            "warmup": self.warmup,
            "completed": self.completed,
            "failed": self.failed,
            "by_type": dict(self.by_type),
            "prompt_tokens": tokens,
            "latency_s": self.latency.describe(),
            "wall_s": wall_s,
            "requests_per_s": ratio_or_none(self.completed, wall_s),
            "prompt_tokens_per_s": ratio_or_none(tokens, wall_s),
        }
