"""HTTP/1.1 response framing from timestamped reads: headers, chunked and Content-Length bodies, timestamps."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capbench.loadgen.driver import run_load
from capbench.loadgen.framing import DONE, Exchange, ProtocolError, short_error_body
from capbench.loadgen.http import STREAM_INCOMPLETE
from capbench.loadgen.sse import account_openai, split_events
from capbench.loadgen.types import HttpRequestSpec, LoadPattern, RequestResult

SPEC = HttpRequestSpec(id="r0000", warmup=False, path="/v1/completions", body=b"{}")
HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def _event(i: int) -> bytes:
    return b'data: {"choices":[{"index":0,"text":"t%d ","finish_reason":null}]}\n\n' % i


def _chunked(payloads: list[bytes], trailer: bytes = b"") -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in payloads) + b"0\r\n" + trailer + b"\r\n"


def _feed(raw: bytes, cuts: list[int]) -> tuple[Exchange, int | None]:
    """Feed ``raw`` split at ``cuts`` as reads timestamped 0, 1, 2...; like the connection's hot path."""
    ex = Exchange(SPEC, 0, None)
    bounds = [0, *sorted(set(cuts)), len(raw)]
    done_at = None
    for t, (a, b) in enumerate(itertools.pairwise(bounds)):
        data = raw[a:b]
        if not data:
            continue
        ex.reads.append((t, data))
        if ex.state == 0:
            complete = ex.parse_head()
        elif ex.state == 1:
            complete = (data[-4:] == b"\r\n\r\n" or len(data) < 4) and ex.walk_chunked()
        elif ex.state == 2:
            ex.remaining -= len(data)
            complete = ex.remaining <= 0
        else:
            complete = False
        if complete and done_at is None:
            done_at = t
    return ex, done_at


def _read_index(offsets: list[int], position: int) -> int:
    """Index of the read holding byte ``position`` of the stream, for reads ending at ``offsets``."""
    return next(i for i, end in enumerate(offsets) if position < end)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 6), data=st.data())
def test_chunked_stream_split_anywhere_gives_the_same_events_with_the_right_times(n: int, data: st.DataObject) -> None:
    payloads = [_event(i) for i in range(n)]
    # one SSE event per HTTP chunk, or all events in one chunk, or an event split over two chunks
    layout = data.draw(st.sampled_from(["each", "joined", "split"]))
    if layout == "joined":
        payloads = [b"".join(payloads)]
    elif layout == "split":
        whole = b"".join(payloads)
        payloads = [whole[:7], whole[7:]]
    raw = HEAD + _chunked([*payloads, b"data: [DONE]\n\n"])
    cuts = data.draw(st.lists(st.integers(1, len(raw) - 1), max_size=8))
    ex, done_at = _feed(raw, cuts)
    bounds = sorted({c for c in cuts if 0 < c < len(raw)} | {len(raw)})
    assert done_at == len(bounds) - 1  # complete exactly at the last read
    events = split_events(ex.body_pieces())
    body = b"".join(payloads) + b"data: [DONE]\n\n"
    # the expected time of each event: the read holding the LF of its terminating blank line, in the raw stream
    expected_times = []
    search = 0
    for _ in range(n + 1):
        end_in_body = body.index(b"\n\n", search) + 1
        search = end_in_body + 1
        # map a body offset to a raw offset by walking the chunk framing
        raw_pos = _body_to_raw(raw, len(HEAD), end_in_body)
        expected_times.append(_read_index(bounds, raw_pos))
    assert [e[1] for e in events] == [p[6:-2] for p in (*(_event(i) for i in range(n)), b"data: [DONE]\n\n")]
    assert [e[0] for e in events] == expected_times
    acc = account_openai(events)
    assert acc.output_text == "".join(f"t{i} " for i in range(n)) and acc.done


def _body_to_raw(raw: bytes, start: int, body_pos: int) -> int:
    pos = start
    seen = 0
    while True:
        eol = raw.index(b"\r\n", pos)
        size = int(raw[pos:eol], 16)
        data_start = eol + 2
        if body_pos < seen + size:
            return data_start + (body_pos - seen)
        seen += size
        pos = data_start + size + 2


def test_content_length_body_and_header_block_split_across_reads() -> None:
    body = b'{"choices":[{"text":"x"}]}'
    raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    ex, done_at = _feed(raw, [5, 30, len(raw) - 3])
    assert done_at == 3 and ex.status == 200 and ex.keep_alive
    assert b"".join(p for _, p in ex.body_pieces()) == body
    assert ex.headers["content-type"] == "application/json"


def test_interim_100_continue_trailers_chunk_extensions_and_connection_close() -> None:
    raw = (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        + b"7;ext=1\r\ndata: a\r\n2\r\n\n\r\n0\r\nX-Trailer: 1\r\n\r\n"
    )
    ex, done_at = _feed(raw, [10, 60])
    assert done_at == 2 and ex.status == 200 and not ex.keep_alive
    assert split_events(ex.body_pieces()) == [(2, b"a")]


