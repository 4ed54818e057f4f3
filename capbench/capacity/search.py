"""The search for the largest load that passes: bracket by doubling, then bisect to a stated resolution.

Loads are concurrencies (integers ≥ 1, closed loop) or request rates (requests/s > 0, open loop). With ``lo`` the
largest load seen to pass and ``hi`` the smallest seen to fail:

1. the first probe is at ``start``;
2. while no load has failed: the next is ``2·lo`` (capped at ``max_load``; once ``max_load`` itself passes, the
   search ends: the capacity is at least ``max_load``);
3. while no load has passed: the next is ``hi / 2`` (concurrency: ``hi // 2``; the search ends with no capacity
   once concurrency 1, or a rate under ``start / 1024``, fails);
4. then bisect: concurrency ``(lo + hi) // 2``, rate ``sqrt(lo·hi)`` (the geometric mean: the bracket's ratio
   halves in log each step), until the bracket is within the resolution: concurrency ``hi − lo ≤ max(1,
   floor(resolution·lo))``, rate ``hi / lo − 1 ≤ resolution``. The capacity is ``lo``.

A load already decided is never probed again by the search (repeats are the caller's business), so the number
of probes is about ``log2(capacity / start)`` + ``log2(1 / resolution)`` (+1 or 2): for concurrency 1 → 7 at 5 %,
6 probes; a rate from 1 to 100 req/s, 12.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

SearchKind = Literal["concurrency", "rate"]
MIN_RATE_FRACTION = 1 / 1024
"""A rate search gives up below ``start`` times this."""


@dataclass
class Search:
    """The search state: feed each probe's verdict to :meth:`record`, ask :meth:`next_load` for the next."""

    kind: SearchKind
    start: float
    resolution: float = 0.05
    max_load: float | None = None
    lo: float | None = None
    hi: float | None = None
    verdicts: dict[float, bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in ("concurrency", "rate"):
            raise ValueError(f"search kind must be concurrency or rate, got {self.kind!r}")
        if not (self.start > 0 and math.isfinite(self.start)):
            raise ValueError(f"the search starts at a load > 0, got {self.start!r}")
        if self.kind == "concurrency" and int(self.start) != self.start:
            raise ValueError(f"a concurrency search starts at an integer, got {self.start!r}")
        if not 0 < self.resolution < 1:
            raise ValueError(f"resolution must lie in (0, 1), got {self.resolution!r}")
        if self.max_load is not None and self.max_load < self.start:
            raise ValueError(f"max_load {self.max_load} is below the start {self.start}")

    @property
    def integer(self) -> bool:
        return self.kind == "concurrency"

    def record(self, load: float, passed: bool) -> None:
        """A probe's verdict. A pass above a known failure (noise) moves the failure up, and vice versa, so the
        bracket always has ``lo < hi``."""
        self.verdicts[load] = passed
        if passed:
            self.lo = load if self.lo is None else max(self.lo, load)
            if self.hi is not None and self.hi <= load:
                failing = [x for x, ok in self.verdicts.items() if not ok and x > load]
                self.hi = min(failing) if failing else None
        else:
            self.hi = load if self.hi is None else min(self.hi, load)
            if self.lo is not None and self.lo >= load:
                passing = [x for x, ok in self.verdicts.items() if ok and x < load]
                self.lo = max(passing) if passing else None

    def converged(self) -> bool:
        """The bracket is within the resolution (module docstring)."""
        if self.lo is None or self.hi is None:
            return False
        if self.integer:
            return self.hi - self.lo <= max(1, math.floor(self.resolution * self.lo))
        return self.hi / self.lo - 1 <= self.resolution

    def next_load(self) -> float | None:
        """The next load to probe, or None when the search is over."""
        if not self.verdicts:
            return self.start
        if self.hi is None:  # everything so far passed: double
            assert self.lo is not None
            if self.max_load is not None and self.lo >= self.max_load:
                return None
            nxt = 2 * self.lo
            return min(nxt, self.max_load) if self.max_load is not None else nxt
        if self.lo is None:  # everything so far failed: halve
            if self.integer:
                return self.hi // 2 if self.hi >= 2 else None
            nxt = self.hi / 2
            return nxt if nxt >= self.start * MIN_RATE_FRACTION else None
        if self.converged():
            return None
        if self.integer:
            return (self.lo + self.hi) // 2
        return math.sqrt(self.lo * self.hi)

    def outcome(self) -> str:
        """How the search ended: ``found``, ``at_least_max_load``, ``none_passed`` or ``unfinished``."""
        if self.lo is not None and self.hi is not None and self.converged():
            return "found"
        if self.lo is not None and self.hi is None and self.max_load is not None and self.lo >= self.max_load:
            return "at_least_max_load"
        if self.lo is None and self.hi is not None and self.next_load() is None:
            return "none_passed"
        return "unfinished"
