"""Benchmark: a soak of ``capbench run`` against the mock server at the client's full speed.

Usage::

    .venv/bin/python benchmarks/soak.py                         # 10 minutes at concurrency 64
    .venv/bin/python benchmarks/soak.py --duration-s 60         # a short one
    .venv/bin/python benchmarks/soak.py --json soak.json        # also the per-second samples, as JSON

The mock server (:mod:`capbench.testing.mock_server`, zero delays, 64 tokens per request, nothing recorded) runs
pinned to one core; ``capbench run --runner openai --concurrency C --duration-s D`` runs pinned to the other
(``--client-cpus``: to several, e.g. ``1,0``, which lets it score the run as it goes), its stdout and stderr on a
pseudo-terminal (so its progress bar renders as it does for a user; the bytes it draws are counted). Every
``--interval-s`` (default 1 s) the sampler reads, for the ``capbench run`` process: ``VmRSS`` and ``Threads`` from
``/proc/<pid>/status``, the entries of ``/proc/<pid>/fd`` (open file descriptors), user + system CPU ticks from
``/proc/<pid>/stat``, and the lines appended to the run's ``requests.jsonl`` since the last sample (finished
requests, warm-up included).

Printed: the curve, in ``--rows`` windows (requests/s, RSS, fds, CPU share of one core); the client's RSS at
the start (the first sample once measured requests were being written) and at the end (the last sample
before the last request ended), its growth and its maximum, the growth over the second half of the load (what
is left once start-up allocations are done), the least-squares RSS slope in MB per minute; open fds at the
start, the end and their maximum; requests/s over the measured phase (the client's own report in ``run.json``:
completed requests / measured seconds); and the end of the run: the seconds from the last request's end (its
``t_done_ns``, on the system-wide ``CLOCK_MONOTONIC``) to ``run.json``'s final write, to ``summary.json``
(file modification times) and to the process's exit. The machine may be shared: figures are as measured.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MB = 1024 * 1024
TARGET_GROWTH_MB = 20.0
"""Issue #18's target: the client's RSS grows by less than this over the soak."""


# -- sampling /proc ----------------------------------------------------------------------------------------


@dataclass
class Sample:
    """One reading of the ``capbench run`` process. ``t_s``: seconds since it started; ``requests``: lines in
    ``requests.jsonl`` so far; ``cpu_s``: user + system CPU seconds so far."""

    t_s: float
    rss_mb: float
    fds: int
    threads: int
    cpu_s: float
    requests: int


def parse_status(text: str) -> dict[str, int]:
    """The ``kB`` and count fields of a ``/proc/<pid>/status`` text, as integers (``VmRSS`` in kB, ``Threads``).

    Lines look like ``VmRSS:\\t   51234 kB`` or ``Threads:\\t4``; fields whose value is not one integer (with an
    optional ``kB``) are skipped.
    """
    fields: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        parts = value.split()
        if len(parts) == 1 or (len(parts) == 2 and parts[1] == "kB"):
            with contextlib.suppress(ValueError):
                fields[key.strip()] = int(parts[0])
    return fields


def parse_stat_cpu_ticks(text: str) -> int:
    """User + system CPU clock ticks from a ``/proc/<pid>/stat`` text (fields 14 and 15; the command name in
    parentheses may hold spaces, so fields are counted after its closing parenthesis)."""
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