def test_no_body_statuses_and_leftover_bytes() -> None:
    ex, done_at = _feed(b"HTTP/1.1 204 No Content\r\n\r\n", [])
    assert done_at == 0 and ex.body_pieces() == []
    ex, done_at = _feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA", [])
    assert done_at == 0 and ex.leftover and b"".join(p for _, p in ex.body_pieces()) == b"ok"
    ex, _ = _feed(HEAD + _chunked([b"data: a\n\n"]) + b"junk", [])
    assert ex.leftover and ex.state == DONE


def test_http10_and_close_delimited_body() -> None:
    ex, done_at = _feed(b"HTTP/1.0 200 OK\r\n\r\ndata: a\n\n", [])
    assert done_at is None and not ex.keep_alive  # complete only when the server closes
    assert split_events(ex.body_pieces()) == [(0, b"a")]


def test_broken_framing_raises() -> None:
    with pytest.raises(ProtocolError, match="bad status line"):
        _feed(b"SPDY/9 nonsense\r\n\r\n", [])
    with pytest.raises(ProtocolError, match="bad chunk size"):
        _feed(HEAD + b"zz\r\nxx\r\n0\r\n\r\n", [])
    with pytest.raises(ProtocolError, match="bad Content-Length"):
        _feed(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", [])


def test_partial_chunked_body_is_kept_on_failure() -> None:
    raw = HEAD + _chunked([_event(0), _event(1)])
    ex, done_at = _feed(raw[: len(HEAD) + 30], [])
    assert done_at is None
    ex.reads.append((1, raw[len(HEAD) + 30 : -20]))  # arrives, then the connection dies
    assert [t for t, _ in split_events(ex.body_pieces())] == [1]


def test_error_body_messages() -> None:
    assert short_error_body(b'{"error":{"message":"bad  model\\n name","code":404}}') == "bad model name"
    assert short_error_body(b'{"detail":"Not Found"}') == "Not Found"
    assert short_error_body(b'{"object":"error","message":"boom"}') == "boom"
    assert short_error_body(b"plain text") == "plain text"
    assert short_error_body(b"x" * 500).endswith("...")


# -- how a response that ended is judged (a real socket: a server that sends canned bytes, then closes) -------

_FINISH = b'data: {"choices":[{"index":0,"text":"","finish_reason":"length"}]}\n\n'
_SSE_CLOSE = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n"  # close-delimited body


def _serve_canned(raw: bytes) -> RequestResult:
    """One request against a server that answers ``raw`` and then closes the connection cleanly (FIN)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content"))
        await reader.readexactly(length)
        writer.write(raw)
        await writer.drain()
        writer.close()

    async def main() -> list[RequestResult]:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        got: list[RequestResult] = []
        try:
            await asyncio.wait_for(
                run_load(f"http://127.0.0.1:{port}", [], iter([SPEC]), LoadPattern(concurrency=1), got.append), 10
            )
        finally:
            server.close()
        return got

    (result,) = asyncio.run(main())
    return result


def test_a_stream_ending_without_finish_reason_or_done_is_an_error_that_keeps_what_arrived() -> None:
    # chunked, properly terminated, but the generation stopped after two tokens
    r = _serve_canned(HEAD + _chunked([_event(0), _event(1)]))
    assert r.error == STREAM_INCOMPLETE and r.http_status == 200
    assert r.output_text == "t0 t1 " and len(r.token_times_ns) == 2 and r.chunks == 2 and not r.stream_done
    # close-delimited: a server that crashed mid-stream closes cleanly, which ends such a body
    r = _serve_canned(_SSE_CLOSE + _event(0))
    assert r.error == STREAM_INCOMPLETE and r.output_text == "t0 " and len(r.token_times_ns) == 1
    # an empty 2xx event stream is no success either
    assert _serve_canned(HEAD + _chunked([])).error == STREAM_INCOMPLETE


def test_a_stream_with_finish_reason_or_done_and_a_complete_json_body_succeed() -> None:
    r = _serve_canned(_SSE_CLOSE + _event(0) + _FINISH + b"data: [DONE]\n\n")
    assert r.error is None and r.finish_reason == "length" and r.stream_done and r.output_text == "t0 "
    r = _serve_canned(HEAD + _chunked([_event(0), _FINISH]))  # no [DONE] (some servers): finish_reason suffices
    assert r.error is None and r.finish_reason == "length" and not r.stream_done
    r = _serve_canned(HEAD + _chunked([_event(0), b"data: [DONE]\n\n"]))  # [DONE] without finish_reason
    assert r.error is None and r.stream_done
    body = b'{"choices":[{"index":0,"text":"hi","finish_reason":null}]}'
    r = _serve_canned(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n" + body)  # close-delimited
    assert r.error is None and r.output_text == "hi"
    r = _serve_canned(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n" + body[:20])  # truncated
    assert r.error is not None and r.error.startswith("malformed JSON response")
