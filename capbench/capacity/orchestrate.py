"""Run a capacity search and write ``<out>/capacity.json``.

The search (:mod:`.search`) picks loads; each load is probed (:mod:`.probe`) at least ``repeats`` times and, while
its pooled attainment's 95 % interval still straddles the target (:mod:`.attainment`), again, up to
``max_repeats`` runs. Probes live in ``<out>/probes/``: ``c00008-r1/`` (concurrency 8, first run) or
``rate-12.5-r1/`` (12.5 requests/s), each a full run directory with its settings (``.yaml``), log (``.log``)
and outcome (``.json``) beside it. ``resume`` reuses every probe that ended and re-runs from where the search
stopped (the search is deterministic given the verdicts, so it walks the same loads); a probe interrupted
mid-run is kept aside as ``<name>.interrupted-<k>/`` and run again.

``capacity.json`` (schema 1): the settings of the search (``search``, ``slo``, ``attainment_target``,
``resolution``, ``start``, ``max_load``), the ``outcome`` (``found``, ``at_least_max_load``, ``none_passed``,
``unfinished``), the capacity (``max_concurrency`` or ``max_request_rate_per_s``; null when none passed) with
its ``bracket`` (the largest load that passed, the smallest that failed), ``sure`` (both decisions
statistically clear), ``probes`` (per load, in the order probed: load, runs, met / measured, attainment, its
95 % interval, verdict, whether clear, whether any run was stopped early, wall time, run directories),
``probe_count`` (loads probed), ``probe_runs`` (runs), ``wall_s``, and ``at_capacity``: the headline figures
(:data:`capbench.summary.columns.HEADLINE`, ``capbench export`` columns) of the first complete run at the
capacity, its run directory in ``at_capacity_run``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from capbench.capacity.attainment import Decision, decide
from capbench.capacity.probe import ProbeRun, load_probe, probe_record_path, run_probe
from capbench.capacity.search import Search, SearchKind
from capbench.clock import utc_now_iso
from capbench.config import RunSpec, build_run_spec
from capbench.errors import CapbenchError, ConfigError
from capbench.records import write_json_atomic
from capbench.records.schema import CAPACITY_FILE
from capbench.runners import RUNNER_NAMES, runner_traits
from capbench.summary.columns import HEADLINE

RESULTS_FILE = "results.csv"
PROBES_DIR = "probes"
SCHEMA_VERSION = 1

LOAD_KEYS: dict[str, str] = {"concurrency": "concurrency", "rate": "request_rate"}


@dataclass(frozen=True)
class CapacityOptions:
    """A capacity search: the run settings every probe shares (a run YAML mapping, no load) and the search's."""

    settings: dict[str, Any]
    out: Path
    search: SearchKind = "concurrency"
    target: float = 0.99
    resolution: float = 0.05
    start: float | None = None
    max_load: float | None = None
    max_probes: int = 20
    repeats: int = 1
    max_repeats: int = 3
    resume: bool = False
    python: str | None = None


def _round_load(kind: SearchKind, load: float) -> float:
    """Concurrencies are integers; rates keep 4 significant digits (stable probe names, no float noise)."""
    return float(int(load)) if kind == "concurrency" else float(f"{load:.4g}")


def probe_name(kind: SearchKind, load: float, repeat: int) -> str:
    label = f"c{int(load):05d}" if kind == "concurrency" else f"rate-{load:g}"
    return f"{label}-r{repeat}"


def validate(options: CapacityOptions) -> RunSpec:
    """The base settings checked as a probe at the start load would run them (before any probe)."""
    key = LOAD_KEYS[options.search]
    if options.settings.get("repeats") not in (None, 1):
        raise ConfigError("repeats: a capacity search repeats its probes itself (--repeats, --max-repeats)")
    given = [k for k in ("concurrency", "request_rate", "trace") if options.settings.get(k) is not None]
    if given:
        raise ConfigError(
            f"{', '.join(given)}: the capacity search sets the load itself ({key}); do not give it (use --start "
            "and --max-load to bound the search)"
        )
    if not 0 < options.target <= 1:
        raise ConfigError(f"--attainment must lie in (0, 1], got {options.target}")
    if options.repeats < 1 or options.max_repeats < options.repeats:
        raise ConfigError(f"--repeats ({options.repeats}) must be >= 1 and <= --max-repeats ({options.max_repeats})")
    if options.max_probes < 1:
        raise ConfigError(f"--max-probes must be >= 1, got {options.max_probes}")
    runner = str(options.settings.get("runner") or RunSpec.model_fields["runner"].default)
    if options.search == "rate" and runner in RUNNER_NAMES and not runner_traits(runner).server:
        raise ConfigError(f"a rate search needs a server runner (openai or vllm); runner {runner!r} serves batches")
    spec = build_run_spec(None, {**options.settings, key: _start(options)})
    if not spec.slo:
        raise ConfigError("a capacity search needs latency targets: --slo ttft_s=0.5,tpot_s=0.05 (or slo: in the YAML)")
    try:
        Search(options.search, _start(options), options.resolution, options.max_load)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return spec


