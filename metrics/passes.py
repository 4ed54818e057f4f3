"""Stream pass records into compact per-pass feature arrays (docs/metrics.md §2–3).

A pass record (records.md) holds ``reqs`` = [[n_i, c_i], ...], ``sampled`` s, ``experts_active`` (per MoE
layer, or null), optional ``expert_tokens``, and either ``t_start_ns``/``t_end_ns`` or ``latency_s``; from
schema version 3 the files hold the three lists as base64 varint strings (:mod:`capbench.records.pass_codec`),
which a block of records decodes at once, and both forms are read.
Every byte and FLOP formula of a pass depends on its requests only through a handful of sums, so each pass
is reduced to these scalars (:class:`PassFeatures`):

- T = Σ n_i (tokens computed), s (requests sampling a token),
- Σ_i (c_i + n_i) (KV token slots on full-attention layers) and Σ_i (min(c_i, w−1) + n_i) per window w,
- Σ_i pairs_i on full-attention layers and per window (:func:`capbench.metrics.attention.causal_pairs`),
- Σ_l a_l and whether it was measured, latency (s), phase, and start/end timestamps when given.

Records stream through :func:`scan_passes` in chunks: a chunk's fields are gathered into flat lists and
typed arrays (the only per-pass Python work) and reduced with numpy, so a million passes never exist as dicts at once.
Per-expert counts are folded into running per-phase totals (:class:`ExpertTally`), never kept per pass.

Warm-up passes (``"warmup": true``) are dropped. A record that breaks the contract (no ``reqs``, a request
that is not an [n, c] pair with n ≥ 1 and c ≥ 0, s outside [0, len(reqs)], no timing, latency ≤ 0,
``experts_active`` of the wrong length or outside [0, E]) is a :class:`CapbenchError` naming the record:
runners write these files, so a violation is a bug to fix, not a number to guess.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, islice
from typing import Any, Protocol, Union, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from capbench.errors import CapbenchError
from capbench.metrics.attention import causal_pairs, kv_tokens
from capbench.metrics.experts import ExpertTally
from capbench.metrics.feature_store import FeatureStore
from capbench.metrics.features import NO_TIME_NS, PassFeatures
from capbench.metrics.phases import classify
from capbench.records.fields import same_key_columns
from capbench.records.pass_codec import expand_pass, is_compact_pass
from capbench.varints import decode_varints

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

CHUNK_PASSES = 4096
"""Passes gathered before a chunk is reduced with numpy."""
BLOCK_PASSES = 128
"""Passes taken from the stream at a time and buffered field by field (about one 64 KiB block of the reader,
:data:`~capbench.records.reader.PASS_BLOCK_BYTES`: a small block's objects are still in the CPU's cache)."""
_CHUNK_EXPERT_TOKEN_ELEMS = 4_000_000
"""A chunk is also reduced once it holds this many ``expert_tokens`` integers (bounds memory)."""


@dataclass
class PassScan:
    """What :func:`scan_passes` read: the features (in a :class:`FeatureStore`: bounded memory), expert totals and
    counts of records seen."""

    store: FeatureStore
    experts: ExpertTally
    records: int = 0
    warmup: int = 0
    num_moe_layers: int | None = None
    experts_below_top_k: int = 0

    @property
    def num_passes(self) -> int:
        """Scored (non-warm-up) passes."""
        return self.store.num_passes

    @property
    def features(self) -> PassFeatures:
        """Every scored pass's features in memory at once (for tests and small runs; the scorer reads
        ``store.slices()``)."""
        return self.store.whole()


@runtime_checkable
class PendingPassScan(Protocol):
    """A :func:`scan_passes` under way elsewhere (another process): :meth:`result` waits for it and gives its
    :class:`PassScan`, raising what the scan raised."""

    def result(self) -> PassScan: ...


def scan_passes(
    passes: Iterable[Mapping[str, Any]],
    *,
    windows: tuple[int, ...] = (),
    num_moe_layers: int | None = None,
    num_experts: int | None = None,
    top_k: int | None = None,
    chunk_passes: int = CHUNK_PASSES,
    store_directory: str | None = None,
) -> PassScan:
    """Reduce a stream of pass records to :class:`PassFeatures` chunks in a :class:`FeatureStore`, in bounded
    memory.

    ``windows``: the model's distinct sliding windows (``AttentionGroups.windows``). ``num_moe_layers``,
    ``num_experts``, ``top_k``: from the model structure, to validate ``experts_active``/``expert_tokens``;
    without them the first measured pass fixes the layer count. ``store_directory``: where the store's file
    goes, for a scan whose store is handed to another process (:meth:`FeatureStore.handoff`).
    """
    store = FeatureStore(windows, directory=store_directory, spill_passes=0 if store_directory else None)
    try:
        return _Scanner(windows, num_moe_layers, num_experts, top_k, chunk_passes, store).run(passes)
    except BaseException:
        store.close()
        raise


_REQS_INTS = "'reqs' entries must be [n, c] pairs of integers"
_ACTIVE_INTS = "experts_active must hold integers"


def _strict(values: list[Any], index: int, what: str) -> array[int]:
    """``values`` as int64, strictly: a float, null, string or an integer beyond 64 bits is an error naming the
    record (numpy alone would truncate floats silently); ``True``/``False`` are Python ints, read as 1/0."""
    try:
        return array("q", values)
    except (TypeError, OverflowError):
        raise CapbenchError(f"pass record {index} (0-based, in file order): {what}") from None


def _copy(buffer: array[Any], dtype: type[np.generic]) -> np.ndarray:
    """A numpy copy of a typed buffer (a copy, so the buffer can be cleared and refilled)."""
    return np.frombuffer(buffer, dtype=dtype).copy() if len(buffer) else np.zeros(0, dtype=dtype)


Ints = Union["array[int]", IntArray]
Lists = tuple[Ints, Ints, "array[int]", Ints, set[int], list[Any] | None]
"""A block's integer lists, buffered: the [n, c] integers, requests per pass, whether each pass was measured
(1/0), the measured passes' ``experts_active`` values, the lengths those had, and each pass's expert counts
(None where absent; None for all: no pass has any)."""


class _IntParts:
    """int64 values gathered in pieces (numpy arrays, or typed buffers viewed without a copy) and joined once, when
    a chunk is reduced."""

    def __init__(self) -> None:
        self.parts: list[IntArray] = []
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def extend(self, values: array[int] | IntArray) -> None:
        if len(values):
            part = np.frombuffer(values, dtype=np.int64) if isinstance(values, array) else values
            self.parts.append(part)
            self.size += part.size

    def joined(self) -> IntArray:
        return np.concatenate(self.parts) if self.parts else np.zeros(0, dtype=np.int64)

    def clear(self) -> None:
        self.parts, self.size = [], 0


def _lists(block: list[Mapping[str, Any]]) -> Lists:
    """The integer lists of a block of records in the runners' form (schema versions 1 and 2)."""
    reqs = [r["reqs"] for r in block]
    n_reqs = array("q", map(len, reqs))
    flat = array("q", list(chain.from_iterable(chain.from_iterable(reqs))))
    active = [r.get("experts_active") for r in block]
    given = [a for a in active if a is not None]
    measured = array("b", [a is not None for a in active])
    values = array("q", list(chain.from_iterable(given)))
    tokens = [r.get("expert_tokens") for r in block]
    return flat, n_reqs, measured, values, set(map(len, given)), tokens if tokens.count(None) < len(tokens) else None


