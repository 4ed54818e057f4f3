"""Request traces recorded from production systems: parsed, checked, and turned into a schedule.

Two formats:

- ``mooncake`` (JSONL, one request per line): ``timestamp`` (ms from the trace start), ``input_length`` and
  ``output_length`` (tokens) and ``hash_ids`` (the ids of the prompt's 512-token blocks, in order; two requests
  that list the same id share that block of prompt tokens). Extra keys are ignored.
- ``burstgpt`` (CSV with a header): ``Timestamp`` (s), ``Request tokens``, ``Response tokens`` (other columns,
  e.g. ``Model`` and ``Log Type``, are ignored). A row with ``Response tokens`` of 0 is a failed request in
  BurstGPT's logs: it is skipped and counted (:attr:`Trace.skipped_failed`).

Every problem is a :class:`~capbench.errors.ConfigError` naming the file and line, raised before any request is
sent: unreadable or malformed lines, a missing field or column, a negative or non-integer length, a timestamp
earlier than the one before it, an empty trace. A trace's scheduled offsets are ``(t_i − t_0) / replay_speed``
in integer nanoseconds, ``t_0`` the first entry's timestamp.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from capbench.errors import ConfigError
from capbench.workload.files import read_utf8

TraceFormat = Literal["mooncake", "burstgpt"]
TRACE_FORMATS: tuple[str, ...] = ("mooncake", "burstgpt")
MOONCAKE_BLOCK_TOKENS = 512
"""Tokens per Mooncake ``hash_ids`` block."""
BURSTGPT_COLUMNS = ("Timestamp", "Request tokens", "Response tokens")


@dataclass(frozen=True)
class TraceEntry:
    """One recorded request: when (s from the trace's own origin), how long its prompt and output were, and
    its prompt's block ids (Mooncake; empty for BurstGPT)."""

    timestamp_s: float
    prompt_tokens: int
    output_tokens: int
    block_ids: tuple[int, ...] = ()
    line: int = 0


@dataclass(frozen=True)
class Trace:
    """A parsed trace: its entries in time order, its file's sha256, and the failed entries skipped."""

    entries: tuple[TraceEntry, ...]
    format: TraceFormat
    source: str
    sha256: str
    skipped_failed: int = 0

    def offsets_ns(self, replay_speed: float = 1.0, count: int | None = None) -> list[int]:
        """Scheduled offsets (ns from the measured phase's start) of the first ``count`` entries (all: None)."""
        if not (math.isfinite(replay_speed) and replay_speed > 0):
            raise ConfigError(f"replay_speed must be a finite number > 0, got {replay_speed!r}")
        entries = self.entries if count is None else self.entries[:count]
        if not entries:
            return []
        t0 = entries[0].timestamp_s
        return [round((e.timestamp_s - t0) / replay_speed * 1e9) for e in entries]

    def duration_s(self, replay_speed: float = 1.0) -> float:
        """Seconds from the first to the last arrival at ``replay_speed``."""
        return (self.entries[-1].timestamp_s - self.entries[0].timestamp_s) / replay_speed


def _count(value: Any, what: str, where: str, minimum: int) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{where}: {what} must be an integer, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise ConfigError(f"{where}: {what} must be an integer, got {value!r}") from None
    if not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where}: {what} must be an integer >= {minimum}, got {value!r}")
    return value


def _time(value: Any, what: str, where: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{where}: {what} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {what} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise ConfigError(f"{where}: {what} must be a finite number >= 0, got {value!r}")
    return number


def _check_order(entries: Iterable[TraceEntry], source: str) -> None:
    previous: TraceEntry | None = None
    for entry in entries:
        if previous is not None and entry.timestamp_s < previous.timestamp_s:
            raise ConfigError(
                f"{source}:{entry.line}: timestamp {entry.timestamp_s:g} s is earlier than line {previous.line}'s "
                f"{previous.timestamp_s:g} s; a trace must be in time order"
            )
        previous = entry


def _mooncake(text: str, source: str) -> list[TraceEntry]:
    entries = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{source}:{lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: not valid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise ConfigError(f"{where}: each line must be a JSON object")
        missing = [key for key in ("timestamp", "input_length", "output_length", "hash_ids") if key not in obj]
        if missing:
            raise ConfigError(f"{where}: missing {', '.join(missing)} (a Mooncake trace line needs all four)")
        prompt = _count(obj["input_length"], "input_length", where, 1)
        blocks = obj["hash_ids"]
        if not isinstance(blocks, list):
            raise ConfigError(f"{where}: hash_ids must be a list of integers")
        block_ids = tuple(_count(b, "each hash_ids entry", where, 0) for b in blocks)
        needed = math.ceil(prompt / MOONCAKE_BLOCK_TOKENS)
        if len(block_ids) < needed:
            raise ConfigError(
                f"{where}: input_length {prompt} needs {needed} blocks of {MOONCAKE_BLOCK_TOKENS} tokens but "
                f"hash_ids lists {len(block_ids)}"
            )
        entries.append(
            TraceEntry(
                _time(obj["timestamp"], "timestamp", where) / 1e3,
                prompt,
                _count(obj["output_length"], "output_length", where, 1),
                block_ids[:needed],
                lineno,
            )
        )
    return entries


def _burstgpt(text: str, source: str) -> tuple[list[TraceEntry], int]:
    reader = csv.DictReader(text.splitlines())
    header = [name.strip() for name in reader.fieldnames or []]
    missing = [column for column in BURSTGPT_COLUMNS if column not in header]
    if missing:
        raise ConfigError(
            f"{source}: missing column(s) {', '.join(missing)} (a BurstGPT CSV has {', '.join(BURSTGPT_COLUMNS)})"
        )
    entries, failed = [], 0
    for lineno, row in enumerate(reader, start=2):
        row = {(k or "").strip(): v for k, v in row.items()}
        where = f"{source}:{lineno}"
        if any(row.get(column) in (None, "") for column in BURSTGPT_COLUMNS):
            raise ConfigError(f"{where}: a row needs {', '.join(BURSTGPT_COLUMNS)}")
        output = _count(row["Response tokens"], "Response tokens", where, 0)
        if output == 0:
            failed += 1
            continue
        prompt = _count(row["Request tokens"], "Request tokens", where, 1)
        entries.append(TraceEntry(_time(row["Timestamp"], "Timestamp", where), prompt, output, (), lineno))
    return entries, failed


def load_trace(path: str | Path, trace_format: str) -> Trace:
    """Parse and check a trace file (module docstring); a :class:`ConfigError` names the first problem."""
    if trace_format not in TRACE_FORMATS:
        raise ConfigError(f"trace_format must be one of {', '.join(TRACE_FORMATS)}, got {trace_format!r}")
    source = str(path)
    data, text = read_utf8(path, "trace")
    failed = 0
    if trace_format == "mooncake":
        entries = _mooncake(text, source)
    else:
        entries, failed = _burstgpt(text, source)
    if not entries:
        note = f" ({failed} failed entries skipped)" if failed else ""
        raise ConfigError(f"trace {path} holds no requests{note}")
    _check_order(entries, source)
    fmt: TraceFormat = "mooncake" if trace_format == "mooncake" else "burstgpt"
    return Trace(tuple(entries), fmt, source, hashlib.sha256(data).hexdigest(), failed)
