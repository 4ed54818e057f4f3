"""Read a run directory back: the manifest, and records line by line.

A torn last line (the process died mid-write) is skipped with a :class:`RecordWarning`; so is any other line
that is not a JSON object, with its line number. Reading never fails a run because of one torn line. Records
that parse but cannot be true (a string where a count belongs, a negative power, conflicting duplicates) are
refused with a :class:`CapbenchError` naming file, line and value; identical duplicates are dropped with a
warning (:mod:`capbench.records.validate`). The manifest must have a known ``status``, a ``run_id`` and a
``spec``.
"""

from __future__ import annotations

import stat
import warnings
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from capbench.errors import CapbenchError
from capbench.records.columns import RequestChunk, to_chunk
from capbench.records.key_hashes import ColumnarKey, HashLog, KeyHashes, portable_hash, portable_hashes
from capbench.records.pass_codec import expand_pass
from capbench.records.power_columns import PowerColumns, power_columns
from capbench.records.schema import (
    MANIFEST_FILE,
    PASSES_FILE,
    POWER_FILE,
    READABLE_SCHEMA_VERSIONS,
    REQUESTS_FILE,
    SERVER_METRICS_FILE,
    RunStatus,
)
from capbench.records.token_times import expand_request
from capbench.records.validate import (
    canonical,
    check_power,
    check_request,
    checked,
    conflict_error,
    dropped_warning,
    pass_key,
    power_key,
    request_key,
    unique,
)


class RecordWarning(UserWarning):
    """A record line was skipped (torn or not a JSON object)."""


def present(path: Path) -> bool:
    """Whether a record file exists: False only when nothing is there. A path that exists but cannot be a record
    file (a directory, a symlink loop, no permission) is a clear error, never read as absent."""
    try:
        info = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise CapbenchError(f"{path} is a broken symbolic link") from None
        return False
    except OSError as exc:
        raise CapbenchError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if stat.S_ISDIR(info.st_mode):
        raise CapbenchError(f"{path} is a directory, not a record file")
    return True


BLOCK_BYTES = 1 << 18
"""Bytes read at a time by :func:`iter_jsonl_blocks` (a block holds the whole lines among them).

A block's decoded objects are all alive at once, so the block is kept small enough for them to stay in the CPU's
cache while they are used: decoded, a request line takes about 3 times its bytes, a pass line (hundreds of
integers in nested lists) about 8 times. Measured on the 2-core development VM, scanning 1M requests took
4.0 s with 256 KiB blocks against 5.1–5.7 s with 1 MiB blocks."""

PASS_BLOCK_BYTES = 1 << 16
"""Bytes per block of ``passes.jsonl`` (see :data:`BLOCK_BYTES`): scanning 1M passes took 8.2–8.5 s with 64 KiB
blocks against 10.6–11.9 s with 1 MiB blocks (same VM)."""

Block = tuple[Sequence[int], list[dict[str, Any]]]
"""Line numbers and the JSON objects on those lines."""


def iter_jsonl_blocks(
    path: Path,
    warn: bool = True,
    block_bytes: int = BLOCK_BYTES,
    *,
    start: int = 0,
    stop: int | None = None,
    first_line: int = 1,
    more: Callable[[], bool] | None = None,
) -> Iterator[Block]:
    """The JSON objects of a ``.jsonl`` file in blocks of whole lines (about ``block_bytes`` each), with their
    line numbers (1-based); a missing file yields nothing.

    Blank lines are ignored. A line that does not parse as a JSON object is skipped with a
    :class:`RecordWarning` naming the file and line (a torn last line is the usual cause; ``warn=False``: silently,
    for a second read of a file already warned about). A path that exists but is not a readable file raises
    :class:`CapbenchError` (:func:`present`). A block of well-formed lines is decoded in one list comprehension
    (no per-line generator step); a block with any other line goes line by line.

    ``start``/``stop``: read only the bytes [start, stop) (a segment of the file from :func:`line_bounds`: it
    starts at a line and ends after one; ``stop`` None: to the end), whose first line is line ``first_line`` of
    the file (:func:`count_lines`).

    ``more``: for a file still being written (:mod:`capbench.summary.live`), called each time the read reaches
    the end of the file; True to read again (it waits for more first), False to end there. A line is taken only
    once its newline is written, so the blocks hold the lines a read of the finished file holds.
    """
    if not present(path):
        return
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise CapbenchError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with handle as f:
        if start:
            f.seek(start)
        left = -1 if stop is None else stop - start  # bytes still to read (−1: to the end)
        done = first_line - 1  # lines before the block
        tail = b""
        while left:
            data = f.read(block_bytes if left < 0 else min(block_bytes, left))
            if not data:
                if more is not None and more():
                    continue
                break
            if left > 0:
                left -= len(data)
            lines = (tail + data if tail else data).split(b"\n")
            tail = lines.pop()  # what follows the last newline: the start of a line not read whole yet
            if not lines:
                continue
            block = _decode_block(lines, done, path, warn, last_torn=False)
            done += len(lines)
            if block[1]:
                yield block
        if tail:
            block = _decode_block([tail], done, path, warn, last_torn=True)
            if block[1]:
                yield block