class LineCounter:
    """Counts the newline-terminated lines of a file that grows by appends, reading only what was added."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.lines = 0

    def update(self) -> int:
        """Read what was appended since the last call; return the lines counted so far (0 before the file exists)."""
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                while chunk := f.read(1 << 20):
                    self.lines += chunk.count(b"\n")
                    self.offset += len(chunk)
        except FileNotFoundError:
            pass
        return self.lines


def read_sample(pid: int, t_s: float, counter: LineCounter) -> Sample | None:
    """One :class:`Sample` of process ``pid``; None once it is gone."""
    try:
        status = parse_status(Path(f"/proc/{pid}/status").read_text())
        fds = sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())
        ticks = parse_stat_cpu_ticks(Path(f"/proc/{pid}/stat").read_text())
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    if "VmRSS" not in status:  # a zombie: its memory is gone already
        return None
    return Sample(
        t_s=t_s,
        rss_mb=status["VmRSS"] * 1024 / MB,
        fds=fds,
        threads=status.get("Threads", 0),
        cpu_s=ticks / os.sysconf("SC_CLK_TCK"),
        requests=counter.update(),
    )


# -- summarizing the curve ---------------------------------------------------------------------------------


def load_window(samples: list[Sample], warmup: int) -> tuple[int, int] | None:
    """Indices ``(first, last)`` of the samples taken while measured requests were being written: ``first`` is
    the first sample holding more than ``warmup`` request lines, ``last`` the sample before the first one that
    holds them all (the load had ended by then: scoring allocates, connections close). None when no measured
    request was seen."""
    first = next((i for i, s in enumerate(samples) if s.requests > warmup), None)
    if first is None:
        return None
    final = samples[-1].requests
    last = next(i for i, s in enumerate(samples) if s.requests == final) - 1
    return first, max(first, last)


def slope_per_min(ts: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of ``ys`` against ``ts`` (seconds), per minute; None with fewer than 2 distinct times.

    slope = Σ(t − t̄)(y − ȳ) / Σ(t − t̄)² × 60.
    """
    if len(ts) < 2:
        return None
    t_mean, y_mean = sum(ts) / len(ts), sum(ys) / len(ys)
    var = sum((t - t_mean) ** 2 for t in ts)
    if var == 0:
        return None
    return sum((t - t_mean) * (y - y_mean) for t, y in zip(ts, ys, strict=True)) / var * 60