def _start(options: CapacityOptions) -> float:
    if options.start is not None:
        return options.start
    return 1.0


def _load_existing(probes_dir: Path) -> dict[float, list[ProbeRun]]:
    """The probes of an earlier search in ``probes_dir`` that ended, by load, in repeat order."""
    found: dict[float, list[ProbeRun]] = defaultdict(list)
    if not probes_dir.is_dir():
        return found
    for record in sorted(probes_dir.glob("*.json")):
        run = load_probe(record.with_suffix(""))
        if run is not None:
            found[run.load].append(run)
    for runs in found.values():
        runs.sort(key=lambda r: r.repeat)
    return found


def _set_aside(run_dir: Path) -> None:
    """A probe run directory without an outcome (interrupted): keep it under another name."""
    if not run_dir.exists() or probe_record_path(run_dir).exists():
        return
    k = 1
    while (aside := run_dir.with_name(f"{run_dir.name}.interrupted-{k}")).exists():
        k += 1
    run_dir.rename(aside)


def _probe_entry(load: float, runs: list[ProbeRun], decision: Decision) -> dict[str, Any]:
    return {
        "load": load,
        "runs": len(runs),
        "met": decision.met,
        "measured": decision.measured,
        "attainment": decision.attainment,
        "attainment_ci95": list(decision.ci95) if decision.ci95 else None,
        "verdict": "pass" if decision.passed else "fail",
        "clear": decision.clear,
        "stopped_early": any(r.stopped_early for r in runs),
        "wall_s": sum(r.wall_s for r in runs),
        "run_dirs": [f"{PROBES_DIR}/{r.run_dir}" for r in runs],
        "errors": [r.error for r in runs if r.error],
    }


def run_capacity(options: CapacityOptions, console: Console) -> dict[str, Any]:
    """Search, write ``capacity.json`` (also when interrupted: what was found so far), print the result."""
    spec = validate(options)
    out = options.out
    result_path = out / CAPACITY_FILE
    if result_path.exists() and not options.resume:
        raise CapbenchError(f"{out} already holds a capacity search ({CAPACITY_FILE}); pass --resume or another --out")
    probes_dir = out / PROBES_DIR
    probes_dir.mkdir(parents=True, exist_ok=True)
    existing = _load_existing(probes_dir) if options.resume else {}
    if not options.resume and any(probes_dir.iterdir()):
        raise CapbenchError(f"{probes_dir} is not empty: pass --resume to continue that search, or another --out")
    kind = options.search
    key = LOAD_KEYS[kind]
    base = spec.model_dump(mode="json", exclude={"out", key}, exclude_unset=True)  # validated, types resolved
    search = Search(kind, _start(options), options.resolution, options.max_load)
    planned = spec.effective_num_requests if not spec.multi_turn else None
    entries: list[dict[str, Any]] = []
    decisions: dict[float, Decision] = {}
    started = time.monotonic()
    result: dict[str, Any] = {}
    search_id = _search_id(result_path, base, options)

    def write(state: str) -> None:
        result.clear()
        result["search_id"] = search_id
        result.update(_result(options, spec, search, entries, decisions, out, state, time.monotonic() - started))
        write_json_atomic(result_path, result)
        _write_results_csv(out)

    try:
        while (nxt := search.next_load()) is not None:
            load = _round_load(kind, nxt)
            if load in search.verdicts:  # rounding met a decided load: the bracket is as tight as it gets
                break
            if len(entries) >= options.max_probes:
                break
            runs = existing.pop(load, [])
            while True:
                decision = decide(sum(r.met for r in runs), sum(r.measured for r in runs), options.target)
                enough = len(runs) >= options.repeats
                if enough and (decision.clear or len(runs) >= options.max_repeats):
                    break
                repeat = len(runs) + 1
                run_dir = probes_dir / probe_name(kind, load, repeat)
                _set_aside(run_dir)
                settings = {**base, key: int(load) if kind == "concurrency" else load}
                run = run_probe(
                    settings,
                    run_dir,
                    load=load,
                    repeat=repeat,
                    slo=dict(spec.slo),
                    target=options.target,
                    planned=planned,
                    python=options.python,
                )
                if run.status == "failed" and run.measured == 0 and not search.verdicts and not runs:
                    raise CapbenchError(f"the first probe ({key} {load:g}) failed: {run.error}")
                runs.append(run)
                console.print(_progress_line(kind, load, run), highlight=False)
            decisions[load] = decision
            search.record(load, decision.passed)
            entries.append(_probe_entry(load, runs, decision))
            write("running")
    except KeyboardInterrupt:
        write("interrupted")
        raise
    write("complete")
    console.print(result_table(result))
    return result


