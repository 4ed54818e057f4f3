"""Bounded-memory statistics of non-negative durations (event-loop lag, schedule lag, queue waits).

A load that runs for an hour at thousands of requests per second cannot keep every lag it measured: a list of
floats grows by about 32 bytes a value (27 million schedule lags in an hour at 7,500 arrivals/s, ~0.9 GB).
:class:`LagSketch` keeps the count, the sum and the maximum exactly and the quantiles within a relative error
``alpha`` (a log-bucketed histogram, as in DDSketch): value ``x >= floor_s`` falls in bucket
``i = ceil(ln(x / floor_s) / ln(γ))`` with ``γ = (1 + alpha) / (1 − alpha)``, the interval
``(floor_s·γ^(i−1), floor_s·γ^i]``, represented by ``2·floor_s·γ^i / (γ + 1)``, which is within ``alpha`` of every
value of the interval; values below ``floor_s`` count in one bucket represented by the smallest value recorded
(exact when they are all equal, e.g. 0). Order statistics are clamped to the exact minimum and maximum. The
number of buckets
grows with the logarithm of the range the values span (about 11,500 for ``alpha`` 0.001 from 1 µs to 10⁴ s),
never with their count.
"""

from __future__ import annotations

import math

DEFAULT_ALPHA = 0.001
"""Relative error of a quantile: 0.1 % (a 5 ms p99 is reported within ±5 µs)."""
DEFAULT_FLOOR_S = 1e-6
"""Durations below 1 µs share one bucket (reported as the smallest of them; count, sum and maximum stay exact)."""


class LagSketch:
    """Count, sum, maximum (exact) and quantiles (relative error ``alpha``) of durations in seconds."""

    __slots__ = (
        "_buckets",
        "_inv_log_gamma",
        "_zeros",
        "alpha",
        "count",
        "floor_s",
        "gamma",
        "max_s",
        "min_s",
        "sum_s",
    )

    def __init__(self, alpha: float = DEFAULT_ALPHA, floor_s: float = DEFAULT_FLOOR_S) -> None:
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
        if not floor_s > 0:
            raise ValueError(f"floor_s must be > 0, got {floor_s!r}")
        self.alpha = alpha
        self.floor_s = floor_s
        self.gamma = (1 + alpha) / (1 - alpha)
        self._inv_log_gamma = 1 / math.log(self.gamma)
        self._buckets: dict[int, int] = {}
        self._zeros = 0
        self.count = 0
        self.sum_s = 0.0
        self.max_s: float | None = None
        self.min_s: float | None = None

    def add(self, x_s: float) -> None:
        """Record one duration (seconds, >= 0; a negative value counts as 0)."""
        if x_s < 0:
            x_s = 0.0
        self.count += 1
        self.sum_s += x_s
        if self.max_s is None or x_s > self.max_s:
            self.max_s = x_s
        if self.min_s is None or x_s < self.min_s:
            self.min_s = x_s
        if x_s < self.floor_s:
            self._zeros += 1
            return
        i = math.ceil(math.log(x_s / self.floor_s) * self._inv_log_gamma)
        self._buckets[i] = self._buckets.get(i, 0) + 1

    @property
    def buckets(self) -> int:
        """How many buckets are in use (the sketch's size)."""
        return len(self._buckets) + (1 if self._zeros else 0)

    def _order_statistic(self, k: int) -> float:
        """The ``k``-th smallest value (0-based) as its bucket represents it, clamped to [min, max]."""
        assert self.min_s is not None and self.max_s is not None
        if k < self._zeros:
            return max(0.0, self.min_s)
        seen = self._zeros
        for i in sorted(self._buckets):
            seen += self._buckets[i]
            if k < seen:
                value = 2 * self.floor_s * self.gamma**i / (self.gamma + 1)
                return min(max(value, self.min_s), self.max_s)
        return self.max_s

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile (0..1), interpolating linearly between order statistics as
        :func:`capbench.loadgen.selfcheck.quantile` does (rank ``q·(n − 1)``), each within ``alpha`` relative
        error; None when empty."""
        if self.count == 0:
            return None
        pos = q * (self.count - 1)
        lo = int(pos)
        hi = min(lo + 1, self.count - 1)
        a = self._order_statistic(lo)
        b = a if hi == lo else self._order_statistic(hi)
        return a + (b - a) * (pos - lo)
