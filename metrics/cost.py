"""Cost per token and deployment capital, with every assumption a named input (docs/metrics.md §5).

- GPU-hour price (USD per GPU per hour), ``usd_per_gpu_hour``:
  ``rental``: the price given (a cloud/profile price; usually includes host and power);
  ``amortized``: (gpu_purchase_usd + host_purchase_usd / N) / (lifetime_years · 8766 h · utilization),
  i.e. the GPU's purchase price plus its 1/N share of the host, spread over the hours it is in paid use.
- Energy: energy_usd = kWh · usd_per_kwh with kWh measured over the window (``energy_cost_source:
  measured``), or, only when nothing was measured and a TDP is given, the labeled upper-bound fallback
  N · gpu_tdp_w · wall_s / 3.6e6 kWh (``tdp_estimate``). With ``usd_per_kwh = 0`` (power included in the
  GPU-hour price) and no kWh, energy_usd is exactly 0 (``included_in_gpu_hour_price`` for rental pricing,
  ``zero_energy_price`` for amortized; energy_kwh stays null).
- total_usd = N · usd_per_gpu_hour · wall_h + energy_usd, wall_h = wall_s / 3600;
  USD per 1M output tokens = total_usd / output_tokens · 1e6; USD per request = total_usd / completed.
- deployment_capital_usd = N · gpu_purchase_usd + host_purchase_usd (the CAP radar's capital axis, beside
  the per-token cost).

A missing input makes the figures that need it ``None`` with the reason in ``null_reasons``, never 0. A
rental price that already includes power should be paired with ``usd_per_kwh = 0`` given explicitly.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from capbench.errors import CapbenchError
from capbench.metrics.energy import J_PER_KWH
from capbench.metrics.stats import ratio_or_none

HOURS_PER_YEAR = 8766.0
"""365.25 days · 24 h."""

Pricing = Literal["rental", "amortized"]


@dataclass(frozen=True)
class CostInputs:
    """Every cost assumption, written verbatim into ``summary.json``.

    Attributes:
        num_gpus: N, GPUs of the deployment.
        pricing: ``rental`` (use ``usd_per_gpu_hour``) or ``amortized`` (derive it from purchase prices).
        usd_per_gpu_hour: rental price, USD per GPU-hour (``rental`` only).
        gpu_purchase_usd: purchase price of one GPU, USD.
        host_purchase_usd: purchase price of the host serving the N GPUs (CPU, memory, network), USD.
        lifetime_years: amortization period, years (``amortized``).
        utilization: fraction of the lifetime the hardware is in paid use, in (0, 1] (``amortized``).
        usd_per_kwh: electricity price, USD per kWh.
        gpu_tdp_w: one GPU's TDP, W (only for the labeled ``tdp_estimate`` fallback).
        price_source: where the hardware prices come from (profile id and date, or ``user``).
        energy_price_source: where ``usd_per_kwh`` comes from.
    """

    num_gpus: int
    pricing: Pricing
    usd_per_gpu_hour: float | None = None
    gpu_purchase_usd: float | None = None
    host_purchase_usd: float | None = None
    lifetime_years: float | None = None
    utilization: float | None = None
    usd_per_kwh: float | None = None
    gpu_tdp_w: float | None = None
    price_source: str | None = None
    energy_price_source: str | None = None

    def __post_init__(self) -> None:
        if self.pricing not in ("rental", "amortized"):
            raise CapbenchError(f"cost pricing must be 'rental' or 'amortized', got {self.pricing!r}")
        if isinstance(self.num_gpus, bool) or not isinstance(self.num_gpus, int) or self.num_gpus < 1:
            raise CapbenchError(f"cost num_gpus must be a positive integer, got {self.num_gpus!r}")
        for name in ("usd_per_gpu_hour", "gpu_purchase_usd", "host_purchase_usd", "usd_per_kwh"):
            value = getattr(self, name)
            if value is not None and (not math.isfinite(value) or value < 0):
                raise CapbenchError(f"cost input {name} must be a non-negative number, got {value!r}")
        for name in ("lifetime_years", "gpu_tdp_w"):
            value = getattr(self, name)
            if value is not None and (not math.isfinite(value) or value <= 0):
                raise CapbenchError(f"cost input {name} must be positive, got {value!r}")
        if self.utilization is not None and not 0 < self.utilization <= 1:
            raise CapbenchError(f"cost input utilization must be in (0, 1], got {self.utilization!r}")

    def gpu_hour_usd(self) -> tuple[float | None, str | None]:
        """(USD per GPU-hour, None) or (None, why it cannot be computed)."""
        if self.pricing == "rental":
            if self.usd_per_gpu_hour is None:
                return None, "pricing is 'rental' but usd_per_gpu_hour is not given"
            return self.usd_per_gpu_hour, None
        needed = ("gpu_purchase_usd", "host_purchase_usd", "lifetime_years", "utilization")
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            given = ", ".join(missing)
            return None, f"pricing is 'amortized' but {given} not given (host may be 0 explicitly)"
        assert self.gpu_purchase_usd is not None and self.host_purchase_usd is not None
        assert self.lifetime_years is not None and self.utilization is not None
        per_gpu_usd = self.gpu_purchase_usd + self.host_purchase_usd / self.num_gpus
        return per_gpu_usd / (self.lifetime_years * HOURS_PER_YEAR * self.utilization), None


def cost_summary(
    inputs: CostInputs | None,
    *,
    wall_s: float | None,
    output_tokens: int | None,
    completed_requests: int | None,
    energy_kwh: float | None,
) -> dict[str, Any]:
    """Cost figures of a run (formulas in the module docstring); ``null_reasons`` explains each ``None``."""
    reasons: dict[str, str] = {}
    out: dict[str, Any] = {
        "inputs": None if inputs is None else asdict(inputs),
        "usd_per_gpu_hour": None,
        "usd_per_gpu_hour_source": None,
        "wall_h": None if wall_s is None else wall_s / 3600.0,
        "gpu_usd": None,
        "energy_kwh": None,
        "energy_cost_source": None,
        "energy_usd": None,
        "total_usd": None,
        "usd_per_1m_output_tokens": None,
        "usd_per_request": None,
        "deployment_capital_usd": None,
        "null_reasons": reasons,
    }
    if inputs is None:
        reasons["all"] = "no cost inputs given (no GPU price known for this hardware, none passed)"
        return out
    n = inputs.num_gpus
    if inputs.gpu_purchase_usd is not None and inputs.host_purchase_usd is not None:
        out["deployment_capital_usd"] = n * inputs.gpu_purchase_usd + inputs.host_purchase_usd
    else:
        reasons["deployment_capital_usd"] = "gpu_purchase_usd and host_purchase_usd are both needed"
    price, why = inputs.gpu_hour_usd()
    if price is None:
        reasons["usd_per_gpu_hour"] = str(why)
    else:
        out["usd_per_gpu_hour"] = price
        out["usd_per_gpu_hour_source"] = inputs.pricing
    if wall_s is None:
        reasons["wall_h"] = "no measured wall time (no timed request)"
    elif price is not None:
        out["gpu_usd"] = n * price * wall_s / 3600.0
    if energy_kwh is not None:
        out["energy_kwh"], out["energy_cost_source"] = energy_kwh, "measured"
    elif inputs.gpu_tdp_w is not None and wall_s is not None:
        out["energy_kwh"] = n * inputs.gpu_tdp_w * wall_s / J_PER_KWH
        out["energy_cost_source"] = "tdp_estimate"
    else:
        reasons["energy_kwh"] = "energy was not measured and no gpu_tdp_w was given for the fallback"
    if inputs.usd_per_kwh is None:
        reasons["energy_usd"] = "usd_per_kwh not given (pass 0 when the GPU-hour price includes power)"
    elif out["energy_kwh"] is not None:
        out["energy_usd"] = out["energy_kwh"] * inputs.usd_per_kwh
    elif inputs.usd_per_kwh == 0:
        # A zero electricity price (power paid inside a rental price, or free): 0 USD whatever the unmeasured kWh.
        source = "included_in_gpu_hour_price" if inputs.pricing == "rental" else "zero_energy_price"
        out["energy_usd"], out["energy_cost_source"] = 0.0, source
    if out["gpu_usd"] is not None and out["energy_usd"] is not None:
        out["total_usd"] = out["gpu_usd"] + out["energy_usd"]
    else:
        reasons["total_usd"] = "needs both the GPU cost and the energy cost"
    if output_tokens is None or output_tokens <= 0:
        reasons["usd_per_1m_output_tokens"] = "no output tokens were measured"
    out["usd_per_1m_output_tokens"] = (
        None if out["total_usd"] is None or not output_tokens else out["total_usd"] / output_tokens * 1e6
    )
    out["usd_per_request"] = ratio_or_none(out["total_usd"], completed_requests)
    return out
