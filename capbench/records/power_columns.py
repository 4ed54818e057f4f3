"""Power samples as typed columns (the energy metric's input; issue #18).

``power.jsonl`` samples become four numpy columns in file order: ``gpu`` and ``t_ns`` (int64), ``power_w`` and
``energy_j`` (float64, NaN where the sample has null or no value, with ``has_power`` / ``has_energy`` saying
which). Every sample is checked where it enters (:func:`~capbench.records.validate.check_power`) when it comes
from a file.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from capbench.errors import CapbenchError
from capbench.records.validate import check_power


@dataclass(frozen=True)
class PowerColumns:
    """Power samples as columns (module docstring)."""

    gpu: NDArray[np.int64]
    t_ns: NDArray[np.int64]
    power_w: NDArray[np.float64]
    has_power: NDArray[np.bool_]
    energy_j: NDArray[np.float64]
    has_energy: NDArray[np.bool_]

    @property
    def size(self) -> int:
        return int(self.t_ns.size)


def power_columns(records: Iterable[Any], path: Path | None = None) -> PowerColumns:
    """Columns of power samples: ``(line, record)`` pairs from ``path`` (checked), or plain records (in memory:
    ``gpu`` and ``t_ns`` must convert to integers)."""
    gpu, t_ns = array("q"), array("q")
    power, energy = array("d"), array("d")
    has_p, has_e = array("b"), array("b")
    nan = float("nan")
    for item in records:
        rec: Mapping[str, Any]
        if path is not None:
            line, rec = item
            check_power(rec, path, line)
        else:
            rec = item
        try:
            gpu.append(int(rec["gpu"]))
            t_ns.append(int(rec["t_ns"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise CapbenchError(f"power record {dict(rec)!r} needs integer 'gpu' and 't_ns': {exc}") from exc
        p, e = rec.get("power_w"), rec.get("energy_j")
        power.append(nan if p is None else p)
        has_p.append(p is not None)
        energy.append(nan if e is None else e)
        has_e.append(e is not None)
    return PowerColumns(
        gpu=np.array(gpu, dtype=np.int64),
        t_ns=np.array(t_ns, dtype=np.int64),
        power_w=np.array(power, dtype=np.float64),
        has_power=np.array(has_p, dtype=np.bool_),
        energy_j=np.array(energy, dtype=np.float64),
        has_energy=np.array(has_e, dtype=np.bool_),
    )
