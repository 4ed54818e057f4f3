"""Token lengths drawn from a distribution, for the ``random`` and ``prefix`` datasets.

Every distribution is parameterized by its mean ``m`` (tokens) and one dimensionless spread; a draw is an integer
of at least 1:

- ``exact``: always ``m``;
- ``uniform``: an integer uniform on ``[floor(m·(1−r)), ceil(m·(1+r))]`` with ``r = range_ratio`` in ``[0, 1)``
  (``vllm bench serve --dataset-name random`` semantics: ``r = 0`` is exact);
- ``normal``: ``round(N(m, (σ·m)²))``, with ``σ = length_sigma`` the coefficient of variation, redrawn while
  below 1 (at most 64 draws, then 1);
- ``lognormal``: ``round(exp(N(μ, σ²)))`` with ``μ = ln m − σ²/2``, so the mean stays ``m`` and ``σ =
  length_sigma`` is the standard deviation of ``ln(length)``; below 1 is taken as 1.

Draws come from a :class:`random.Random` the caller seeds, so a seed gives the same lengths on every run.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal

from capbench.errors import ConfigError

Distribution = Literal["exact", "uniform", "normal", "lognormal"]
DISTRIBUTIONS: tuple[str, ...] = ("exact", "uniform", "normal", "lognormal")
_MAX_REDRAWS = 64


@dataclass(frozen=True)
class LengthSpec:
    """A length distribution: ``mean_tokens`` and the spread its ``distribution`` reads (module docstring)."""

    mean_tokens: int
    distribution: Distribution = "exact"
    range_ratio: float = 0.0
    sigma: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.mean_tokens, int) or self.mean_tokens < 1:
            raise ConfigError(f"a mean length must be an integer >= 1 token, got {self.mean_tokens!r}")
        if self.distribution not in DISTRIBUTIONS:
            raise ConfigError(
                f"length distribution must be one of {', '.join(DISTRIBUTIONS)}, got {self.distribution!r}"
            )
        if not 0.0 <= self.range_ratio < 1.0:
            raise ConfigError(f"range_ratio must be in [0, 1), got {self.range_ratio!r}")
        if not (math.isfinite(self.sigma) and self.sigma >= 0):
            raise ConfigError(f"length_sigma must be a finite number >= 0, got {self.sigma!r}")
        if self.distribution in ("normal", "lognormal") and self.sigma == 0:
            raise ConfigError(f"a {self.distribution} length distribution needs length_sigma > 0 (0 is 'exact')")

    def draw(self, rng: random.Random) -> int:
        """One length in tokens (>= 1)."""
        m = self.mean_tokens
        if self.distribution == "exact":
            return m
        if self.distribution == "uniform":
            low = max(1, math.floor(m * (1 - self.range_ratio)))
            high = max(low, math.ceil(m * (1 + self.range_ratio)))
            return rng.randint(low, high)
        if self.distribution == "normal":
            for _ in range(_MAX_REDRAWS):
                value = round(rng.gauss(m, self.sigma * m))
                if value >= 1:
                    return value
            return 1
        mu = math.log(m) - self.sigma**2 / 2
        return max(1, round(math.exp(rng.gauss(mu, self.sigma))))

    def describe(self) -> dict[str, object]:
        """The parameters as ``run.json`` records them."""
        out: dict[str, object] = {"mean_tokens": self.mean_tokens, "distribution": self.distribution}
        if self.distribution == "uniform":
            out["range_ratio"] = self.range_ratio
        if self.distribution in ("normal", "lognormal"):
            out["sigma"] = self.sigma
        return out
