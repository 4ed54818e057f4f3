"""Open-loop arrival schedules, precomputed from a seed.

An open-loop load submits requests at scheduled times whatever the server does. The schedule is a sequence of
arrival offsets (integer nanoseconds from the start of the measured phase): arrival 0 is at offset 0 and
arrival ``k`` at the sum of the first ``k`` inter-arrival gaps. The gaps are drawn from a
:class:`random.Random` seeded with the pattern's seed, so the same seed gives the same schedule on every run.

Gap distributions, for a mean rate ``r`` requests per second (mean gap ``1/r`` in every case):

- ``poisson``: exponential gaps with mean ``1/r`` (coefficient of variation 1);
- ``gamma``: gamma gaps with shape ``k = burstiness`` and scale ``1/(r·k)``, so the mean gap stays ``1/r`` and
  the coefficient of variation of the gaps is ``1/sqrt(k)``. ``burstiness`` 1 is the Poisson process;
  below 1 arrivals come in bursts separated by longer pauses (CV > 1); above 1 they are more regular
  (CV < 1). This is the parameterisation of ``vllm bench serve --burstiness``;
- ``constant``: every gap exactly ``1/r``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from typing import Literal

Arrival = Literal["poisson", "gamma", "constant"]
ARRIVALS: tuple[str, ...] = ("poisson", "gamma", "constant")


def validate_arrival(rate: float, arrival: str, burstiness: float) -> None:
    """Raise ``ValueError`` naming the bad setting unless ``rate``, ``arrival`` and ``burstiness`` fit."""
    if not (isinstance(rate, int | float) and math.isfinite(rate) and rate > 0):
        raise ValueError(f"request_rate must be a finite number > 0, got {rate!r}")
    if arrival not in ARRIVALS:
        raise ValueError(f"arrival must be one of {', '.join(ARRIVALS)}; got {arrival!r}")
    if not (math.isfinite(burstiness) and burstiness > 0):
        raise ValueError(f"burstiness must be a finite number > 0, got {burstiness!r}")
    if arrival != "gamma" and burstiness != 1.0:
        raise ValueError(
            f"burstiness={burstiness} applies only to arrival='gamma' (it is the gamma shape; "
            f"'{arrival}' has no burstiness setting)"
        )


def iter_gaps_s(rate: float, arrival: str = "poisson", burstiness: float = 1.0, seed: int = 0) -> Iterator[float]:
    """Endless inter-arrival gaps in seconds (see the module docstring for the distributions)."""
    validate_arrival(rate, arrival, burstiness)
    rng = random.Random(seed)
    if arrival == "constant":
        gap = 1.0 / rate
        while True:
            yield gap
    elif arrival == "poisson":
        expo = rng.expovariate
        while True:
            yield expo(rate)
    else:
        gamma = rng.gammavariate
        shape, scale = burstiness, 1.0 / (rate * burstiness)
        while True:
            yield gamma(shape, scale)


def iter_arrival_offsets_ns(
    rate: float, arrival: str = "poisson", burstiness: float = 1.0, seed: int = 0
) -> Iterator[int]:
    """Endless arrival offsets in integer ns from the phase start: 0, then the running sum of the gaps.

    The sum is kept in float seconds and rounded once per arrival, so rounding never accumulates.
    """
    total_s = 0.0
    yield 0
    for gap in iter_gaps_s(rate, arrival, burstiness, seed):
        total_s += gap
        yield round(total_s * 1e9)


def arrival_offsets_ns(
    rate: float, count: int, arrival: str = "poisson", burstiness: float = 1.0, seed: int = 0
) -> list[int]:
    """The first ``count`` arrival offsets (ns) of the schedule; a prefix of :func:`iter_arrival_offsets_ns`."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    out: list[int] = []
    if count == 0:
        validate_arrival(rate, arrival, burstiness)
        return out
    for offset in iter_arrival_offsets_ns(rate, arrival, burstiness, seed):
        out.append(offset)
        if len(out) == count:
            break
    return out
