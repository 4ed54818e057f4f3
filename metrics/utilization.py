"""S-MBU and S-MFU: achieved bytes/s and FLOP/s as fractions of the hardware's peaks (docs/metrics.md §3).

For passes P of one phase on N GPUs with peak memory bandwidth BW (bytes/s per GPU) and dense peak F
(FLOP/s per GPU, in the dtype the GEMMs execute in):

    S-MBU(P) = Σ_P bytes / (Σ_P latency_s · N · BW)
    S-MFU(P) = Σ_P FLOPs / (Σ_P latency_s · N · F)

Ratios of sums, so every pass weighs by its duration (a tiny warm-up-like pass cannot dominate). The same
formulas applied to one pass give the per-pass values whose percentiles are reported beside them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from capbench.errors import CapbenchError

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Ceilings:
    """The hardware peaks utilization is measured against, as plain numbers.

    Attributes:
        num_gpus: N, every GPU the serving deployment used (the whole world, all parallel ranks).
        memory_bandwidth_bytes_per_s: BW, peak memory bandwidth of one GPU, bytes/s.
        peak_flops_per_s: F, dense (never 2:4-sparse) peak of one GPU for ``compute_dtype``, FLOP/s; ``None``
            when the profile has no peak for that dtype (e.g. a CPU without a native bf16 path): S-MFU is then
            null, never computed against another dtype's peak.
        compute_dtype: the dtype the GEMMs execute in (``bfloat16`` for W4A16, ``fp8`` for W8A8-fp8).
        source: where the figures come from (hardware profile id and datasheet, or "user").
    """

    num_gpus: int
    memory_bandwidth_bytes_per_s: float
    peak_flops_per_s: float | None
    compute_dtype: str
    source: str

    def __post_init__(self) -> None:
        if isinstance(self.num_gpus, bool) or not isinstance(self.num_gpus, int) or self.num_gpus < 1:
            raise CapbenchError(f"num_gpus must be a positive integer, got {self.num_gpus!r}")
        for name in ("memory_bandwidth_bytes_per_s", "peak_flops_per_s"):
            value = getattr(self, name)
            if name == "peak_flops_per_s" and value is None:
                continue
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise CapbenchError(
                    f"hardware ceiling {name} must be a positive number, got {value!r} (source: "
                    f"{self.source}); a missing peak is an error, never 0: fix the hardware profile or "
                    "pass the figure explicitly"
                )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def s_mbu(bytes_total: float | None, time_s: float, ceilings: Ceilings | None) -> float | None:
    """S-MBU = bytes_total / (time_s · N · BW) (dimensionless); ``None`` when bytes or ceilings unknown."""
    if bytes_total is None or ceilings is None or time_s <= 0:
        return None
    return bytes_total / (time_s * ceilings.num_gpus * ceilings.memory_bandwidth_bytes_per_s)


def s_mfu(flops_total: float | None, time_s: float, ceilings: Ceilings | None) -> float | None:
    """S-MFU = flops_total / (time_s · N · F) (dimensionless); ``None`` when FLOPs, ceilings or F are unknown."""
    if flops_total is None or ceilings is None or ceilings.peak_flops_per_s is None or time_s <= 0:
        return None
    return flops_total / (time_s * ceilings.num_gpus * ceilings.peak_flops_per_s)


def per_pass_s_mbu(pass_bytes: FloatArray, latency_s: FloatArray, ceilings: Ceilings) -> FloatArray:
    """bytes_p / (latency_p · N · BW) for each pass p (element-wise)."""
    return pass_bytes / (latency_s * (ceilings.num_gpus * ceilings.memory_bandwidth_bytes_per_s))


def per_pass_s_mfu(pass_flops: FloatArray, latency_s: FloatArray, ceilings: Ceilings) -> FloatArray:
    """FLOPs_p / (latency_p · N · F) for each pass p (element-wise); empty when F is unknown."""
    if ceilings.peak_flops_per_s is None:
        return np.empty(0)
    return pass_flops / (latency_s * (ceilings.num_gpus * ceilings.peak_flops_per_s))