def _search_id(result_path: Path, base: dict[str, Any], options: CapacityOptions) -> str:
    """The search's id (12 hex digits): kept from ``capacity.json`` when resuming, else a hash of the settings,
    the search's options and the time it started (two searches of the same settings are two searches)."""
    if result_path.is_file():
        try:
            earlier = json.loads(result_path.read_text(encoding="utf-8")).get("search_id")
        except (OSError, ValueError, AttributeError):
            earlier = None
        if isinstance(earlier, str) and earlier:
            return earlier
    what = {"settings": base, "search": options.search, "target": options.target, "started": utc_now_iso()}
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _write_results_csv(out: Path) -> None:
    """``<out>/results.csv``: every scored probe run as ``capbench export`` rows (the leaderboard reads it)."""
    from capbench.summary.export import export_runs, write_csv

    try:
        frame = export_runs([out])
    except CapbenchError:
        return  # nothing scored yet
    write_csv(frame, out / RESULTS_FILE)


def _progress_line(kind: SearchKind, load: float, run: ProbeRun) -> str:
    what = f"concurrency {int(load)}" if kind == "concurrency" else f"rate {load:g}/s"
    share = f"{run.met}/{run.measured} met the SLO" if run.measured else "nothing measured"
    early = " (stopped early: cannot reach the target)" if run.stopped_early else ""
    return f"probe {what} run {run.repeat}: {share}{early} in {run.wall_s:.1f} s"


def _result(
    options: CapacityOptions,
    spec: RunSpec,
    search: Search,
    entries: list[dict[str, Any]],
    decisions: dict[float, Decision],
    out: Path,
    state: str,
    wall_s: float,
) -> dict[str, Any]:
    kind = options.search
    outcome = search.outcome() if state == "complete" else "unfinished"
    if outcome == "unfinished" and state == "complete" and search.lo is not None and search.hi is not None:
        outcome = "found"  # the probe limit or rounding ended a bisection that has a bracket
    capacity = search.lo if outcome in ("found", "at_least_max_load") else None
    bracket = {"passed": search.lo, "failed": search.hi}
    boundary = [decisions[x] for x in (search.lo, search.hi) if x is not None and x in decisions]
    at_capacity, at_run = _at_capacity(out, entries, capacity)
    result: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "state": state,
        "written_at": utc_now_iso(),
        "search": kind,
        "slo": dict(spec.slo),
        "attainment_target": options.target,
        "resolution": options.resolution,
        "start": _start(options),
        "max_load": options.max_load,
        "repeats": options.repeats,
        "max_repeats": options.max_repeats,
        "outcome": outcome,
        "max_concurrency": int(capacity) if kind == "concurrency" and capacity is not None else None,
        "max_request_rate_per_s": capacity if kind == "rate" else None,
        "bracket": bracket,
        "converged": search.converged(),
        "sure": bool(boundary) and all(d.clear for d in boundary),
        "probe_count": len(entries),
        "probe_runs": sum(e["runs"] for e in entries),
        "wall_s": wall_s,
        "probes": entries,
        "at_capacity_run": at_run,
        "at_capacity": at_capacity,
    }
    return result


