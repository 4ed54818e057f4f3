"""A small, dependency-free reader of the Prometheus text exposition format (version 0.0.4).

A scrape is a text of lines, each one of:

- ``# HELP name docstring`` / ``# TYPE name counter|gauge|histogram|summary|untyped`` / any other ``# ...``
  comment (ignored apart from ``TYPE``, which is kept in :attr:`PromScrape.types`);
- a blank line (ignored);
- a sample: ``name[{label="value",...}] value [timestamp_ms]``. Names may hold colons (``vllm:...``); label
  values escape ``\\\\``, ``\\"`` and ``\\n``; values may be ``NaN``, ``+Inf`` or ``-Inf``; the optional
  timestamp is integer milliseconds since the Unix epoch.

Reading a scrape never raises: a line that is none of these is skipped and counted
(:attr:`PromScrape.malformed`), with its line number and the reason kept for the first few.

Helpers aggregate over label sets: :func:`metric_total` (a counter's or gauge's sum over its series, optionally
only those whose labels match a filter) and :func:`histogram` (cumulative bucket counts per ``le`` summed
over the other labels, with ``_sum`` and ``_count``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

Labels = tuple[tuple[str, str], ...]
"""Label pairs sorted by name: hashable, and equal for equal label sets whatever their order in the text."""

MAX_MALFORMED_KEPT = 10
"""How many malformed lines :class:`PromScrape` keeps (line number and reason); all are counted."""

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_FLOAT = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[iI]nf(?:inity)?|NaN|nan)")
_INT = re.compile(r"-?\d+")
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


class PromParseError(ValueError):
    """A sample line that does not follow the text format (caught by :func:`parse_prometheus`)."""


@dataclass(frozen=True)
class PromSample:
    """One sample line: metric name, labels (sorted pairs), value, and the optional timestamp in ms."""

    name: str
    labels: Labels
    value: float
    timestamp_ms: int | None = None

    def label(self, key: str) -> str | None:
        """The value of label ``key``, or ``None`` when the sample does not carry it."""
        for name, value in self.labels:
            if name == key:
                return value
        return None

    @property
    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)

    def matches(self, match: Mapping[str, str] | None) -> bool:
        """True when every ``label=value`` of ``match`` is on this sample (``None`` or ``{}`` matches all)."""
        return not match or all(self.label(k) == v for k, v in match.items())


@dataclass(frozen=True)
class PromHistogram:
    """A histogram summed over label sets.

    ``buckets`` holds ``(le, cumulative_count)`` pairs in ascending ``le`` (the last one ``+Inf`` when the
    server exposes it): the number of observations ``<= le``. ``sum`` is the sum of the observed values (in
    the metric's unit), ``count`` the number of observations; either is ``None`` when not exposed.
    """

    name: str
    buckets: tuple[tuple[float, float], ...]
    sum: float | None
    count: float | None


@dataclass(frozen=True)
class PromScrape:
    """A parsed scrape: its samples in text order, the ``# TYPE`` of each family, and the lines skipped."""

    samples: tuple[PromSample, ...]
    types: Mapping[str, str] = field(default_factory=dict)
    malformed: int = 0
    malformed_lines: tuple[tuple[int, str], ...] = ()

    def series(self, name: str, match: Mapping[str, str] | None = None) -> list[PromSample]:
        """The samples named exactly ``name`` whose labels match ``match``."""
        return [s for s in self._by_name().get(name, ()) if s.matches(match)]

    def has(self, name: str) -> bool:
        """True when at least one sample is named exactly ``name``."""
        return name in self._by_name()

    def has_histogram(self, name: str) -> bool:
        """True when the scrape holds ``name_bucket``, ``name_count`` or ``name_sum`` samples."""
        return any(self.has(name + suffix) for suffix in ("_bucket", "_count", "_sum"))

    def total(self, name: str, match: Mapping[str, str] | None = None) -> float | None:
        """:func:`metric_total` over this scrape."""
        return metric_total(self._by_name().get(name, ()), name, match)

    def histogram(self, name: str, match: Mapping[str, str] | None = None) -> PromHistogram | None:
        """:func:`histogram` over this scrape."""
        by_name = self._by_name()
        parts = [s for suffix in ("_bucket", "_sum", "_count") for s in by_name.get(name + suffix, ())]
        return histogram(parts, name, match)

    def _by_name(self) -> dict[str, list[PromSample]]:
        cached: dict[str, list[PromSample]] | None = self.__dict__.get("_index")
        if cached is None:
            cached = {}
            for sample in self.samples:
                cached.setdefault(sample.name, []).append(sample)
            object.__setattr__(self, "_index", cached)  # a cache on a frozen instance: not part of its value
        return cached


def parse_prometheus(text: str) -> PromScrape:
    """Parse a whole scrape; never raises. Malformed lines are skipped and counted."""
    samples: list[PromSample] = []
    types: dict[str, str] = {}
    malformed = 0
    kept: list[tuple[int, str]] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            _read_comment(line, types)
            continue
        try:
            samples.append(parse_sample_line(line))
        except PromParseError as exc:
            malformed += 1
            if len(kept) < MAX_MALFORMED_KEPT:
                kept.append((lineno, str(exc)))
    return PromScrape(samples=tuple(samples), types=types, malformed=malformed, malformed_lines=tuple(kept))


def parse_prometheus_text(text: str) -> list[PromSample]:
    """The samples of a scrape in text order (malformed lines skipped; :func:`parse_prometheus` counts them)."""
    return list(parse_prometheus(text).samples)


def _read_comment(line: str, types: dict[str, str]) -> None:
    """Keep ``# TYPE name kind``; every other comment (``# HELP``, ``# EOF``, free text) is ignored."""
    parts = line[1:].split(None, 3)
    if len(parts) >= 3 and parts[0] == "TYPE" and _NAME.fullmatch(parts[1]):
        types[parts[1]] = parts[2]


def parse_sample_line(line: str) -> PromSample:
    """Parse one sample line; :class:`PromParseError` saying what is wrong when it is not one."""
    m = _NAME.match(line)
    if m is None:
        raise PromParseError("no metric name")
    name, pos = m.group(), m.end()
    labels: Labels = ()
    if pos < len(line) and line[pos] == "{":
        labels, pos = _parse_labels(line, pos + 1)
    rest = line[pos:]
    if rest and not rest[0].isspace():
        raise PromParseError(f"unexpected {rest[0]!r} after the metric name")
    fields = rest.split()
    if not 1 <= len(fields) <= 2:
        raise PromParseError(f"expected a value and an optional timestamp, got {len(fields)} fields")
    value = _parse_value(fields[0])
    timestamp = None
    if len(fields) == 2:
        if not _INT.fullmatch(fields[1]):
            raise PromParseError(f"timestamp {fields[1]!r} is not integer milliseconds")
        timestamp = int(fields[1])
    return PromSample(name=name, labels=labels, value=value, timestamp_ms=timestamp)


def _parse_value(token: str) -> float:
    if not _FLOAT.fullmatch(token):
        raise PromParseError(f"value {token!r} is not a number")
    return float(token)


def _parse_labels(line: str, pos: int) -> tuple[Labels, int]:
    """Parse ``name="value",...}`` starting just after ``{``; return the sorted pairs and the index after ``}``."""
    pairs: dict[str, str] = {}
    while True:
        pos = _skip_spaces(line, pos)
        if pos < len(line) and line[pos] == "}":
            return tuple(sorted(pairs.items())), pos + 1
        m = _LABEL_NAME.match(line, pos)
        if m is None:
            raise PromParseError(f"bad label name at column {pos + 1}")
        key = m.group()
        pos = _skip_spaces(line, m.end())
        if line[pos : pos + 1] != "=":
            raise PromParseError(f"missing '=' after label {key!r}")
        pos = _skip_spaces(line, pos + 1)
        if line[pos : pos + 1] != '"':
            raise PromParseError(f"label {key!r} has no quoted value")
        value, pos = _parse_quoted(line, pos + 1)
        if key in pairs:
            raise PromParseError(f"label {key!r} repeated")
        pairs[key] = value
        pos = _skip_spaces(line, pos)
        if line[pos : pos + 1] == ",":
            pos += 1
        elif line[pos : pos + 1] != "}":
            raise PromParseError(f"expected ',' or '}}' after label {key!r}")


def _parse_quoted(line: str, pos: int) -> tuple[str, int]:
    """Read a label value after its opening quote, undoing ``\\\\``, ``\\"``, ``\\n`` (any other escape is
    kept as written); return it and the index after the closing quote."""
    out: list[str] = []
    while pos < len(line):
        ch = line[pos]
        if ch == '"':
            return "".join(out), pos + 1
        if ch == "\\" and pos + 1 < len(line):
            nxt = line[pos + 1]
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
            pos += 2
            continue
        out.append(ch)
        pos += 1
    raise PromParseError("unterminated label value")


def _skip_spaces(line: str, pos: int) -> int:
    while pos < len(line) and line[pos] in " \t":
        pos += 1
    return pos


def metric_total(samples: Iterable[PromSample], name: str, match: Mapping[str, str] | None = None) -> float | None:
    """Σ value over the samples named ``name`` whose labels match ``match``; ``None`` when there are none.

    For a counter or an extensive gauge (requests running) this is the server-wide figure. NaN values are
    left out of the sum; a family holding only NaN gives ``None``.
    """
    values = [s.value for s in samples if s.name == name and s.matches(match)]
    finite = [v for v in values if not math.isnan(v)]
    return math.fsum(finite) if finite else None


def metric_values(samples: Iterable[PromSample], name: str, match: Mapping[str, str] | None = None) -> list[float]:
    """The non-NaN values of the samples named ``name`` whose labels match ``match``, in text order."""
    return [s.value for s in samples if s.name == name and s.matches(match) and not math.isnan(s.value)]


def histogram(samples: Iterable[PromSample], name: str, match: Mapping[str, str] | None = None) -> PromHistogram | None:
    """The histogram ``name`` (from ``name_bucket``, ``name_sum``, ``name_count``) summed over label sets.

    Series are grouped by their labels other than ``le``; the cumulative count at each bound ``x`` is
    Σ over groups of that group's count at its largest ``le <= x`` (its exact count when every group uses
    the same bounds, as servers do). ``None`` when no bucket, sum or count sample matches.
    """
    groups: dict[Labels, dict[float, float]] = {}
    sums: list[float] = []
    counts: list[float] = []
    for s in samples:
        if not s.matches(match):
            continue
        if s.name == name + "_bucket":
            le = s.label("le")
            if le is None or not _FLOAT.fullmatch(le):
                continue
            other = tuple(p for p in s.labels if p[0] != "le")
            groups.setdefault(other, {})[float(le)] = s.value
        elif s.name == name + "_sum":
            sums.append(s.value)
        elif s.name == name + "_count":
            counts.append(s.value)
    if not groups and not sums and not counts:
        return None
    return PromHistogram(
        name=name,
        buckets=_sum_buckets(list(groups.values())),
        sum=math.fsum(sums) if sums else None,
        count=math.fsum(counts) if counts else None,
    )


def _sum_buckets(groups: Sequence[Mapping[float, float]]) -> tuple[tuple[float, float], ...]:
    bounds = sorted({le for group in groups for le in group})
    ordered = [sorted(group.items()) for group in groups]
    return tuple((x, math.fsum(_count_at(pairs, x) for pairs in ordered)) for x in bounds)


def _count_at(pairs: Sequence[tuple[float, float]], x: float) -> float:
    """A group's cumulative count at ``x``: its count at its largest bound ``<= x`` (0 below its first)."""
    count = 0.0
    for le, c in pairs:
        if le > x:
            break
        count = c
    return count
