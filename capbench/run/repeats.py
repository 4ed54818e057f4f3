"""``capbench run --repeats N``: the run N times, one run directory each, then the repeats' summary.

Repeat ``i`` runs the same settings (seed included: the repeats measure how the same run varies) into
``<out>/repeat-<i>`` as an ordinary run; then ``<out>/summary.json`` gets the mean, standard deviation and 95 %
interval of each headline figure over the complete repeats (:mod:`capbench.summary.repeats`). Ctrl-C stops after
the repeat in progress ends ``partial``; the summary then covers the repeats that completed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from capbench.config import RunSpec
from capbench.errors import CapbenchError
from capbench.records import RunStatus, write_json_atomic
from capbench.records.schema import SUMMARY_FILE
from capbench.summary.columns import BY_NAME, HEADLINE
from capbench.summary.repeats import aggregate_repeats, repeat_dir


def run_repeats(spec: RunSpec, *, quiet: bool = False) -> tuple[Path, list[RunStatus], dict[str, Any] | None]:
    """Run ``spec.repeats`` repeats; return the directory, each repeat's status and the repeats' summary
    (None when none completed)."""
    from capbench.run.execute import default_out_dir, execute_run
    from capbench.run.manifest import new_run_id

    out = Path(spec.out) if spec.out else default_out_dir(f"{new_run_id()}-repeats")
    if (out / SUMMARY_FILE).exists() or any(repeat_dir(out, i).exists() for i in range(1, spec.repeats + 1)):
        raise CapbenchError(
            f"{out} already holds repeats; choose a new --out directory so no measurement is overwritten"
        )
    out.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=True, quiet=quiet)
    statuses: list[RunStatus] = []
    dirs: list[Path] = []
    interrupted: BaseException | None = None
    for i in range(1, spec.repeats + 1):
        run_dir = repeat_dir(out, i)
        console.print(f"repeat {i} of {spec.repeats} -> {run_dir}", highlight=False)
        dirs.append(run_dir)
        try:
            _, status = execute_run(spec.model_copy(update={"out": str(run_dir), "repeats": 1}), quiet=quiet)
        except KeyboardInterrupt as exc:
            statuses.append(RunStatus.PARTIAL)
            interrupted = exc
            break
        statuses.append(status)
    summary: dict[str, Any] | None = None
    try:
        summary = aggregate_repeats(out, dirs)
    except CapbenchError as exc:
        console.print(f"[red]repeats:[/] {exc}")
    if summary is not None:
        write_json_atomic(out / SUMMARY_FILE, summary)
        Console(quiet=quiet).print(repeats_table(summary))
    if interrupted is not None:
        raise interrupted
    return out, statuses, summary


def repeats_table(summary: dict[str, Any]) -> Table:
    """Each headline figure's mean, standard deviation and 95 % interval over the repeats."""
    from capbench.summary.report import fmt

    repeats = summary["repeats"]
    table = Table(title=f"Over {repeats['n']} repeats (mean, std, 95 % interval)", title_justify="left")
    for col in ("figure", "mean", "std", "95 % interval", "n"):
        table.add_column(col, justify="left" if col == "figure" else "right")
    for name in HEADLINE:
        stats = repeats["metrics"][name]
        if stats["mean"] is None:
            continue
        column = BY_NAME[name]
        unit, scale = ("%", 100.0) if column.percent else ("", 1.0)
        low, high = stats["ci95_low"], stats["ci95_high"]
        interval = "—" if low is None else f"{fmt(low, unit, scale)} … {fmt(high, unit, scale)}"
        table.add_row(
            column.header, fmt(stats["mean"], unit, scale), fmt(stats["std"], unit, scale), interval, str(stats["n"])
        )
    return table