def _at_capacity(out: Path, entries: list[dict[str, Any]], capacity: float | None) -> tuple[dict[str, Any], str | None]:
    """The headline figures of the first complete run at the capacity (null figures when there is none)."""
    from capbench.sweep.point import run_dir_status

    empty: dict[str, Any] = dict.fromkeys(HEADLINE)
    if capacity is None:
        return empty, None
    entry = next((e for e in entries if e["load"] == capacity), None)
    if entry is None:
        return empty, None
    for rel in entry["run_dirs"]:
        if run_dir_status(out / rel) == "complete":
            from capbench.summary.export import run_row

            row = run_row(out / rel)
            return {k: row[k] for k in HEADLINE}, rel
    return empty, None


def result_table(result: dict[str, Any]) -> Table:
    """The capacity, how sure it is, the figures at it, and every probe."""
    from capbench.summary.report import fmt

    kind = result["search"]
    unit = "concurrency" if kind == "concurrency" else "requests/s"
    slo = ", ".join(f"{k} ≤ {v:g}" for k, v in result["slo"].items())
    title = f"Capacity at {slo} for {result['attainment_target']:.0%} of requests ({result['outcome']})"
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    capacity = result["max_concurrency"] if kind == "concurrency" else result["max_request_rate_per_s"]
    bracket = result["bracket"]
    table.add_row(f"capacity ({unit})", fmt(capacity))
    table.add_row(
        "bracket: passed / failed",
        f"{fmt(bracket['passed'])} / {fmt(bracket['failed'])}"
        + ("" if result["sure"] else " (not statistically clear)"),
    )
    table.add_row("probes (loads / runs)", f"{result['probe_count']} / {result['probe_runs']}")
    table.add_row("search wall time", fmt(result["wall_s"], "s"))
    at = result["at_capacity"]
    rows = (
        ("output tokens/s", "output_tokens_per_s", ""),
        ("output tokens/s per GPU", "output_tokens_per_s_per_gpu", ""),
        ("tokens/s per user", "tokens_per_s_per_user", ""),
        ("TTFT p50 / p99", ("ttft_p50_s", "ttft_p99_s"), "s"),
        ("TPOT p50 / p99", ("tpot_p50_s", "tpot_p99_s"), "s"),
        ("S-MBU prefill / decode", ("prefill_s_mbu", "decode_s_mbu"), "%"),
        ("S-MFU prefill / decode", ("prefill_s_mfu", "decode_s_mfu"), "%"),
        ("energy per output token", "energy_per_output_token_j", "J"),
        ("USD per 1M output tokens at capacity", "usd_per_1m_output_tokens", "USD"),
        ("accuracy", "accuracy", "%"),
    )
    for label, keys, u in rows:
        scale = 100 if u == "%" else 1
        if isinstance(keys, tuple):
            table.add_row(label, " / ".join(fmt(at.get(k), u, scale) for k in keys))
        else:
            table.add_row(label, fmt(at.get(keys), u, scale))
    for entry in result["probes"]:
        ci = entry["attainment_ci95"]
        interval = f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""
        flags = ("" if entry["clear"] else " unclear") + (" stopped early" if entry["stopped_early"] else "")
        table.add_row(
            f"probe {entry['load']:g}",
            f"{entry['verdict']}: {fmt(entry['attainment'], '%', 100)}{interval} over {entry['runs']} run(s){flags}",
        )
    return table


def capacity_settings(config: Path | None, overrides: dict[str, Any]) -> dict[str, Any]:
    """The run settings every probe shares: a run YAML mapping from the config file and the flags (``out``
    left out: each probe has its own)."""
    spec_input: dict[str, Any] = {}
    if config is not None:
        from capbench.settings_files import load_yaml_mapping

        spec_input.update(load_yaml_mapping(config))
    given = {k: v for k, v in overrides.items() if v is not None}
    if isinstance(spec_input.get("engine_args"), dict) and "engine_args" in given:
        given["engine_args"] = {**spec_input["engine_args"], **given["engine_args"]}
    spec_input.update(given)
    spec_input.pop("out", None)
    return spec_input


__all__ = ["CAPACITY_FILE", "CapacityOptions", "capacity_settings", "result_table", "run_capacity"]
