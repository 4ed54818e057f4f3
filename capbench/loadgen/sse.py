"""Server-sent events and OpenAI streaming chunks, parsed after the stream (never on the hot path).

While a response streams, the client only records ``(now_ns(), bytes)`` per socket read. Once the response
is complete, the HTTP layer turns the reads into body *pieces* (the body bytes each read carried, with that
read's timestamp) and this module

1. splits the body into SSE events (:func:`split_events`), giving each event the timestamp of the read that
   carried the end of the event (its terminating blank line), and
2. accounts the OpenAI chunks those events carry (:func:`account_openai`): generated text, one timestamp per
   event that carried generated text, the finish reason, the ``usage`` object, errors.

SSE rules followed (WHATWG HTML, "Server-sent events"): lines end in LF, CRLF or CR; an event ends at a blank
line; ``data:`` lines (one optional space after the colon) are joined with LF; comment lines (starting with
``:``) and other fields (``event:``, ``id:``, ``retry:``) are ignored for accounting; an event with no data
line is not an event for our purposes. A trailing incomplete event (no blank line after it) is dropped, as a
browser would.
"""

from __future__ import annotations

import bisect
import itertools
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from orjson import JSONDecodeError as _JSONDecodeError
from orjson import dumps as _dumps
from orjson import loads as _loads

Piece = tuple[int, bytes]
"""``(t_ns, body_bytes)``: the body bytes one socket read carried and the time that read returned."""

DONE = b"[DONE]"
_first = operator.itemgetter(0)
_second = operator.itemgetter(1)


