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
from typing import Any, Protocol, runtime_checkable

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


_M64 = (1 << 64) - 1
_NONE_HASH = 0x2B992DDFA23249D6
"""What ``None`` stands for in :func:`portable_hash` (``hash(None)`` is its address: it differs between processes)."""
_NAN_HASH = 0x6A09E667F3BCC909
"""What a NaN stands for (``hash(nan)`` is its address; no NaN equals anything, so any constant will do)."""
_MULTIPLIER = 0x9E3779B97F4A7C15
"""The odd 64-bit constant :func:`portable_hash` multiplies by after taking in each field."""


@functools.lru_cache(maxsize=4096)
def _text_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _element(value: Any) -> int:
    """One key field's hash in [0, 2⁶⁴), the same in every process; equal values hash alike (1, 1.0 and True)."""
    kind = type(value)
    if kind is int or kind is bool:
        return int(value) & _M64
    if kind is float:
        if value != value:
            return _NAN_HASH
        return int(value) & _M64 if value.is_integer() else hash(value) & _M64
    if value is None:
        return _NONE_HASH
    if kind is str:
        return _text_hash(value)
    raise TypeError(f"no portable hash for a {type(value).__name__}")


def _mix(h: int, element: int) -> int:
    """The state after taking in one field: h ← ((h xor e) · M mod 2⁶⁴), then h xor (h >> 32)."""
    h = ((h ^ element) * _MULTIPLIER) & _M64
    return h ^ (h >> 32)


def portable_hash(key: Any) -> int:
    """A 64-bit hash of a record key (a tuple of, or one, JSON scalar) that is the same in every process, unlike
    Python's ``hash`` (salted for strings, the address for ``None``).

    Each field f becomes e(f) in [0, 2⁶⁴): an integer (a boolean, an integral float) its value mod 2⁶⁴, another
    float its ``hash``, a string 8 bytes of BLAKE2b, ``None`` and NaN constants; so equal keys always have equal
    hashes. From h = the number of fields, each e is taken in by :func:`_mix`; the result is h as a signed
    64-bit integer. Anything else (a list: the record's checks refuse it) is a ``TypeError``.
    :func:`portable_hashes` gives the same values for many records at once."""
    values = key if type(key) is tuple else (key,)
    h = len(values)
    for value in values:
        h = _mix(h, _element(value))
    return h - (1 << 64) if h >> 63 else h


@runtime_checkable
class ColumnarKey(Protocol):
    """A record key (a callable on one record) that can also give the keys of many records as columns."""

    def __call__(self, record: Mapping[str, Any]) -> Hashable: ...

    def columns(self, records: Sequence[Mapping[str, Any]]) -> list[list[Any]] | None:
        """Per key field, its value in each record (``key(record)`` is the tuple of a row); None when the records'
        keys do not have the same fields (then each is hashed alone)."""
        ...


def _element_column(column: list[Any]) -> NDArray[np.uint64]:
    """:func:`_element` of every value of a column: integers of 64 bits with numpy, a column of one value (``None``,
    a tag) as that value's, the rest one by one."""
    if not column:
        return np.zeros(0, dtype=np.uint64)
    try:
        return np.frombuffer(array("q", column), dtype=np.uint64)
    except (TypeError, OverflowError):
        pass
    if column.count(column[0]) == len(column):  # all equal (==): their hashes are equal too
        return np.full(len(column), _element(column[0]), dtype=np.uint64)
    return np.fromiter(map(_element, column), dtype=np.uint64, count=len(column))


def portable_hashes(key: Callable[[Mapping[str, Any]], Hashable], records: Sequence[Mapping[str, Any]]) -> array[int]:
    """:func:`portable_hash` of each record's key, as int64 (``TypeError`` when one has none); with numpy, a
    column at a time, when the key is a :class:`ColumnarKey` and the records' keys have the same fields."""
    columns = key.columns(records) if isinstance(key, ColumnarKey) else None
    if columns is None:
        return array("q", [portable_hash(key(record)) for record in records])
    h = np.full(len(records), len(columns), dtype=np.uint64)
    shifted = np.empty_like(h)
    multiplier, bits = np.uint64(_MULTIPLIER), np.uint64(32)
    for column in columns:
        np.bitwise_xor(h, _element_column(column), out=h)
        np.multiply(h, multiplier, out=h)
        np.right_shift(h, bits, out=shifted)
        np.bitwise_xor(h, shifted, out=h)
    return array("q", h.tobytes())


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

    def add(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Log the hashes of the next records' keys (:func:`portable_hashes`)."""
        key = self.key
        try:
            hashes = portable_hashes(key, records)
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
