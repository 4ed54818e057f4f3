"""Whether a load meets its target attainment, and how sure that decision is.

A probe's requests either meet every SLO bound or not (:func:`capbench.metrics.goodput.meets_slo`); over the
measured requests of all repeats of one load, ``met`` of ``measured`` did. Attainment ``p̂ = met / measured``;
its 95 % confidence interval is Wilson's score interval (z = 1.96), which stays inside [0, 1] and is sound at
p̂ = 0 or 1 and for small counts:

    center = (p̂ + z²/(2n)) / (1 + z²/n),  half = z·sqrt(p̂(1−p̂)/n + z²/(4n²)) / (1 + z²/n)

The decision is *clear* when the interval lies wholly on one side of the target (low ≥ target: pass; high <
target: fail); otherwise the load is probed again (up to a repeat limit) and, if still unclear, decided by p̂ ≥
target and reported as not clear. Requests are treated as independent draws, which they are not quite (they
share the server's state), so the interval is a floor on the real uncertainty.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054
"""The two-sided 95 % normal quantile."""


def wilson_interval(met: int, measured: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson's score interval for ``met / measured`` (module docstring); None when nothing was measured."""
    if measured <= 0:
        return None
    if not 0 <= met <= measured:
        raise ValueError(f"met must lie in [0, measured], got {met} of {measured}")
    p = met / measured
    z2n = z * z / measured
    center = (p + z2n / 2) / (1 + z2n)
    half = z * math.sqrt(p * (1 - p) / measured + z2n / (4 * measured)) / (1 + z2n)
    return max(0.0, center - half), min(1.0, center + half)


@dataclass(frozen=True)
class Decision:
    """One load's verdict from its pooled counts."""

    met: int
    measured: int
    attainment: float | None
    ci95: tuple[float, float] | None
    passed: bool
    clear: bool


def decide(met: int, measured: int, target: float) -> Decision:
    """Pass when attainment ≥ ``target``; clear when the 95 % interval excludes the target (module docstring).
    Nothing measured is a failure, and clear (no request was served)."""
    if not 0 < target <= 1:
        raise ValueError(f"the target attainment must lie in (0, 1], got {target!r}")
    interval = wilson_interval(met, measured)
    if interval is None:
        return Decision(met, measured, None, None, passed=False, clear=True)
    attainment = met / measured
    passed = attainment >= target
    clear = interval[0] >= target if passed else interval[1] < target
    return Decision(met, measured, attainment, interval, passed, clear)