def _normalize_newlines(pieces: Sequence[Piece]) -> list[Piece]:
    """Rewrite CRLF and lone CR line ends to LF.

    A CR that ends a piece is a line end at once; if the next piece starts with LF, that LF is the second half
    of a CRLF split across reads and is dropped.
    """
    out: list[Piece] = []
    skip_lf = False
    for t, data in pieces:
        if skip_lf and data.startswith(b"\n"):
            data = data[1:]
        skip_lf = data.endswith(b"\r")
        out.append((t, data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")))
    return out


def _block_data(block: bytes) -> bytes | None:
    """The joined ``data`` lines of one event block (LF line ends), or None if it has no data line."""
    if block.startswith(b"data:") and b"\n" not in block:  # one data line
        value = block[5:]
        return value[1:] if value.startswith(b" ") else value
    data_lines = []
    for line in block.split(b"\n"):
        if line == b"data":
            data_lines.append(b"")
        elif line.startswith(b"data:"):
            value = line[5:]
            data_lines.append(value[1:] if value.startswith(b" ") else value)
    return b"\n".join(data_lines) if data_lines else None


def _bulk_columns(pieces: Sequence[Piece]) -> tuple[list[int], list[bytes]] | None:
    """The common case in bulk: a body made only of single-line ``data: ...`` events with LF line ends.

    The joined body is split at ``"\\n\\ndata: "`` into ``n`` values and accepted when it holds exactly ``2n``
    LFs (none inside a value) and no CR: then every event is ``data: <value>\\n\\n``. Each event's time comes
    from comparing cumulative event and piece end offsets. Returns None when the body is not of that form.
    """
    body = pieces[0][1] if len(pieces) == 1 else b"".join(map(_second, pieces))
    if not (body.startswith(b"data: ") and body.endswith(b"\n\n")) or b"\r" in body:
        return None
    datas = body[6:-2].split(b"\n\ndata: ")
    n = len(datas)
    if body.count(b"\n") != 2 * n:  # an LF inside some event: not all single-line events
        return None
    if len(pieces) == 1:
        return [pieces[0][0]] * n, datas
    piece_ends = list(itertools.accumulate(map(len, map(_second, pieces))))
    event_ends = list(itertools.accumulate(map(operator.add, map(len, datas), itertools.repeat(8))))
    piece_times = list(map(_first, pieces))
    if piece_ends == event_ends:  # one event per piece
        return piece_times, datas
    # an event belongs to the piece holding its last byte: piece k gets the events whose end offset lies in
    # (end of piece k-1, end of piece k]
    times: list[int] = []
    done = 0
    for t, piece_end in zip(piece_times, piece_ends, strict=True):
        upto = bisect.bisect_right(event_ends, piece_end)
        if upto > done:
            times += [t] * (upto - done)
            done = upto
    return times, datas


def split_event_columns(pieces: Sequence[Piece]) -> tuple[list[int], list[bytes]]:
    """:func:`split_events` as two parallel lists, ``(times_ns, datas)`` (no tuple per event)."""
    if not pieces:
        return [], []
    bulk = _bulk_columns(pieces)
    if bulk is not None:
        return bulk
    times: list[int] = []
    datas: list[bytes] = []
    buf = b""  # the start of an event whose end has not arrived yet
    for k, (t, data) in enumerate(pieces):
        if b"\r" in data:  # CR or CRLF line ends from here on: normalize the rest, then carry on
            rest_times, rest_datas = split_event_columns(_normalize_newlines([(t, buf), *pieces[k:]]))
            return times + rest_times, datas + rest_datas
        buf = buf + data if buf else data
        pos = 0
        find = buf.find
        while True:
            i = find(b"\n\n", pos)
            if i < 0:
                break
            value = _block_data(buf[pos:i])
            if value is not None:
                times.append(t)
                datas.append(value)
            pos = i + 2
        buf = buf[pos:] if pos else buf
    return times, datas


def split_events(pieces: Sequence[Piece]) -> list[Piece]:
    """SSE events of a body as ``(t_ns, data)``: the event's joined ``data`` lines and when it completed.

    ``t_ns`` is the timestamp of the piece that holds the event's terminating blank line, i.e. the read that
    completed the event. Events without a ``data`` field are skipped.
    """
    times, datas = split_event_columns(pieces)
    return list(zip(times, datas, strict=True))


@dataclass(slots=True)
class StreamAccount:
    """What an OpenAI-compatible stream said, accounted after it ended."""

    token_times_ns: list[int] = field(default_factory=list)
    output_text: str = ""
    reasoning_text: str = ""
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    chunks: int = 0  # SSE data events other than the [DONE] sentinel
    done: bool = False  # the [DONE] sentinel arrived
    error: str | None = None
    logprobs: dict[str, Any] | None = None  # a non-streamed completion's choices[0].logprobs, as sent


def _short(data: bytes | str, limit: int = 200) -> str:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return text if len(text) <= limit else text[:limit] + "..."


def account_openai(events: Sequence[Piece]) -> StreamAccount:
    """Account the OpenAI streaming chunks of ``events`` (``(t_ns, data)``, from :func:`split_events`).

    - Generated text is ``choices[0].text`` (completions) or ``choices[0].delta.content`` (chat); reasoning
      models' ``delta.reasoning_content`` / ``delta.reasoning`` is collected separately in ``reasoning_text``.
    - An event that carried non-empty generated text (content or reasoning) gets one entry in
      ``token_times_ns`` (its timestamp). A chat role-only chunk (``content: ""``), a finish-only chunk and the
      usage chunk carry no text and get none.
    - ``finish_reason`` is the last non-null ``choices[0].finish_reason``; ``usage`` the last non-null
      ``usage`` object (the final chunk when ``stream_options.include_usage`` is set; servers sending
      continuous usage stats update it on every chunk).
    - ``{"error": ...}`` in a chunk, or data that is not a JSON object, sets ``error`` (the first one is kept).
    - Only choice index 0 is accounted (``n > 1`` is not supported).
    """
    return account_openai_columns([t for t, _ in events], [d for _, d in events])


def _decode_all(datas: list[bytes]) -> list[Any] | None:
    """Every event's JSON in one ``orjson`` call (``[d0,d1,...]``), or None when that does not give one value
    per event (a malformed event, or one whose data is not a single JSON value): then decode one by one."""
    if not datas:
        return []
    try:
        objs = _loads(b"[" + b",".join(datas) + b"]")
    except (_JSONDecodeError, ValueError):
        return None
    return objs if len(objs) == len(datas) else None


def account_openai_columns(times: list[int], datas: list[bytes]) -> StreamAccount:
    """:func:`account_openai` on parallel lists of event times and data."""
    acc = StreamAccount()
    if datas and datas[-1] == DONE:
        acc.done = True
        times = times[:-1]
        datas = datas[:-1]
    objs = None if DONE in datas else _decode_all(datas)
    if objs is None:  # the slow path: event by event, [DONE] anywhere, malformed data reported
        objs = []
        kept: list[int] = []
        for t, data in zip(times, datas, strict=True):
            if data == DONE:
                acc.done = True
                continue
            kept.append(t)
            try:
                objs.append(_loads(data))
            except (_JSONDecodeError, ValueError):
                objs.append(None)
                if acc.error is None:
                    acc.error = f"malformed SSE data (not JSON): {_short(data)}"
        times = kept
    acc.chunks = len(objs)
    token_times = acc.token_times_ns
    texts: list[str] = []
    reasoning: list[str] = []
    for t, obj in zip(times, objs, strict=True):
        if type(obj) is not dict:
            if obj is not None and acc.error is None:
                acc.error = f"malformed SSE data (not a JSON object): {_short(_dumps(obj))}"
            continue
        choices = obj.get("choices")
        if choices:
            choice = choices[0]
            text = choice.get("text")
            if text is None:
                delta = choice.get("delta")
                if delta:
                    text = delta.get("content")
                    thought = delta.get("reasoning_content") or delta.get("reasoning")
                    if thought:
                        reasoning.append(thought)
                        if not text:
                            token_times.append(t)
            if text:
                texts.append(text)
                token_times.append(t)
            reason = choice.get("finish_reason")
            if reason is not None:
                acc.finish_reason = reason
        usage = obj.get("usage")
        if usage is not None:
            acc.usage = usage
        err = obj.get("error")
        if err is not None and acc.error is None:
            message = err.get("message", err) if isinstance(err, dict) else err
            acc.error = f"error in stream: {_short(str(message))}"
    acc.output_text = "".join(texts)
    acc.reasoning_text = "".join(reasoning)
    return acc


def account_openai_json(body: bytes) -> StreamAccount:
    """Account a non-streamed OpenAI response body (``stream: false``): text, finish reason, usage, and the
    completion's ``logprobs`` object (kept as sent: a log-likelihood request reads its prompt's log-probabilities
    from it).

    There are no token events, so ``token_times_ns`` stays empty.
    """
    acc = StreamAccount()
    try:
        obj = _loads(body)
    except (_JSONDecodeError, ValueError):
        acc.error = f"malformed JSON response: {_short(body)}"
        return acc
    if type(obj) is not dict:
        acc.error = f"malformed JSON response (not an object): {_short(body)}"
        return acc
    choices = obj.get("choices")
    if choices:
        choice = choices[0]
        text = choice.get("text")
        if text is None:
            message = choice.get("message") or {}
            text = message.get("content")
            acc.reasoning_text = message.get("reasoning_content") or message.get("reasoning") or ""
        acc.output_text = text or ""
        acc.finish_reason = choice.get("finish_reason")
        logprobs = choice.get("logprobs")
        acc.logprobs = logprobs if type(logprobs) is dict else None
    acc.usage = obj.get("usage")
    err = obj.get("error")
    if err is not None:
        message = err.get("message", err) if isinstance(err, dict) else err
        acc.error = f"error in response: {_short(str(message))}"
    return acc
