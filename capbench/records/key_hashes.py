"""The key hash of every record of a file, kept in bounded memory, and the records whose hashes collide.

:class:`~capbench.records.reader.KeyedFile` finds duplicate records at the end of a file from one 8-byte hash of
each record's key (issue #18). Holding every hash in memory and sorting them costs about 24 bytes a record at the
end of the file (the hashes, the sort order, the sorted copy): 96 MB for 4M records. :class:`KeyHashes` keeps at
most :data:`BUFFER_HASHES` in memory; past that it writes each (hash, ordinal) pair to one of
:data:`PARTITIONS` temporary files chosen by the hash's top bits, so equal hashes always share a file, and at
the end sorts one partition at a time (about 1/16 of the pairs). A file that never fills the buffer is checked
in memory, as before.
"""

from __future__ import annotations

import functools
import hashlib
import tempfile
from array import array
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

BUFFER_HASHES = 1 << 18
"""Hashes kept in memory (2 MiB) before they go to the partition files."""

PARTITIONS = 16
"""Partition files (by the top 4 bits of the hash)."""

_SHIFT = np.uint64(64 - (PARTITIONS - 1).bit_length())


class KeyHashes:
    """Append-only (ordinal order) 8-byte key hashes; :meth:`colliding` gives the ordinals that share a hash."""

    def __init__(self, buffer_hashes: int | None = None) -> None:
        """``buffer_hashes``: hashes kept in memory before the partition files are used (None:
        :data:`BUFFER_HASHES`)."""
        limit = BUFFER_HASHES if buffer_hashes is None else buffer_hashes
        if limit < 1:
            raise ValueError(f"buffer_hashes must be at least 1, got {limit}")
        self._limit = limit
        self._buffer = array("q")
        self._written = 0  # hashes already in the partition files (their ordinals are 0 .. written − 1)
        self._files: list[Any] | None = None

    def __len__(self) -> int:
        return self._written + len(self._buffer)

    def extend(self, hashes: Iterable[int]) -> None:
        """Add the hashes of the next records, in order."""
        self._buffer.extend(hashes)
        if len(self._buffer) >= self._limit:
            self._flush()

    def append(self, value: int) -> None:
        """Add the hash of the next record."""
        self._buffer.append(value)
        if len(self._buffer) >= self._limit:
            self._flush()

    def colliding(self) -> NDArray[np.int64]:
        """The ordinals (ascending) of the records whose hash equals another record's hash."""
        if self._files is None:
            return _colliding(np.frombuffer(self._buffer, dtype=np.int64), np.arange(len(self._buffer)))
        self._flush()
        found = []
        for file in self._files:
            file.flush()
            file.seek(0)
            pairs = np.frombuffer(file.read(), dtype=np.int64).reshape(-1, 2)
            if pairs.size:
                found.append(_colliding(pairs[:, 0], pairs[:, 1]))
        return np.sort(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)

    def close(self) -> None:
        """Drop the hashes and the partition files."""
        self._buffer = array("q")
        for file in self._files or ():
            file.close()
        self._files = None

    def _flush(self) -> None:
        if not self._buffer:
            return
        if self._files is None:
            self._files = [tempfile.TemporaryFile(prefix="capbench-keys-") for _ in range(PARTITIONS)]  # noqa: SIM115
        hashes = np.frombuffer(self._buffer, dtype=np.int64)
        pairs = np.empty((hashes.size, 2), dtype=np.int64)
        pairs[:, 0] = hashes
        pairs[:, 1] = np.arange(self._written, self._written + hashes.size)
        part = (hashes.view(np.uint64) >> _SHIFT).astype(np.intp)
        order = np.argsort(part, kind="stable")
        bounds = np.searchsorted(part[order], np.arange(PARTITIONS + 1))
        grouped = pairs[order]
        for index, file in enumerate(self._files):
            block = grouped[bounds[index] : bounds[index + 1]]
            if block.size:
                file.write(block.tobytes())
        self._written += hashes.size
        self._buffer = array("q")


def _colliding(hashes: NDArray[np.int64], ordinals: NDArray[Any]) -> NDArray[np.int64]:
    """The ordinals among ``ordinals`` whose hash (same position in ``hashes``) occurs more than once."""
    if hashes.size < 2:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(hashes, kind="stable")
    sorted_hashes = hashes[order]
    same = sorted_hashes[1:] == sorted_hashes[:-1]
    if not same.any():
        return np.zeros(0, dtype=np.int64)
    rows = np.union1d(order[1:][same], order[:-1][same])
    return np.asarray(ordinals[rows], dtype=np.int64)


_NONE_HASH = 0x2B992DDFA23249D6
"""What ``None`` stands for in :func:`portable_hash` (``hash(None)`` is its address: it differs between processes)."""

_PLAIN = frozenset({int, float, bool})
"""Types whose ``hash`` is the same in every process."""


@functools.lru_cache(maxsize=4096)
def _text_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little", signed=True)


def _portable(value: Any) -> Any:
    if value is None:
        return _NONE_HASH
    if type(value) is str:
        return _text_hash(value)
    raise TypeError(f"no portable hash for a {type(value).__name__}")


def portable_hash(key: Any) -> int:
    """A hash of a record key (a tuple of, or one, JSON scalar) that is the same in every process: Python's
    ``hash`` of a string is salted per process and that of ``None`` is its address, so strings are hashed with
    BLAKE2b (8 bytes) and ``None`` is a constant; integers, floats and booleans keep their ``hash``. Equal keys
    always have equal hashes. Anything else (a list: the record's checks refuse it) is a ``TypeError``."""
    values = key if type(key) is tuple else (key,)
    return hash(tuple([v if type(v) in _PLAIN else _portable(v) for v in values]))


class HashLog:
    """The key hashes of one segment of a file (read by another process), in record order, in a named file, for
    :func:`any_colliding` to check together with the other segments' (issue #18). The hashes are
    :func:`portable_hash` es, so those written by different processes compare.

    A record whose key has no portable hash only sets :attr:`unhashable` (the reader of the whole file then
    decides).
    """

    def __init__(self, path: str | Path, key: Callable[[Mapping[str, Any]], Hashable]) -> None:
        self.path = str(path)
        self.key = key
        self.unhashable = False
        self._file = Path(path).open("wb")  # noqa: SIM115 (closed by close())

    def add(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Log the hashes of the next records' keys."""
        key = self.key
        try:
            hashes = array("q", [portable_hash(key(record)) for record in records])
        except TypeError:
            self.unhashable = True
            return
        hashes.tofile(self._file)

    def close(self) -> None:
        self._file.close()


def any_colliding(paths: Sequence[str | Path]) -> bool:
    """Whether two hashes among the :class:`HashLog` files ``paths`` (their records in this order) are equal: a
    duplicate record, or a collision of two keys, somewhere in the file they cover (bounded memory:
    :class:`KeyHashes`)."""
    hashes = KeyHashes()
    try:
        for path in paths:
            with Path(path).open("rb") as f:
                while block := f.read(8 * BUFFER_HASHES):
                    hashes.extend(array("q", block))
        return bool(hashes.colliding().size)
    finally:
        hashes.close()
