"""The per-pass feature columns of a whole run, held in bounded memory (issue #18).

:func:`capbench.metrics.passes.scan_passes` reduces each chunk of pass records to a :class:`PassFeatures` chunk
(about 67 bytes a pass for a model without sliding windows) and appends it here. The first
:data:`SPILL_PASSES` passes stay in memory; past that every chunk goes to a temporary file, so a run of any
length costs the same memory. The scorer reads the columns back with :meth:`FeatureStore.slices`: consecutive
chunks joined into slices of at most :data:`SLICE_PASSES` passes, in file order.

A run of at most :data:`SLICE_PASSES` scored passes is one slice, exactly the arrays a whole-run scan would give,
so its per-phase sums are the same bits as numpy's sums over the whole arrays; a longer run's sums add the
slices' sums (docs/metrics.md, "Scoring long runs").

The file holds, per chunk, each column's raw bytes (native byte order, C order) one after another, in
:data:`~capbench.metrics.features.ARRAY_FIELDS` order; the chunk sizes are kept in memory. A store can be handed
to another process (:meth:`handoff`, :meth:`adopt`): the pass-reading child writes everything to a named file in
a directory the parent owns, and the parent reads it from there; when several children each read one segment of
the file, the parent adopts their stores together and reads them in segment order, as one store.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from capbench.metrics.features import ARRAY_FIELDS, PassFeatures, empty_column
from capbench.metrics.stats import read_into

SPILL_PASSES = 1 << 16
"""Passes a :class:`FeatureStore` keeps in memory (about 4.4 MB) before it moves them to a temporary file."""

SLICE_PASSES = 1 << 16
"""Most passes in one slice of :meth:`FeatureStore.slices` (about 4.4 MB of features, plus the scorer's per-pass
byte and FLOP arrays of the slice: about 15 MB in all)."""


@dataclass(frozen=True)
class StoreHandle:
    """What another process needs to read a :class:`FeatureStore`: its file, chunk sizes and windows."""

    path: str
    chunk_passes: tuple[int, ...]
    windows: tuple[int, ...]


class FeatureStore:
    """An append-only sequence of :class:`PassFeatures` chunks (module docstring)."""

    def __init__(
        self,
        windows: tuple[int, ...],
        *,
        spill_passes: int | None = None,
        directory: str | None = None,
    ) -> None:
        """``spill_passes``: passes kept in memory before spilling (None: :data:`SPILL_PASSES`; 0: every chunk
        goes to the file);
        ``directory``: where the file goes (a named file, kept for :meth:`handoff`); None: an unnamed
        temporary file, removed when closed."""
        self.windows = windows
        self._spill_passes = SPILL_PASSES if spill_passes is None else spill_passes
        self._directory = directory
        self._memory: list[PassFeatures] = []
        self._memory_passes = 0
        self._file: Any = None  # a binary file: this store's own (temporary or named) file
        self._path: str | None = None
        self._file_chunks: list[int] = []
        self._adopted: list[tuple[Any, str, list[int]]] = []  # (file, path, chunk sizes) of each adopted store
        self._num_passes = 0

    @property
    def num_passes(self) -> int:
        """Passes appended so far."""
        return self._num_passes

    @property
    def spilled(self) -> bool:
        """Whether the chunks live in a file."""
        return self._file is not None or bool(self._adopted)

    def append(self, chunk: PassFeatures) -> None:
        """Add one chunk (in file order); it may be kept or written out, it is never changed."""
        if chunk.windows != self.windows:
            raise ValueError(f"a chunk for windows {chunk.windows} in a store for {self.windows}")
        size = chunk.num_passes
        if not size:
            return
        self._num_passes += size
        if self._file is None and self._memory_passes + size <= self._spill_passes:
            self._memory.append(chunk)
            self._memory_passes += size
            return
        self._spill()
        self._write(chunk)

    def slices(self, max_passes: int | None = None) -> Iterator[PassFeatures]:
        """The passes in file order, as consecutive chunks joined into slices of at most ``max_passes`` (default
        :data:`SLICE_PASSES`) passes; nothing when the store is empty. Each call reads from the start."""
        limit = SLICE_PASSES if max_passes is None else max_passes
        if limit < 1:
            raise ValueError(f"max_passes must be at least 1, got {limit}")
        pending: list[PassFeatures] = []
        held = 0
        for chunk in self._chunks():
            start = 0
            while start < chunk.num_passes:
                take = min(limit - held, chunk.num_passes - start)
                pending.append(chunk if take == chunk.num_passes else _rows(chunk, start, start + take))
                held += take
                start += take
                if held == limit:
                    yield _join(pending, self.windows)
                    pending, held = [], 0
        if pending:
            yield _join(pending, self.windows)

    def whole(self) -> PassFeatures:
        """Every pass in one :class:`PassFeatures` (all in memory at once: for tests and small runs)."""
        return _join(list(self._chunks()), self.windows)

    def handoff(self) -> StoreHandle:
        """Write every chunk to the named file (the store must have a ``directory``) and describe it; the store
        is closed for writing here and the file is left for :meth:`adopt` to read (and remove)."""
        if self._directory is None:
            raise ValueError("only a store with a directory can be handed to another process")
        self._spill()
        assert self._file is not None and self._path is not None
        self._file.close()
        self._file = None
        return StoreHandle(path=self._path, chunk_passes=tuple(self._file_chunks), windows=self.windows)

    @classmethod
    def adopt(cls, *handles: StoreHandle) -> FeatureStore:
        """The store (or stores, read one after another in the order given: the segments of one file read by
        several processes) that other processes handed over (:meth:`handoff`); :meth:`close` removes their
        files."""
        if not handles:
            raise ValueError("adopt needs at least one handle")
        windows = handles[0].windows
        if any(handle.windows != windows for handle in handles):
            raise ValueError("the handed-over stores are for different windows")
        store = cls(windows)
        try:
            for handle in handles:
                file = Path(handle.path).open("rb")  # noqa: SIM115 (closed by close())
                store._adopted.append((file, handle.path, list(handle.chunk_passes)))
                store._num_passes += sum(handle.chunk_passes)
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        """Drop the chunks and the file (a named file is removed)."""
        self._memory, self._memory_passes = [], 0
        for file, path, _ in self._adopted:
            file.close()
            Path(path).unlink(missing_ok=True)
        self._adopted = []
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._path is not None:
            Path(self._path).unlink(missing_ok=True)
            self._path = None
        self._file_chunks = []

    # -- the file ----------------------------------------------------------------------------------------------

    def _spill(self) -> None:
        """Open the file (once) and move the in-memory chunks there, so the file holds every chunk in order."""
        if self._file is not None:
            return
        if self._directory is None:
            self._file = tempfile.TemporaryFile(prefix="capbench-features-")  # noqa: SIM115 (closed by close())
        else:
            fd, path = tempfile.mkstemp(prefix="capbench-features-", dir=self._directory)
            self._file = os.fdopen(fd, "w+b")
            self._path = path
        for chunk in self._memory:
            self._write(chunk)
        self._memory, self._memory_passes = [], 0

    def _write(self, chunk: PassFeatures) -> None:
        assert self._file is not None
        self._file.seek(0, os.SEEK_END)
        for name in ARRAY_FIELDS:
            column = np.ascontiguousarray(getattr(chunk, name))
            if column.nbytes:  # (a model without sliding windows has zero-width window columns)
                self._file.write(column.data.cast("B"))
        self._file_chunks.append(chunk.num_passes)

    def _read_chunk(self, file: Any, size: int, path: str | None) -> PassFeatures:
        columns = {}
        for name in ARRAY_FIELDS:
            template = empty_column(name, len(self.windows))
            shape = (size, *template.shape[1:])
            array = np.empty(shape, dtype=template.dtype)
            columns[name] = array
            if read_into(file, array) < array.nbytes:  # (zero-width window columns read nothing)
                raise OSError(f"the pass-feature file {path or '(temporary)'} ended early")
        return PassFeatures(windows=self.windows, **columns)

    def _chunks(self) -> Iterator[PassFeatures]:
        for file, path, sizes in self._adopted:
            file.seek(0)
            for size in sizes:
                yield self._read_chunk(file, size, path)
        if self._file_chunks:
            if self._file is None:
                raise RuntimeError("this store was handed to another process: read it with FeatureStore.adopt")
            self._file.flush()
            self._file.seek(0)  # (_write seeks back to the end)
            for size in self._file_chunks:
                yield self._read_chunk(self._file, size, self._path)
        yield from self._memory


def _rows(chunk: PassFeatures, start: int, stop: int) -> PassFeatures:
    """Passes [start, stop) of a chunk (views)."""
    return PassFeatures(windows=chunk.windows, **{name: getattr(chunk, name)[start:stop] for name in ARRAY_FIELDS})


def _join(chunks: list[PassFeatures], windows: tuple[int, ...]) -> PassFeatures:
    """Consecutive chunks as one :class:`PassFeatures` (the chunk itself when there is one)."""
    if len(chunks) == 1:
        return chunks[0]
    if not chunks:
        return PassFeatures(windows=windows, **{name: empty_column(name, len(windows)) for name in ARRAY_FIELDS})
    return PassFeatures(
        windows=windows, **{name: np.concatenate([getattr(c, name) for c in chunks]) for name in ARRAY_FIELDS}
    )