def summarize(samples: list[Sample], warmup: int) -> dict[str, Any]:
    """RSS and fd figures over the load window (:func:`load_window`): at its first and last samples, the maximum,
    the growth (last − first, and last − middle sample), and the least-squares RSS slope over its second half
    (:func:`slope_per_min`); every figure None when the window is empty."""
    window = load_window(samples, warmup)
    keys = ("rss_start_mb", "rss_end_mb", "rss_max_mb", "rss_growth_mb", "rss_growth_second_half_mb")
    out: dict[str, Any] = dict.fromkeys((*keys, "rss_slope_second_half_mb_per_min", "fds_start", "fds_end", "fds_max"))
    if window is None:
        return out
    first, last = window
    load = samples[first : last + 1]
    mid = load[len(load) // 2]
    half = load[len(load) // 2 :]
    out.update(
        rss_start_mb=load[0].rss_mb,
        rss_end_mb=load[-1].rss_mb,
        rss_max_mb=max(s.rss_mb for s in load),
        rss_growth_mb=load[-1].rss_mb - load[0].rss_mb,
        rss_growth_second_half_mb=load[-1].rss_mb - mid.rss_mb,
        rss_slope_second_half_mb_per_min=slope_per_min([s.t_s for s in half], [s.rss_mb for s in half]),
        fds_start=load[0].fds,
        fds_end=load[-1].fds,
        fds_max=max(s.fds for s in load),
    )
    return out


def curve_rows(samples: list[Sample], rows: int) -> list[dict[str, float]]:
    """The curve in ``rows`` windows of consecutive samples: requests/s and CPU share over each window, and the
    RSS, fds and threads of its last sample."""
    if len(samples) < 2:
        return []
    step = max(1, (len(samples) - 1) // rows)
    out = []
    for i in range(0, len(samples) - 1, step):
        a, b = samples[i], samples[min(i + step, len(samples) - 1)]
        dt = b.t_s - a.t_s
        if dt <= 0:
            continue
        out.append(
            {
                "t_s": b.t_s,
                "requests_per_s": (b.requests - a.requests) / dt,
                "cpu_share": (b.cpu_s - a.cpu_s) / dt,
                "rss_mb": b.rss_mb,
                "fds": b.fds,
                "threads": b.threads,
            }
        )
    return out


# -- running it --------------------------------------------------------------------------------------------


class TerminalDrain:
    """A pseudo-terminal for the child's stdout and stderr (120×40), drained by a thread that counts the bytes."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self.bytes = 0
        self.tail = b""
        self._thread = threading.Thread(target=self._drain, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _drain(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: every writer closed its end
                return
            if not data:
                return
            self.bytes += len(data)
            self.tail = (self.tail + data)[-4000:]

    def close_child_end(self) -> None:
        os.close(self.slave)

    def finish(self) -> None:
        self._thread.join(timeout=5)
        with contextlib.suppress(OSError):
            os.close(self.master)


def run_soak(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from capbench.testing.mock_server import MockServerProcess, MockSettings

    run_dir = tmp / "run"
    settings = MockSettings(record=False, output_tokens=args.output_tokens)
    with MockServerProcess(settings, cpus=[args.server_cpu]) as server:
        command = [
            sys.executable, "-m", "capbench", "run", "--runner", "openai", "--base-url", server.url,
            "--concurrency", str(args.concurrency), "--duration-s", str(args.duration_s),
            "--max-tokens", str(args.output_tokens), "--warmup", str(args.warmup), "--power", "none",
            "--out", str(run_dir),
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(REPO), "TERM": os.environ.get("TERM", "xterm-256color")}
        env.pop("NO_COLOR", None)
        term = TerminalDrain()
        cpus = {int(c) for c in args.client_cpus.split(",")}

        def pin() -> None:  # pragma: no cover - runs in the child
            os.sched_setaffinity(0, cpus)

        t0 = time.monotonic()
        proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=term.slave, stderr=term.slave, env=env, preexec_fn=pin
        )
        term.close_child_end()
        term.start()
        counter = LineCounter(run_dir / "requests.jsonl")
        samples: list[Sample] = []
        next_t = t0
        while True:
            sample = read_sample(proc.pid, time.monotonic() - t0, counter)
            if sample is not None:
                samples.append(sample)
            next_t += args.interval_s
            try:  # wait for the next sample time, or the exit, whichever comes first
                proc.wait(timeout=max(0.0, next_t - time.monotonic()))
                break
            except subprocess.TimeoutExpired:
                continue
        t_exit_wall_ns = time.time_ns()
        term.finish()
    if proc.returncode != 0:
        raise RuntimeError(f"capbench run exited {proc.returncode}:\n{term.tail.decode(errors='replace')}")
    counter.update()
    return {
        "samples": samples,
        "run_dir": run_dir,
        "t_exit_wall_ns": t_exit_wall_ns,
        "terminal_bytes": term.bytes,
        "final_requests": counter.lines,
    }


def last_line(path: Path) -> dict[str, Any]:
    """The last JSON line of a JSONL file (read from its end)."""
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - (1 << 16)))
        lines = f.read().splitlines()
    record: dict[str, Any] = json.loads(lines[-1])
    return record


def end_of_run(run_dir: Path, t_exit_wall_ns: int) -> dict[str, float | None]:
    """Seconds from the last request's end to the final ``run.json``, to ``summary.json`` and to the exit.

    The last request's ``t_done_ns`` is on ``CLOCK_MONOTONIC`` (system-wide); it is moved to the wall clock of
    the files' modification times by the offset between the two clocks read now: wall = t_done_ns +
    (time_ns() − monotonic_ns()).
    """
    offset_ns = time.time_ns() - time.monotonic_ns()
    t_last_ns = last_line(run_dir / "requests.jsonl")["t_done_ns"] + offset_ns
    summary = run_dir / "summary.json"
    return {
        "last_request_to_run_json_s": ((run_dir / "run.json").stat().st_mtime_ns - t_last_ns) / 1e9,
        "last_request_to_summary_s": (summary.stat().st_mtime_ns - t_last_ns) / 1e9 if summary.exists() else None,
        "last_request_to_exit_s": (t_exit_wall_ns - t_last_ns) / 1e9,
    }


def _fmt(x: float | None, spec: str) -> str:
    return "null" if x is None else format(x, spec)


def print_report(args: argparse.Namespace, samples: list[Sample], figures: dict[str, Any]) -> None:
    f = figures
    print(
        f"soak: capbench run --concurrency {args.concurrency} --duration-s {args.duration_s:g} against the mock "
        f"server ({args.output_tokens} tokens/request, zero delays); server on CPU {args.server_cpu}, client on "
        f"CPU(s) {args.client_cpus}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the end"
    )
    print(f"\n{'t (s)':>7} {'req/s':>8} {'client CPU':>10} {'RSS (MB)':>9} {'fds':>5} {'threads':>7}")
    for row in curve_rows(samples, args.rows):
        print(
            f"{row['t_s']:>7.0f} {row['requests_per_s']:>8,.0f} {row['cpu_share']:>10.0%} {row['rss_mb']:>9.1f} "
            f"{row['fds']:>5} {row['threads']:>7}"
        )
    growth = f["rss_growth_mb"]
    verdict = "" if growth is None else ("met" if growth < TARGET_GROWTH_MB else "MISSED")
    print(
        f"\nclient RSS (MB): start {_fmt(f['rss_start_mb'], '.1f')}, end {_fmt(f['rss_end_mb'], '.1f')}, "
        f"max {_fmt(f['rss_max_mb'], '.1f')}; growth {_fmt(growth, '+.1f')} (target < {TARGET_GROWTH_MB:g} MB: "
        f"{verdict}); over the second half {_fmt(f['rss_growth_second_half_mb'], '+.1f')}, slope "
        f"{_fmt(f['rss_slope_second_half_mb_per_min'], '+.3f')} MB/min"
    )
    print(f"open fds: start {f['fds_start']}, end {f['fds_end']}, max {f['fds_max']}")
    lag_ms = None if f["loop_lag_p99_s"] is None else f["loop_lag_p99_s"] * 1e3
    print(
        f"requests: {f['requests_completed']:,} completed, {f['requests_failed']:,} failed in {f['measured_s']:.1f} s: "
        f"{_fmt(f['requests_per_s'], ',.0f')} requests/s; client CPU {_fmt(f['client_cpu_util'], '.0%')} of one "
        f"core, loop lag p99 {_fmt(lag_ms, '.2f')} ms, client_bound {f['client_bound']}"
    )
    print(
        f"progress display: {f['terminal_bytes'] / 1024:,.0f} KiB drawn on the terminal; requests.jsonl "
        f"{f['requests_jsonl_mb']:,.0f} MB"
    )
    print(
        "end of the run, from the last request's end: run.json final "
        f"{_fmt(f['last_request_to_run_json_s'], '.2f')} s, summary.json {_fmt(f['last_request_to_summary_s'], '.2f')}"
        f" s, process exit {_fmt(f['last_request_to_exit_s'], '.2f')} s"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration-s", type=float, default=600.0, help="measured duration (default 600)")
    p.add_argument("--concurrency", type=int, default=64, help="closed-loop concurrency (default 64)")
    p.add_argument("--output-tokens", type=int, default=64, help="tokens per response (default 64)")
    p.add_argument("--warmup", type=int, default=64, help="warm-up requests (default 64)")
    p.add_argument("--interval-s", type=float, default=1.0, help="sampling interval (default 1)")
    p.add_argument("--rows", type=int, default=10, help="rows of the printed curve (default 10)")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument(
        "--client-cpus", default="1", help="CPUs of capbench run, comma-separated; with two or more, the run is "
        "scored as it goes (capbench.summary.live) by a child on them"
    )  # fmt: skip
    p.add_argument("--json", type=Path, help="also write the figures and every sample to this file")
    p.add_argument("--keep", type=Path, help="keep the run directory here (default: a deleted temp directory)")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = args.keep or Path(tmp_name)
        tmp.mkdir(parents=True, exist_ok=True)
        soak = run_soak(args, tmp)
        run_dir: Path = soak["run_dir"]
        samples: list[Sample] = soak["samples"]
        client = json.loads((run_dir / "run.json").read_text())["client"]
        ends = end_of_run(run_dir, soak["t_exit_wall_ns"])
        requests_bytes = (run_dir / "requests.jsonl").stat().st_size
    measured_s = client["duration_s"]
    figures = summarize(samples, args.warmup) | {
        "requests_completed": client["completed"],
        "requests_failed": client["failed"],
        "measured_s": measured_s,
        "requests_per_s": client["completed"] / measured_s if measured_s else None,
        "client_cpu_util": client["cpu_util"],
        "loop_lag_p99_s": client["loop_lag_p99_s"],
        "client_bound": client["client_bound"],
        "terminal_bytes": soak["terminal_bytes"],
        "requests_jsonl_mb": requests_bytes / MB,
        **ends,
    }
    print_report(args, samples, figures)
    if args.json:
        args.json.write_text(json.dumps({"figures": figures, "samples": [asdict(s) for s in samples]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