def _compact_lists(block: list[Mapping[str, Any]], field: Field) -> Lists | None:
    """The integer lists of a block of compact records (schema version 3, :mod:`capbench.records.pass_codec`),
    decoded at once; None when a string has the wrong number of integers (the slow path names the record).
    ``field``: a field of every record of the block (a missing required one: ``KeyError``)."""
    active = field("experts_active_b64")
    measured = [a is not None for a in active]
    given = [a for a in active if a is not None]
    # One decode for both fields (numpy has a fixed cost per call); an error in either is
    # named by the slow path.
    both, per_string = decode_varints([*field("reqs_b64", required=True), *given], "reqs_b64 or experts_active_b64")
    per_pass, layers = per_string[: len(block)], per_string[len(block) :]
    if (per_pass % 2).any():
        return None
    split = int(per_pass.sum())
    flat, values = both[:split], both[split:]
    tokens: list[Any] | None = None
    given_tokens = field("expert_tokens_b64")
    if given_tokens.count(None) < len(given_tokens):
        tokens = list(given_tokens)
        which = [i for i, t in enumerate(tokens) if t is not None]
        counts, sizes = decode_varints([tokens[i] for i in which], "expert_tokens_b64")
        rows = dict(zip(np.flatnonzero(measured).tolist(), layers.tolist(), strict=True))
        offset = 0
        for i, size in zip(which, sizes.tolist(), strict=True):
            num_layers = rows.get(i)
            if not num_layers or size % num_layers:
                return None
            tokens[i] = counts[offset : offset + size].reshape(num_layers, -1)
            offset += size
    return flat, per_pass // 2, array("b", measured), values, set(layers.tolist()), tokens


