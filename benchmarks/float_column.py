"""Benchmark: memory and time of :class:`capbench.metrics.stats.FloatColumn`, in memory and spilled (issue #18).

Usage::

    .venv/bin/python benchmarks/float_column.py                        # N = 1M, 4M, 16M
    .venv/bin/python benchmarks/float_column.py --sizes 1000000,4000000

For each N and each mode a fresh child process fills one column with N latency-like values (seconds, lognormal
around 50 ms, rounded to 10 µs so that many tie), generated and appended 65,536 at a time (so the generator holds
no more than one chunk), then describes it:

- **memory**: the column keeps every value in its in-memory buffer (``spill_threshold`` above N): the current
  behaviour below the threshold;
- **spilled**: the default column (``spill_threshold`` 2²⁰ values, blocks of 2¹⁸): past the threshold the values
  go to an anonymous temporary file and the statistics are computed out of core.

Printed per N and mode: the wall time of all ``extend`` calls and of ``describe`` (seconds; generating the values
is not counted), the child's peak resident memory (``ru_maxrss``, MB) and that minus the peak of the same child
before its column got any value (imports, the chunk generator), and whether the spilled column's summary is the
same (every float bit for bit) as the in-memory one's. Flat memory means the spilled column's extra MB stay the
same from 1M to 16M values while the in-memory one's grow by 8 bytes a value. The spill file lives where
:func:`tempfile.gettempdir` says (``$TMPDIR``): on a tmpfs it would take memory outside the process.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from typing import Any

CHUNK = 1 << 16


def child(n: int, mode: str) -> dict[str, Any]:
    """Fill and describe one column in this process; return its timings, peak RSS and summary."""
    import numpy as np

    from capbench.metrics.stats import FloatColumn

    rng = np.random.default_rng(2026)
    column = FloatColumn(spill_threshold=n + 1) if mode == "memory" else FloatColumn()
    rng.lognormal(math.log(0.05), 1.0, CHUNK)  # warm the generator's chunk-sized allocations
    base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    extend_s = 0.0
    for start in range(0, n, CHUNK):
        values = np.round(rng.lognormal(math.log(0.05), 1.0, min(CHUNK, n - start)), 5)
        began = time.perf_counter()
        column.extend(values)
        extend_s += time.perf_counter() - began
    spilled = column.spilled
    began = time.perf_counter()
    summary = column.describe()
    describe_s = time.perf_counter() - began
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "extend_s": extend_s,
        "describe_s": describe_s,
        "peak_mb": peak_kb / 1024,
        "extra_mb": (peak_kb - base_kb) / 1024,
        "spilled": spilled,
        "summary": summary,
    }


def run_child(n: int, mode: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(n), mode], check=True, capture_output=True, text=True
    ).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="1000000,4000000,16000000", help="comma-separated numbers of values")
    parser.add_argument("--child", nargs=2, metavar=("N", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(int(args.child[0]), args.child[1])))
        return
    header = f"{'N':>11} {'mode':>8} {'extend s':>9} {'describe s':>11} {'total s':>8} {'peak MB':>8} {'extra MB':>9}"
    print(header + "  same summary")
    for n in (int(size) for size in args.sizes.split(",")):
        results = {mode: run_child(n, mode) for mode in ("memory", "spilled")}
        for mode, r in results.items():
            same = "" if mode == "memory" else ("yes" if r["summary"] == results["memory"]["summary"] else "NO")
            label = mode if mode == "memory" or r["spilled"] else "memory*"  # * : below the spill threshold
            total = r["extend_s"] + r["describe_s"]
            print(
                f"{n:>11,} {label:>8} {r['extend_s']:>9.2f} {r['describe_s']:>11.2f} {total:>8.2f}"
                f" {r['peak_mb']:>8.1f} {r['extra_mb']:>9.1f}  {same}"
            )
        print(f"{'':>11} summary: {json.dumps(results['memory']['summary'])}")
    print("memory*: the default column stayed below its spill threshold (2**20 values), so it did not spill")


if __name__ == "__main__":
    main()