def count_lines(path: Path, stop: int) -> int:
    """The newlines among the first ``stop`` bytes of ``path`` (so the line at byte ``stop`` is line count + 1)."""
    count = 0
    with path.open("rb") as f:
        left = stop
        while left > 0:
            data = f.read(min(1 << 24, left))
            if not data:
                break
            count += data.count(b"\n")
            left -= len(data)
    return count


def line_bounds(path: Path, parts: int) -> list[tuple[int, int | None]]:
    """``path`` cut into at most ``parts`` byte ranges of about equal size, each starting at a line and ending
    right after a newline (the last: at the end of the file, ``None``), for reading by several processes."""
    size = path.stat().st_size
    starts = [0]
    with path.open("rb") as f:
        for part in range(1, parts):
            at = max(size * part // parts, starts[-1])
            f.seek(at)
            while True:  # the first newline at or after ``at``
                data = f.read(1 << 16)
                if not data:
                    at = size
                    break
                found = data.find(b"\n")
                if found >= 0:
                    at += found + 1
                    break
                at += len(data)
            if at >= size:
                break
            if at > starts[-1]:
                starts.append(at)
    return [(begin, end) for begin, end in zip(starts, [*starts[1:], None], strict=True)]


def _decode_block(lines: list[bytes], done: int, path: Path, warn: bool, last_torn: bool) -> Block:
    loads = orjson.loads
    try:
        objs = [loads(raw) for raw in lines]
        if set(map(type, objs)) == {dict}:
            return range(done + 1, done + 1 + len(lines)), objs
    except orjson.JSONDecodeError:
        pass
    numbers: list[int] = []
    kept: list[dict[str, Any]] = []
    for index, raw in enumerate(lines):
        lineno = done + 1 + index
        if not raw.strip():
            continue
        try:
            obj = loads(raw)
        except orjson.JSONDecodeError:
            torn = last_torn and index == len(lines) - 1
            what = "torn last line" if torn else "line that is not valid JSON"
            if warn:
                warnings.warn(f"{path}: skipped {what} {lineno}", RecordWarning, stacklevel=4)
            continue
        if not isinstance(obj, dict):
            if warn:
                warnings.warn(f"{path}: skipped line {lineno} (not a JSON object)", RecordWarning, stacklevel=4)
            continue
        numbers.append(lineno)
        kept.append(obj)
    return numbers, kept


def iter_jsonl_numbered(path: Path, warn: bool = True) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each JSON object of a ``.jsonl`` file (:func:`iter_jsonl_blocks`, one at a
    time)."""
    for numbers, objs in iter_jsonl_blocks(path, warn):
        yield from zip(numbers, objs, strict=True)


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Each JSON object of a ``.jsonl`` file (:func:`iter_jsonl_numbered` without the line numbers)."""
    for _, obj in iter_jsonl_numbered(path):
        yield obj


def read_json_object(path: Path, fix: str = "") -> dict[str, Any]:
    """Load a JSON file that must hold an object; a clear error (with ``fix`` appended) when it does not."""
    if not present(path):
        raise CapbenchError(f"{path} does not exist{fix}")
    try:
        obj = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise CapbenchError(f"cannot read {path}: {exc.strerror or exc}{fix}") from exc
    except orjson.JSONDecodeError as exc:
        raise CapbenchError(f"{path} is not valid JSON ({exc}){fix}") from exc
    if not isinstance(obj, dict):
        raise CapbenchError(f"{path} must hold a JSON object{fix}")
    return obj


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """Load ``run.json``; a clear error when it is missing, unreadable or of an unknown schema version."""
    path = Path(run_dir) / MANIFEST_FILE
    if not present(path):
        raise CapbenchError(f"{run_dir} is not a capbench run directory: {MANIFEST_FILE} is missing")
    manifest = read_json_object(path)
    version = manifest.get("schema_version")
    if version not in READABLE_SCHEMA_VERSIONS:
        raise CapbenchError(
            f"{path}: schema_version {version!r} is not one this capbench reads "
            f"({sorted(READABLE_SCHEMA_VERSIONS)}); upgrade capbench"
        )
    status = manifest.get("status")
    if status not in {s.value for s in RunStatus}:
        raise CapbenchError(
            f"{path}: status {status!r} is not one of {', '.join(s.value for s in RunStatus)}; this is not a "
            "run.json capbench wrote (or it was edited)"
        )
    return manifest


@dataclass
class RunData:
    """A run directory in memory: the manifest and its requests and power samples.

    Passes are not loaded here (a run may hold millions); iterate them with :meth:`iter_passes`. Neither are
    the server's ``/metrics`` scrapes (:meth:`iter_server_metrics`).
    """

    run_dir: Path
    manifest: dict[str, Any]
    requests: list[dict[str, Any]] = field(default_factory=list)
    power: list[dict[str, Any]] = field(default_factory=list)

    def iter_passes(self) -> Iterator[dict[str, Any]]:
        """The step records in the runners' form (the integer lists of schema 3 decoded:
        :func:`~.pass_codec.expand_pass`), identical duplicates dropped, conflicting ones refused (:mod:`.validate`).
        """
        path = self.run_dir / PASSES_FILE
        expanded = ((line, _expanded_pass(line, record, path)) for line, record in iter_jsonl_numbered(path))
        return unique(expanded, pass_key, path)

    @property
    def has_passes(self) -> bool:
        return present(self.run_dir / PASSES_FILE)

    def iter_server_metrics(self) -> Iterator[dict[str, Any]]:
        """The ``/metrics`` scrapes of ``server_metrics.jsonl`` (server runners), in file order."""
        return iter_jsonl(self.run_dir / SERVER_METRICS_FILE)

    @property
    def has_server_metrics(self) -> bool:
        return present(self.run_dir / SERVER_METRICS_FILE)


def read_requests(path: Path) -> list[dict[str, Any]]:
    """``requests.jsonl``, every record checked and deduplicated (:mod:`.validate`), in schema 1's form (compact
    token times of schema 2 expanded back to ``token_times_ns``: :func:`~.token_times.expand_request`)."""
    records = unique_numbered(checked(iter_jsonl_numbered(path), check_request, path), request_key, path)
    return [_expanded(line, record, path) for line, record in records]


def _expanded(line: int, record: dict[str, Any], path: Path) -> dict[str, Any]:
    try:
        return expand_request(record)
    except (ValueError, TypeError) as exc:
        raise CapbenchError(
            f"{path}, line {line}: the token times of {record.get('id')!r} are not valid: {exc}"
        ) from None


def _expanded_pass(line: int, record: dict[str, Any], path: Path) -> dict[str, Any]:
    try:
        return expand_pass(record)
    except ValueError as exc:
        raise CapbenchError(f"{path}, line {line}: a pass record that does not decode: {exc}") from None


def unique_numbered(
    records: Iterator[tuple[int, dict[str, Any]]], key: Callable[[Mapping[str, Any]], Hashable], path: Path
) -> Iterator[tuple[int, dict[str, Any]]]:
    """:func:`~.validate.unique`, keeping each record's line number."""
    current = [0]

    def feed() -> Iterator[tuple[int, dict[str, Any]]]:
        for line, record in records:
            current[0] = line
            yield line, record

    for record in unique(feed(), key, path):  # unique yields a record as soon as it reads it
        yield current[0], record


def read_power(path: Path) -> list[dict[str, Any]]:
    """``power.jsonl``, every sample checked and deduplicated (:mod:`.validate`)."""
    return list(unique(checked(iter_jsonl_numbered(path), check_power, path), power_key, path))


def read_run(run_dir: Path) -> RunData:
    """Read a run directory: ``run.json`` (required), ``requests.jsonl`` and ``power.jsonl`` (optional), each
    record checked where it enters (:mod:`.validate`)."""
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    return RunData(
        run_dir=run_dir,
        manifest=manifest,
        requests=read_requests(run_dir / REQUESTS_FILE),
        power=read_power(run_dir / POWER_FILE),
    )


class Rescan(Exception):  # noqa: N818 (a signal, not an error)
    """Raised by :meth:`KeyedFile.numbered` at the end of a file that held duplicate keys: the consumer starts
    again (the next read skips the identical duplicates; conflicting ones were refused)."""


class KeyedFile:
    """A record file read in one pass, its duplicates found at the end in bounded memory.

    While records stream, only ``hash(key(record))`` is kept (:class:`~.key_hashes.KeyHashes`: 8 bytes a record,
    in memory up to 2¹⁸ records, then in partition files). At the end of the file equal hashes are candidates:
    the file is read again for those records only, their keys and contents compared
    (:func:`~.validate.canonical`); identical duplicates are dropped with one warning, a conflicting one is a
    :class:`CapbenchError` naming both lines (the messages of :func:`~.validate.unique`). When something was
    dropped, :class:`Rescan` tells the consumer to read again (the common case, no duplicate, reads once).
    """

    def __init__(
        self,
        path: Path,
        key: Callable[[Mapping[str, Any]], Hashable],
        block_bytes: int = BLOCK_BYTES,
        more: Callable[[], bool] | None = None,
    ) -> None:
        """``more``: the first read follows a file still being written (:func:`iter_jsonl_blocks`)."""
        self.path = path
        self.key = key
        self.block_bytes = block_bytes
        self.more = more
        self.skip: frozenset[int] = frozenset()
        self.verified = False

    def numbered(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """``(line, record)`` of every record but the dropped duplicates; may raise :class:`Rescan` at the end."""
        for numbers, records in self.blocks():
            yield from zip(numbers, records, strict=True)

    def blocks(self) -> Iterator[Block]:
        """:meth:`numbered` in blocks of lines (:func:`iter_jsonl_blocks`)."""
        if self.verified:
            skip, ordinal = self.skip, 0
            for numbers, records in iter_jsonl_blocks(self.path, warn=False, block_bytes=self.block_bytes):
                first, ordinal = ordinal, ordinal + len(records)
                if skip and any(first <= k < ordinal for k in skip):
                    kept = [i for i in range(len(records)) if first + i not in skip]
                    numbers, records = [numbers[i] for i in kept], [records[i] for i in kept]
                yield numbers, records
            return
        hashes = KeyHashes()
        try:
            key = self.key
            # A key that gives columns is hashed a column at a time (portable_hashes); one record's hash must
            # then be the same function's (portable_hash), so that equal keys in any two blocks hash alike.
            columnar = isinstance(key, ColumnarKey)
            one = portable_hash if columnar else hash
            for numbers, records in iter_jsonl_blocks(self.path, block_bytes=self.block_bytes, more=self.more):
                try:
                    hashes.extend(portable_hashes(key, records) if columnar else [hash(key(r)) for r in records])
                except TypeError:  # an unhashable key: the per-record checks report it
                    base = len(hashes)
                    for i, record in enumerate(records):
                        try:
                            hashes.append(one(key(record)))
                        except TypeError:
                            hashes.append(-(base + i))
                yield numbers, records
            colliding = hashes.colliding()
        finally:
            hashes.close()
        self.verified = True
        if self._verify(colliding):
            raise Rescan(str(self.path))

    def segment_blocks(self, start: int, stop: int | None, log: HashLog) -> Iterator[Block]:
        """The blocks of one segment of the file (bytes [start, stop): :func:`line_bounds`), every line number
        that of the whole file; each record's key hash goes to ``log`` and duplicates are not looked for here (the
        reader of the whole file checks every segment's log: :func:`~.key_hashes.any_colliding`)."""
        first_line = 1 + count_lines(self.path, start) if start else 1
        for numbers, records in iter_jsonl_blocks(
            self.path, block_bytes=self.block_bytes, start=start, stop=stop, first_line=first_line
        ):
            log.add(records)
            yield numbers, records

    def _verify(self, colliding: np.ndarray) -> bool:
        """Check the records at the ``colliding`` ordinals (their key hashes are shared); True when some must be
        skipped."""
        if not colliding.size:
            return False
        candidates = set(colliding.tolist())
        found: dict[int, tuple[int, dict[str, Any]]] = {}
        for ordinal, item in enumerate(iter_jsonl_numbered(self.path, warn=False)):
            if ordinal in candidates:
                found[ordinal] = item
        first: dict[Hashable, tuple[int, bytes]] = {}
        dropped: list[int] = []
        skip: set[int] = set()
        for ordinal in sorted(found):
            line, record = found[ordinal]
            try:
                key = self.key(record)
                hash(key)
            except TypeError:
                continue
            content = canonical(record)
            seen = first.get(key)
            if seen is None:
                first[key] = (line, content)
            elif seen[1] == content:
                dropped.append(line)
                skip.add(ordinal)
            else:
                raise conflict_error(self.path, line, key, seen[0])
        if dropped:
            dropped_warning(self.path, dropped)
        self.skip = frozenset(skip)
        return bool(skip)


@dataclass
class RunFiles:
    """A run directory opened for scoring: the manifest in memory, the record files streamed (issue #18).

    :meth:`request_chunks` yields checked :class:`~.columns.RequestChunk` objects, :meth:`passes` the step records
    one at a time, :meth:`power` reads the samples as :class:`~.power_columns.PowerColumns`; duplicates are
    handled by :class:`KeyedFile` (a consumer catches :class:`Rescan` and reads again).
    """

    run_dir: Path
    manifest: dict[str, Any]
    follow_requests: Callable[[], bool] | None = None
    """The first read of ``requests.jsonl`` follows it while the run writes it (:func:`iter_jsonl_blocks`)."""

    def __post_init__(self) -> None:
        self._requests = KeyedFile(self.run_dir / REQUESTS_FILE, request_key, more=self.follow_requests)
        self._passes = KeyedFile(self.run_dir / PASSES_FILE, pass_key, PASS_BLOCK_BYTES)
        self._power = KeyedFile(self.run_dir / POWER_FILE, power_key)

    def request_chunks(self) -> Iterator[RequestChunk]:
        path = self._requests.path
        return (to_chunk(records, list(numbers), path) for numbers, records in self._requests.blocks() if records)

    def passes(self) -> Iterator[dict[str, Any]]:
        return chain.from_iterable(records for _, records in self._passes.blocks())

    def pass_segment(self, start: int, stop: int | None, log: HashLog) -> Iterator[dict[str, Any]]:
        """The step records of bytes [start, stop) of ``passes.jsonl`` (:meth:`KeyedFile.segment_blocks`)."""
        return chain.from_iterable(records for _, records in self._passes.segment_blocks(start, stop, log))

    @property
    def has_passes(self) -> bool:
        return present(self.run_dir / PASSES_FILE)

    def power(self) -> PowerColumns:
        while True:
            try:
                return power_columns(self._power.numbered(), self._power.path)
            except Rescan:
                continue

    def iter_server_metrics(self) -> Iterator[dict[str, Any]]:
        return iter_jsonl(self.run_dir / SERVER_METRICS_FILE)

    @property
    def has_server_metrics(self) -> bool:
        return present(self.run_dir / SERVER_METRICS_FILE)


def open_run(run_dir: Path, follow_requests: Callable[[], bool] | None = None) -> RunFiles:
    """A run directory for streaming (:class:`RunFiles`): ``run.json`` read and checked, nothing else yet."""
    run_dir = Path(run_dir)
    return RunFiles(run_dir=run_dir, manifest=read_manifest(run_dir), follow_requests=follow_requests)