class Field(Protocol):
    """A field of every record of a block, in order (``None`` where absent; ``KeyError`` where absent and
    ``required``)."""

    def __call__(self, key: str, required: bool = False) -> Sequence[Any]: ...


def _fields(block: list[Mapping[str, Any]]) -> Field:
    """:class:`Field` of ``block``: from its columns when every record has the same keys
    (:func:`~capbench.records.fields.same_key_columns`), else one ``dict.get`` per record."""
    columns = same_key_columns(block)

    def field(key: str, required: bool = False) -> Sequence[Any]:
        if columns is None:
            return [r[key] for r in block] if required else [r.get(key) for r in block]
        values = columns.get(key)
        if values is None:
            if required:
                raise KeyError(key)
            return [None] * len(block)
        return values

    return field


def _with_default(values: Sequence[Any], default: Any) -> list[Any]:
    """``values`` with ``default`` for each None."""
    if values.count(None) == len(values):
        return [default] * len(values)
    return [default if v is None else v for v in values]


class _Scanner:
    def __init__(
        self,
        windows: tuple[int, ...],
        num_moe_layers: int | None,
        num_experts: int | None,
        top_k: int | None,
        chunk_passes: int,
        store: FeatureStore,
    ) -> None:
        self.windows = windows
        self.store = store
        self.num_moe_layers = num_moe_layers
        self.num_experts = num_experts
        self.top_k = top_k
        self.chunk_passes = chunk_passes
        self.tally = ExpertTally()
        self.below_top_k = 0
        # Chunk buffers, cleared after each chunk. Per-pass scalars go to typed arrays: they reject a non-integer
        # as they fill and hand numpy their memory without conversion. The long per-request and per-layer
        # sequences are converted a block at a time, right after the block is decoded, while its integers are
        # still in the CPU's cache (profiled, converting a whole chunk at its end cost about 150 ns an integer; a
        # just-decoded block converts at about 26 ns), and kept as the block's int64 arrays (decoded varints as
        # they are, the lists form's typed arrays viewed), joined once when the chunk is reduced.
        self.index = array("q")  # record number of each buffered pass, for error messages
        self.n_reqs = _IntParts()
        self.flat = _IntParts()  # n_0, c_0, n_1, c_1, ... of every buffered pass
        self.sampled = array("q")
        self.latency = array("d")  # NaN where the record gave no latency_s
        self.t_start = array("q")  # NO_TIME_NS where absent
        self.t_end = array("q")
        self.measured = array("b")
        self.active = _IntParts()  # experts_active of measured passes, concatenated
        self.token_pos: list[int] = []
        self.token_rows: list[Any] = []
        self.token_elems = 0

    def _reset(self) -> None:
        for buffer in (
            self.index,
            self.sampled,
            self.latency,
            self.t_start,
            self.t_end,
            self.measured,
            self.token_pos,
            self.token_rows,
        ):
            del buffer[:]
        for parts in (self.n_reqs, self.flat, self.active):
            parts.clear()
        self.token_elems = 0

    def run(self, passes: Iterable[Mapping[str, Any]]) -> PassScan:
        records = warmup = 0
        moe_layers = self.num_moe_layers
        stream = iter(passes)
        while block := list(islice(stream, BLOCK_PASSES)):
            base = records
            records += len(block)
            fast = self._fast(block, base, moe_layers)
            if fast is None:
                moe_layers, warm = self._slow(block, base, moe_layers)
            else:
                moe_layers, warm = fast
            warmup += warm
            if len(self.n_reqs) >= self.chunk_passes or self.token_elems >= _CHUNK_EXPERT_TOKEN_ELEMS:
                self.num_moe_layers = moe_layers
                self._flush()
        self.num_moe_layers = moe_layers
        self._flush()
        return PassScan(
            store=self.store,
            experts=self.tally,
            records=records,
            warmup=warmup,
            num_moe_layers=moe_layers,
            experts_below_top_k=self.below_top_k,
        )

    def _fast(self, block: list[Mapping[str, Any]], base: int, moe_layers: int | None) -> tuple[int | None, int] | None:
        """Buffer a block of passes field by field (list comprehensions, typed arrays built whole); None when
        anything in it is off, so that :meth:`_slow` finds the record and says what (nothing is buffered then)."""
        warm = [bool(r.get("warmup")) for r in block]
        warmup = sum(warm)
        if warmup:
            index: Any = [base + i for i, w in enumerate(warm) if not w]
            block = [r for r, w in zip(block, warm, strict=True) if not w]
        else:
            index = range(base, base + len(block))
        if not block:
            return moe_layers, warmup
        no_time = int(NO_TIME_NS)
        field = _fields(block)
        try:
            sampled = array("q", field("sampled", required=True))
            latency = array("d", _with_default(field("latency_s"), math.nan))
            t_start = array("q", _with_default(field("t_start_ns"), no_time))
            t_end = array("q", _with_default(field("t_end_ns"), no_time))
            # The form of the first record; a record of the other form (a hand-edited file) lacks a key: KeyError.
            lists = _compact_lists(block, field) if is_compact_pass(block[0]) else _lists(block)
        except (KeyError, TypeError, OverflowError, ValueError):
            return None
        if lists is None:
            return None
        flat, n_reqs, measured, active_values, layers, tokens = lists
        if layers:
            if moe_layers is None:
                moe_layers = next(iter(layers))
            if layers != {moe_layers}:
                return None
        position = len(self.n_reqs)
        self.flat.extend(flat)
        self.n_reqs.extend(n_reqs)
        self.sampled.extend(sampled)
        self.index.extend(array("q", index))
        self.latency.extend(latency)
        self.t_start.extend(t_start)
        self.t_end.extend(t_end)
        self.measured.extend(measured)
        self.active.extend(active_values)
        for i, counts in enumerate(tokens or ()):
            if counts is not None:
                self._add_expert_tokens(index[i], counts, position + i)
        return moe_layers, warmup

    def _slow(self, block: list[Mapping[str, Any]], base: int, moe_layers: int | None) -> tuple[int | None, int]:
        """One record at a time: the first record that breaks the contract is named (module docstring)."""
        nan = math.nan
        no_time = int(NO_TIME_NS)
        warmup = 0
        for offset, rec in enumerate(block):
            index = base + offset
            if rec.get("warmup"):
                warmup += 1
                continue
            try:
                rec = expand_pass(rec)
            except ValueError as exc:
                raise CapbenchError(f"pass record {index} (0-based, in file order): {exc}") from None
            try:
                reqs = rec["reqs"]
                self.flat.extend(_strict(list(chain.from_iterable(reqs)), index, _REQS_INTS))
                self.n_reqs.extend(array("q", [len(reqs)]))
                self.sampled.append(rec["sampled"])
                self.index.append(index)
                latency = rec.get("latency_s")
                self.latency.append(nan if latency is None else latency)
                t = rec.get("t_start_ns")
                self.t_start.append(no_time if t is None else t)
                t = rec.get("t_end_ns")
                self.t_end.append(no_time if t is None else t)
                active = rec.get("experts_active")
                if active is None:
                    self.measured.append(0)
                else:
                    if moe_layers is None:
                        moe_layers = len(active)
                    elif len(active) != moe_layers:
                        raise CapbenchError(
                            f"pass record {index}: experts_active has {len(active)} entries, expected one "
                            f"per MoE layer ({moe_layers})"
                        )
                    self.active.extend(_strict(list(active), index, _ACTIVE_INTS))
                    self.measured.append(1)
            except (KeyError, TypeError, OverflowError) as exc:
                raise CapbenchError(
                    f"pass record {index} (0-based, in file order) breaks the passes.jsonl contract: needs "
                    "'reqs' (a list of [n, c] integer pairs), 'sampled' (an integer), integer "
                    "t_start_ns/t_end_ns or a number latency_s, and 'experts_active' as a list of integers "
                    f"or null ({type(exc).__name__}: {exc})"
                ) from exc
            counts = rec.get("expert_tokens")
            if counts is not None:
                self._add_expert_tokens(index, counts, len(self.n_reqs) - 1)
            if len(self.n_reqs) >= self.chunk_passes or self.token_elems >= _CHUNK_EXPERT_TOKEN_ELEMS:
                self.num_moe_layers = moe_layers
                self._flush()
        return moe_layers, warmup

    def _add_expert_tokens(self, index: int, counts: Any, position: int) -> None:
        self.token_pos.append(position)
        self.token_rows.append(counts)
        try:
            self.token_elems += len(counts) * len(counts[0]) if len(counts) else 0
        except TypeError as exc:
            raise CapbenchError(f"pass record {index}: expert_tokens must be lists of ints") from exc

    def _error(self, position: NDArray[np.bool_] | int, what: str) -> CapbenchError:
        first = position if isinstance(position, int) else int(np.argmax(position))
        return CapbenchError(f"pass record {self.index[first]} (0-based, in file order): {what}")

    def _expert_token_array(self) -> IntArray:
        try:
            arr = np.array(self.token_rows)
        except ValueError as exc:  # ragged nesting
            raise CapbenchError(f"pass records: expert_tokens must be lists of E integers: {exc}") from exc
        if arr.size and arr.dtype.kind not in "iu":
            raise CapbenchError(f"pass records: expert_tokens must be integers, found {arr.dtype} values")
        return arr.astype(np.int64, copy=False)

    def _flush(self) -> None:
        if not self.n_reqs:
            return
        n_reqs = self.n_reqs.joined()
        if (n_reqs == 0).any():
            raise self._error(n_reqs == 0, "'reqs' is empty; a pass computes at least one request")
        flat = self.flat.joined()
        if flat.size != 2 * int(n_reqs.sum()):
            raise CapbenchError(f"pass records {self.index[0]}–{self.index[-1]}: a 'reqs' entry is not an [n, c] pair")
        pairs = flat.reshape(-1, 2)
        n, c = pairs[:, 0], pairs[:, 1]
        starts = np.zeros(n_reqs.size, dtype=np.int64)
        np.cumsum(n_reqs[:-1], out=starts[1:])
        owner = np.repeat(np.arange(n_reqs.size), n_reqs)
        bad = (n < 1) | (c < 0)
        if bad.any():
            raise self._error(int(owner[np.argmax(bad)]), "every request needs n ≥ 1 and c ≥ 0 in [n, c]")

        def per_pass(values: IntArray) -> IntArray:
            return np.add.reduceat(values, starts)

        tokens = per_pass(n)
        decode = per_pass(((n == 1) & (c > 0)).astype(np.int64))
        phase = classify(decode, n_reqs)
        sampled = _copy(self.sampled, np.int64)
        bad_s = (sampled < 0) | (sampled > n_reqs)
        if bad_s.any():
            raise self._error(bad_s, "'sampled' must be between 0 and the number of requests in 'reqs'")
        width = len(self.windows)
        kv_win = np.empty((n_reqs.size, width), dtype=np.int64)
        pairs_win = np.empty((n_reqs.size, width), dtype=np.int64)
        for col, window in enumerate(self.windows):
            kv_win[:, col] = per_pass(kv_tokens(n, c, window))
            pairs_win[:, col] = per_pass(causal_pairs(n, c, window))
        latency, t_start, t_end, timed = self._timing()
        measured = _copy(self.measured, np.int8).astype(np.bool_)
        active_sum = self._experts_active(measured, phase)
        if self.token_rows:
            self._expert_tokens(phase)
        chunk = PassFeatures(
            windows=self.windows,
            tokens=tokens,
            sampled=sampled,
            kv_tokens_full=per_pass(kv_tokens(n, c)),
            pairs_full=per_pass(causal_pairs(n, c)),
            kv_tokens_window=kv_win,
            pairs_window=pairs_win,
            experts_active_sum=active_sum,
            experts_measured=measured,
            latency_s=latency,
            phase=phase,
            t_start_ns=t_start,
            t_end_ns=t_end,
            timed=timed,
        )
        self.store.append(chunk)
        self._reset()

    def _timing(self) -> tuple[FloatArray, IntArray, IntArray, BoolArray]:
        """latency_s per pass: ``latency_s`` when given, else (t_end_ns − t_start_ns) / 1e9."""
        latency = _copy(self.latency, np.float64)
        t_start = _copy(self.t_start, np.int64)
        t_end = _copy(self.t_end, np.int64)
        timed = (t_start != NO_TIME_NS) & (t_end != NO_TIME_NS)
        missing = np.isnan(latency)
        untimed = missing & ~timed
        if untimed.any():
            raise self._error(untimed, "needs 't_start_ns' and 't_end_ns', or 'latency_s'")
        latency[missing] = (t_end[missing] - t_start[missing]) / 1e9
        bad = ~(np.isfinite(latency) & (latency > 0))
        if bad.any():
            raise self._error(bad, "the pass latency must be positive (t_end_ns > t_start_ns, latency_s > 0)")
        return latency, t_start, t_end, timed

    def _experts_active(self, measured: BoolArray, phase: NDArray[np.int8]) -> IntArray:
        active_sum = np.zeros(measured.size, dtype=np.int64)
        if not self.active:
            return active_sum
        layers = self.num_moe_layers or 0
        active = self.active.joined().reshape(-1, layers)
        bad = active < 0
        if self.num_experts is not None:
            bad |= active > self.num_experts
        if bad.any():
            row = int(np.flatnonzero(measured)[np.argmax(bad.any(axis=1))])
            raise self._error(row, f"experts_active values must be in [0, E={self.num_experts}]")
        active_sum[measured] = active.sum(axis=1)
        if self.top_k is not None:
            # Each token reaches k distinct experts, so a pass with T ≥ 1 hits at least min(k, E) per layer.
            self.below_top_k += int((active.min(axis=1) < self.top_k).sum())
        self.tally.add_active(phase[measured], active)
        return active_sum

    def _expert_tokens(self, phase: NDArray[np.int8]) -> None:
        counts = self._expert_token_array()
        layers = self.num_moe_layers
        if counts.ndim != 3 or (layers is not None and counts.shape[1] != layers):
            raise CapbenchError(
                f"pass records {self.index[0]}–{self.index[-1]}: expert_tokens must hold one list of E "
                f"counts per MoE layer ({layers} layers); got an array of shape {counts.shape}"
            )
        if self.num_experts is not None and counts.shape[2] != self.num_experts:
            raise CapbenchError(
                f"pass records {self.index[0]}–{self.index[-1]}: expert_tokens lists must have E = "
                f"{self.num_experts} counts, got {counts.shape[2]}"
            )
        self.tally.add_tokens(phase[np.array(self.token_pos, dtype=np.int64)], counts)
