"""A tiny OpenAI-compatible streaming server for tests, demos and client benchmarks (standard library asyncio).

Run it::

    python -m capbench.testing.mock_server --port 0 --ttft-s 0.05 --itl-s 0.01 --output-tokens 64

It prints its URL (``http://127.0.0.1:PORT``) as the first line of stdout and serves until SIGINT/SIGTERM.

Endpoints: ``POST /v1/completions`` and ``POST /v1/chat/completions`` (streamed as server-sent events when
``"stream": true``, else one JSON body), ``GET /v1/models``, ``GET /health``, and for measurements
``GET /_capbench/sent`` (what the server sent and when, JSON) and ``POST /_capbench/reset`` (forget it).

Generation is synthetic: output token ``i`` is the text ``"tok<i> "``; ``prompt_tokens`` is the number of
whitespace-separated words of the prompt (completions: the prompt string, or the list's length for token
ids; chat: the text of every message), so it is *not* the count a real tokenizer would give. The number of
output tokens is the request's ``max_tokens`` (``max_completion_tokens`` for chat) when present and
``honour_max_tokens`` is on, else ``output_tokens``. Every request finishes with ``finish_reason: "length"``.

Timing. The request counts as received when its last byte was read (``t_received_ns``). Response headers are
written at once; token ``i`` is due at ``t_received + ttft + i·itl`` (absolute times, so delays do not
drift). By default every chunk is its own ``transport.write()``, and the streams that are due take turns on
the loop, one chunk each per loop iteration (one callback for all of them, like an engine step), so a server
that falls behind serves every stream a little rather than one stream in a burst. After the last token come
the usage chunk (``stream_options.include_usage``), ``data: [DONE]`` and the terminal HTTP chunk, each its
own write. With ``coalesce`` (``--coalesce``) every chunk that is due when a stream's timer fires goes out in
one write instead (with zero delays: headers and the whole stream in one write).

What "sent" means: the time recorded for a chunk is :func:`capbench.clock.now_ns` read right after
``transport.write()`` returned for the write holding it. If the socket accepted all the bytes, they were in
the kernel's send buffer at that moment; if not (the transport had to buffer them), the write is counted in
``buffered_writes`` of ``/_capbench/sent``'s ``stats``, and its recorded time is earlier than the real send.
A write on a connection that is closed or closing (the client went away, or the send failed) sends nothing:
it is counted in ``unsent_writes`` and recorded as not sent: no time is appended to ``token_sent_ns`` for
its tokens, and ``t_headers_ns`` / ``t_end_ns`` stay null when the write carrying them was not sent.
Wire format: HTTP/1.1, chunked transfer encoding, one SSE event per HTTP chunk, keep-alive.

Failure injection (for tests): ``fail_rate`` (that fraction of generation requests gets HTTP 500) and
``hang_rate`` (that fraction gets response headers and then nothing, to trigger client timeouts), drawn from
a ``random.Random(seed)`` in arrival order. A request can also ask for a behaviour in its JSON body with a
``"capbench_mock"`` object: ``status`` (respond with that HTTP status and an OpenAI error body), ``hang``
(headers, then nothing), ``hang_after_tokens`` / ``close_after_tokens`` (stop sending, or close the
connection, after that many tokens), ``ttft_s``, ``itl_s``, ``output_tokens`` (override the settings).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import select
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orjson import dumps as _dumps
from orjson import loads as _loads

from capbench.clock import now_ns


@dataclass(frozen=True)
class MockSettings:
    """Behaviour of the mock server (see the module docstring)."""

    ttft_s: float = 0.0
    itl_s: float = 0.0
    output_tokens: int = 64
    honour_max_tokens: bool = True
    fail_rate: float = 0.0
    hang_rate: float = 0.0
    seed: int = 0
    model: str = "capbench-mock"
    record: bool = True
    coalesce: bool = False
    send_usage: bool = True  # False: never report usage (a server without it; tests token-count fallbacks)

    def __post_init__(self) -> None:
        if self.ttft_s < 0 or self.itl_s < 0:
            raise ValueError("ttft_s and itl_s must be >= 0")
        if self.output_tokens < 1:
            raise ValueError("output_tokens must be >= 1")
        if not (0 <= self.fail_rate <= 1 and 0 <= self.hang_rate <= 1):
            raise ValueError("fail_rate and hang_rate must lie in [0, 1]")


@dataclass
class SentRecord:
    """What the server did for one request, on :func:`capbench.clock.now_ns`."""

    request_id: str
    path: str
    stream: bool
    status: int
    t_received_ns: int
    prompt_tokens: int = 0
    output_tokens: int = 0
    t_headers_ns: int | None = None  # None until (or unless) the headers were sent
    token_sent_ns: list[int] = field(default_factory=list)  # one per token chunk sent, in order
    t_end_ns: int | None = None  # the write that ended the response (usage, [DONE], terminal chunk), if sent

    def as_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "path": self.path,
            "stream": self.stream,
            "status": self.status,
            "t_received_ns": self.t_received_ns,
            "prompt_tokens": self.prompt_tokens,
            "output_tokens": self.output_tokens,
            "t_headers_ns": self.t_headers_ns,
            "token_sent_ns": self.token_sent_ns,
            "t_end_ns": self.t_end_ns,
        }


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error"}
_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)
_DONE_CHUNK = b"e\r\ndata: [DONE]\n\n\r\n"
_LAST_CHUNK = b"0\r\n\r\n"
_MAX_REQUEST = 16 * 1024 * 1024
_ROUTES = {
    "/v1/completions": "POST",
    "/v1/chat/completions": "POST",
    "/v1/models": "GET",
    "/health": "GET",
    "/_capbench/sent": "GET",
    "/_capbench/reset": "POST",
}


def _count_words(value: Any) -> int:
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):
        if value and all(isinstance(v, int) for v in value):
            return len(value)
        return sum(_count_words(v) for v in value)
    if isinstance(value, dict):
        if value.get("type") == "text" or "text" in value:
            return _count_words(value.get("text", ""))
        return _count_words(value.get("content", ""))
    return 0


def _chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


class _Stream:
    """One streamed (or delayed non-streamed) response being generated on a connection."""

    __slots__ = (
        "cancelled",
        "chat",
        "close_after",
        "conn",
        "hang_after",
        "i",
        "include_usage",
        "itl_ns",
        "n",
        "prefix",
        "rec",
        "server",
        "stream",
        "t_first_ns",
        "timer",
        "usage",
    )

    def __init__(
        self,
        server: MockServer,
        conn: _ServerConnection,
        rec: SentRecord,
        *,
        chat: bool,
        stream: bool,
        n: int,
        ttft_ns: int,
        itl_ns: int,
        include_usage: bool,
        hang_after: int | None,
        close_after: int | None,
    ) -> None:
        self.server = server
        self.conn = conn
        self.rec = rec
        self.chat = chat
        self.stream = stream
        self.n = n
        self.itl_ns = itl_ns
        self.t_first_ns = rec.t_received_ns + ttft_ns
        self.include_usage = include_usage
        self.hang_after = hang_after
        self.close_after = close_after
        self.i = 0
        self.cancelled = False
        self.timer: asyncio.Handle | None = None
        rid = b"%d" % server.next_id()
        model = server.model_json
        if chat:
            self.prefix = (
                b'data: {"id":"chatcmpl-'
                + rid
                + b'","object":"chat.completion.chunk","created":'
                + server.created
                + b',"model":'
                + model
                + b',"choices":['
            )
        else:
            self.prefix = (
                b'data: {"id":"cmpl-'
                + rid
                + b'","object":"text_completion","created":'
                + server.created
                + b',"model":'
                + model
                + b',"choices":['
            )
        total = rec.prompt_tokens + n
        self.usage = b'"usage":{"prompt_tokens":%d,"total_tokens":%d,"completion_tokens":%d}' % (
            rec.prompt_tokens,
            total,
            n,
        )

    def _token_chunk(self, i: int) -> bytes:
        reason = b'"length"' if i == self.n - 1 else b"null"
        text = self.server.token_text(i)
        if self.chat:
            body = b'{"index":0,"delta":{"content":"%s"},"logprobs":null,"finish_reason":%s}]}\n\n' % (text, reason)
        else:
            body = b'{"index":0,"text":"%s","logprobs":null,"finish_reason":%s}]}\n\n' % (text, reason)
        return _chunk(self.prefix + body)

    def _role_chunk(self) -> bytes:
        role = b'{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}\n\n'
        return _chunk(self.prefix + role)

    def start(self) -> None:
        if self.stream:
            if self.server.settings.coalesce and self.t_first_ns <= now_ns() and not self.itl_ns:
                self._step(head=_STREAM_HEAD)  # zero delays, coalescing: headers and the whole stream in one write
            else:
                self.rec.t_headers_ns = self.server.write(self.conn, _STREAM_HEAD)
                self._step()
        elif self.hang_after is None:
            self._arm(self.t_first_ns + self.itl_ns * (self.n - 1))
        # else: a non-streamed request asked to hang: never answer

    def _arm(self, due_ns: int) -> None:
        loop = self.server.loop
        assert loop is not None
        self.timer = loop.call_at(loop.time() + (due_ns - now_ns()) / 1e9, self._fire)

    def _fire(self) -> None:
        self.timer = None
        if self.conn.closed or self.cancelled:
            return
        if self.stream:
            self._step()
        else:
            self._finish_json()

    def _stop_at(self) -> int:
        stop_at = self.n
        if self.hang_after is not None:
            stop_at = min(stop_at, self.hang_after)
        if self.close_after is not None:
            stop_at = min(stop_at, self.close_after)
        return stop_at

    def _step(self, head: bytes = b"") -> None:
        """Send what is due: the next chunk (one write per chunk), or everything due in one write (coalescing)."""
        if self.server.settings.coalesce:
            self._step_coalesced(head)
            return
        server = self.server
        conn = self.conn
        rec = self.rec
        i = self.i
        stop_at = self._stop_at()
        if i < stop_at and self.t_first_ns + i * self.itl_ns <= now_ns():
            if i == 0 and self.chat:
                server.write(conn, self._role_chunk())
            t = server.write(conn, self._token_chunk(i))
            if t is not None and server.settings.record:
                rec.token_sent_ns.append(t)
            i += 1
            self.i = i
        if i == self.n:
            if self.include_usage:
                server.write(conn, _chunk(self.prefix + b"]," + self.usage + b"}\n\n"))
            server.write(conn, _DONE_CHUNK)
            rec.t_end_ns = server.write(conn, _LAST_CHUNK)
            conn.response_done(self)
        elif i == stop_at:
            if self.close_after is not None and i == self.close_after:
                conn.abort()
            # else hang: send nothing more, keep the connection open until the client goes away
        else:
            due = self.t_first_ns + i * self.itl_ns
            if due <= now_ns():  # already due: yield to the loop first, so due streams take turns
                server.make_ready(self)
            else:
                self._arm(due)

    def _step_coalesced(self, head: bytes) -> None:
        now = now_ns()
        server = self.server
        conn = self.conn
        rec = self.rec
        parts = [head] if head else []
        i = start = self.i
        n = self.n
        first = self.t_first_ns
        itl = self.itl_ns
        stop_at = self._stop_at()
        while i < stop_at and first + i * itl <= now:
            if i == 0 and self.chat:
                parts.append(self._role_chunk())
            parts.append(self._token_chunk(i))
            i += 1
        self.i = i
        ended = i == n
        if ended:
            if self.include_usage:
                parts.append(_chunk(self.prefix + b"]," + self.usage + b"}\n\n"))
            parts += [_DONE_CHUNK, _LAST_CHUNK]
        if parts:
            t = server.write(conn, b"".join(parts))
            if head:
                rec.t_headers_ns = t
            if t is not None and i > start and server.settings.record:
                rec.token_sent_ns.extend([t] * (i - start))
            if ended:
                rec.t_end_ns = t
        if ended:
            conn.response_done(self)
        elif i == stop_at:
            if self.close_after is not None and i == self.close_after:
                conn.abort()
        else:
            self._arm(first + i * itl)

    def _finish_json(self) -> None:
        text = b"".join(self.server.token_text(i) for i in range(self.n)).decode()
        if self.chat:
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": "length",
            }
            obj = "chat.completion"
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": "length"}
            obj = "text_completion"
        body = _dumps(
            {
                "id": f"cmpl-{self.server.next_id()}",
                "object": obj,
                "created": int(self.server.created),
                "model": self.server.settings.model,
                "choices": [choice],
                "usage": {
                    "prompt_tokens": self.rec.prompt_tokens,
                    "total_tokens": self.rec.prompt_tokens + self.n,
                    "completion_tokens": self.n,
                },
            }
        )
        self.rec.t_end_ns = self.server.write(self.conn, _json_response(200, body, self.conn.keep_alive))
        self.conn.response_done(self)

    def cancel(self) -> None:
        self.cancelled = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


def _json_response(status: int, body: bytes, keep_alive: bool = True) -> bytes:
    reason = _REASONS.get(status, "Error")
    conn = b"" if keep_alive else b"connection: close\r\n"
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n"
        % (status, reason.encode(), len(body), conn)
        + body
    )


def _error_body(status: int, message: str) -> bytes:
    kind = "InternalServerError" if status >= 500 else "BadRequestError"
    return _dumps({"error": {"message": message, "type": kind, "param": None, "code": status}})


class _ServerConnection(asyncio.Protocol):
    """One client connection: parses requests (HTTP/1.1, Content-Length bodies), one response at a time."""

    def __init__(self, server: MockServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.busy: _Stream | None = None
        self.closed = False
        self.keep_alive = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)
        if self.busy is not None:
            self.busy.cancel()
            self.server.streams.discard(self.busy)
            self.busy = None

    def data_received(self, data: bytes) -> None:
        self.buf = self.buf + data if self.buf else data
        if self.busy is None:
            self._process()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def _process(self) -> None:
        while self.busy is None and not self.closed:
            buf = self.buf
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > 65536:
                    self.abort()
                return
            head = buf[:end].decode("latin-1").split("\r\n")
            try:
                method, target, version = head[0].split(" ", 2)
            except ValueError:
                self.abort()
                return
            headers: dict[str, str] = {}
            for line in head[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            try:
                length = int(headers.get("content-length", "0"))
            except ValueError:
                self.abort()
                return
            if length > _MAX_REQUEST or "chunked" in headers.get("transfer-encoding", ""):
                self.abort()  # this server reads Content-Length bodies only
                return
            if len(buf) < end + 4 + length:
                return
            body = buf[end + 4 : end + 4 + length]
            self.buf = buf[end + 4 + length :]
            connection = headers.get("connection", "").lower()
            self.keep_alive = ("keep-alive" in connection) if version == "HTTP/1.0" else ("close" not in connection)
            self.server.handle(self, method, target, headers, body, now_ns())

    def response_done(self, stream: _Stream | None = None) -> None:
        if stream is not None:
            self.server.streams.discard(stream)
        self.busy = None
        if not self.keep_alive:
            if self.transport is not None:
                self.transport.close()
            self.closed = True
            return
        if self.buf:
            self._process()


class MockServer:
    """The mock server on the running event loop: ``await start()`` (or ``async with``), then ``url``."""

    def __init__(self, settings: MockSettings | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.settings = settings or MockSettings()
        self.host = host
        self.port = port
        self.loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self.connections: set[_ServerConnection] = set()
        self.streams: set[_Stream] = set()
        self.records: list[SentRecord] = []
        self.requests = 0
        self.buffered_writes = 0
        self.unsent_writes = 0
        self.last_write_ns = 0  # the latest write that was sent
        self._ids = 0
        self._rng = random.Random(self.settings.seed)
        self.created = b"%d" % int(time.time())
        self.model_json = _dumps(self.settings.model)
        self._token_text: list[bytes] = []
        self._ready: list[_Stream] = []

    # -- lifecycle ------------------------------------------------------------------------------------------

    async def start(self) -> str:
        self.loop = asyncio.get_running_loop()
        self._server = await self.loop.create_server(lambda: _ServerConnection(self), self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.url

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def stop(self) -> None:
        """Stop listening, cancel every pending chunk and close every connection."""
        if self._server is not None:
            self._server.close()
        for stream in list(self.streams):
            stream.cancel()
        self.streams.clear()
        for conn in list(self.connections):
            conn.abort()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> MockServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- records --------------------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "buffered_writes": self.buffered_writes,
            "unsent_writes": self.unsent_writes,
            "records": len(self.records),
        }

    def take_records(self) -> list[SentRecord]:
        """The records so far, forgetting them."""
        out, self.records = self.records, []
        return out

    # -- helpers used by streams ----------------------------------------------------------------------------

    def next_id(self) -> int:
        self._ids += 1
        return self._ids

    def token_text(self, i: int) -> bytes:
        cache = self._token_text
        while len(cache) <= i:
            cache.append(b"tok%d " % len(cache))
        return cache[i]

    def make_ready(self, stream: _Stream) -> None:
        """Run ``stream``'s next step on the next loop iteration, with every other stream that is ready: one
        callback per iteration for all of them (like an engine step), not one per stream."""
        self._ready.append(stream)
        if len(self._ready) == 1:
            assert self.loop is not None
            self.loop.call_soon(self._run_ready)

    def _run_ready(self) -> None:
        ready, self._ready = self._ready, []
        for stream in ready:
            stream._fire()

    def write(self, conn: _ServerConnection, data: bytes) -> int | None:
        """Write ``data`` on ``conn``; return the time right after the write, or None when nothing was sent.

        Nothing is written on a connection that is closed or closing (the client went away, an earlier send
        failed, or the response ended with ``Connection: close``), and a write that fails closes the transport
        (then it is closing right after the write): either way counted in ``unsent_writes``, and the caller
        records no send time.
        """
        transport = conn.transport
        if transport is None or conn.closed or transport.is_closing():
            self.unsent_writes += 1
            return None
        transport.write(data)
        t = now_ns()
        if transport.is_closing():  # the send failed: the transport closed itself, the data is dropped
            self.unsent_writes += 1
            return None
        self.last_write_ns = t
        if transport.get_write_buffer_size():
            self.buffered_writes += 1
        return t

    # -- request handling -----------------------------------------------------------------------------------

    def handle(
        self, conn: _ServerConnection, method: str, target: str, headers: dict[str, str], body: bytes, t_ns: int
    ) -> None:
        path = target.split("?", 1)[0]
        allowed = _ROUTES.get(path)
        if allowed is None:
            self._reply(conn, 404, _error_body(404, f"no route for {method} {path}"))
        elif method != allowed:
            self._reply(conn, 405, _error_body(405, f"{method} not allowed on {path} (use {allowed})"))
        elif path in ("/v1/completions", "/v1/chat/completions"):
            self._generate(conn, path, headers, body, t_ns)
        elif path == "/health":
            self._reply(conn, 200, b"")
        elif path == "/v1/models":
            model = {"id": self.settings.model, "object": "model", "created": int(self.created), "owned_by": "capbench"}
            self._reply(conn, 200, _dumps({"object": "list", "data": [model]}))
        elif path == "/_capbench/sent":
            records = [r.as_dict() for r in self.records]
            self._reply(conn, 200, _dumps({"records": records, "stats": self.stats()}))
        else:  # /_capbench/reset
            self.records = []
            self._reply(conn, 200, b"{}")

    def _reply(self, conn: _ServerConnection, status: int, body: bytes) -> int | None:
        t = self.write(conn, _json_response(status, body, conn.keep_alive))
        conn.response_done()
        return t

    def _generate(self, conn: _ServerConnection, path: str, headers: dict[str, str], body: bytes, t_ns: int) -> None:
        settings = self.settings
        self.requests += 1
        try:
            req = _loads(body)
            if not isinstance(req, dict):
                raise ValueError("the body is not a JSON object")
        except ValueError as exc:
            self._reply(conn, 400, _error_body(400, f"invalid JSON body: {exc}"))
            return
        chat = path == "/v1/chat/completions"
        mock = req.get("capbench_mock") or {}
        rid = headers.get("x-request-id") or f"req-{self.requests}"
        prompt_tokens = _count_words(req.get("messages") if chat else req.get("prompt"))
        stream = bool(req.get("stream"))
        fail = settings.fail_rate > 0 and self._rng.random() < settings.fail_rate
        hang = settings.hang_rate > 0 and self._rng.random() < settings.hang_rate
        status = int(mock.get("status", 500 if fail else 200))
        rec = SentRecord(rid, path, stream, status, t_ns, prompt_tokens=prompt_tokens)
        if settings.record:
            self.records.append(rec)
        if status != 200:
            rec.t_end_ns = self._reply(conn, status, _error_body(status, f"injected failure (HTTP {status})"))
            return
        n = settings.output_tokens
        if settings.honour_max_tokens:
            asked = req.get("max_completion_tokens") if chat else None
            asked = asked if asked is not None else req.get("max_tokens")
            if isinstance(asked, int) and asked > 0:
                n = asked
        n = int(mock.get("output_tokens", n))
        rec.output_tokens = n
        ttft_s = float(mock.get("ttft_s", settings.ttft_s))
        itl_s = float(mock.get("itl_s", settings.itl_s))
        hang_after = 0 if (hang or mock.get("hang")) else mock.get("hang_after_tokens")
        options = req.get("stream_options") or {}
        s = _Stream(
            self,
            conn,
            rec,
            chat=chat,
            stream=stream,
            n=n,
            ttft_ns=round(ttft_s * 1e9),
            itl_ns=round(itl_s * 1e9),
            include_usage=self.settings.send_usage and (bool(options.get("include_usage")) if stream else True),
            hang_after=None if hang_after is None else int(hang_after),
            close_after=None if mock.get("close_after_tokens") is None else int(mock["close_after_tokens"]),
        )
        conn.busy = s
        self.streams.add(s)
        s.start()


# -- running it in another process -------------------------------------------------------------------------


def settings_to_args(settings: MockSettings) -> list[str]:
    """Command-line arguments of ``python -m capbench.testing.mock_server`` for ``settings``."""
    args = [
        f"--ttft-s={settings.ttft_s!r}",
        f"--itl-s={settings.itl_s!r}",
        f"--output-tokens={settings.output_tokens}",
        f"--fail-rate={settings.fail_rate!r}",
        f"--hang-rate={settings.hang_rate!r}",
        f"--seed={settings.seed}",
        f"--model={settings.model}",
    ]
    if not settings.honour_max_tokens:
        args.append("--no-honour-max-tokens")
    if not settings.record:
        args.append("--no-record")
    if settings.coalesce:
        args.append("--coalesce")
    if not settings.send_usage:
        args.append("--no-usage")
    return args


class MockServerProcess:
    """The mock server in a child process (``python -m capbench.testing.mock_server``): for tests that kill
    the server, and for benchmarks that pin it to a core. Use as a context manager, or ``start()``/``stop()``.
    """

    def __init__(
        self,
        settings: MockSettings | None = None,
        *,
        cpus: Sequence[int] | None = None,
        python: str = sys.executable,
        extra_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        start_timeout_s: float = 30.0,
    ) -> None:
        self.settings = settings or MockSettings()
        self.cpus = list(cpus) if cpus is not None else None
        self.python = python
        self.extra_args = list(extra_args)
        self.env = env
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> str:
        cmd = [self.python, "-m", "capbench.testing.mock_server", "--port", "0", *settings_to_args(self.settings)]
        cmd += self.extra_args
        cpus = self.cpus

        def pin() -> None:  # pragma: no cover - runs in the child
            if cpus is not None:
                os.sched_setaffinity(0, cpus)

        proc = self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, env=self.env, preexec_fn=pin if cpus is not None else None
        )
        assert proc.stdout is not None
        try:
            ready, _, _ = select.select([proc.stdout], [], [], self.start_timeout_s)
            line = proc.stdout.readline().decode().strip() if ready else ""
        except BaseException:
            self._abandon()
            raise
        if not line.startswith("http://"):
            status = proc.poll()
            if ready and status is None:  # its stdout ended (or said something else): it is likely exiting
                with contextlib.suppress(subprocess.TimeoutExpired):
                    status = proc.wait(timeout=1.0)
            self._abandon()
            if status is not None:
                how = f"exited with status {status}"
            else:
                how = "printed no URL" if ready else f"no URL within {self.start_timeout_s:g} s"
            raise RuntimeError(f"mock server did not start ({how}; first line {line!r})")
        self.url = line
        return line

    def _abandon(self) -> None:
        """A failed start: kill the child (if it still runs) and close its stdout pipe."""
        try:
            self.kill()
        finally:
            if self.proc is not None and self.proc.stdout is not None:
                self.proc.stdout.close()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _request(self, method: str, path: str) -> bytes:
        req = urllib.request.Request(self.url + path, method=method, data=b"" if method == "POST" else None)
        with urllib.request.urlopen(req, timeout=60) as resp:  # a local URL we started
            data: bytes = resp.read()
            return data

    def sent(self) -> dict[str, Any]:
        """``{"records": [...], "stats": {...}}`` from ``GET /_capbench/sent``."""
        result: dict[str, Any] = _loads(self._request("GET", "/_capbench/sent"))
        return result

    def reset(self) -> None:
        self._request("POST", "/_capbench/reset")

    def kill(self) -> None:
        """SIGKILL: the server dies without closing its sockets cleanly (the kernel resets them)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> MockServerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- command line ------------------------------------------------------------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m capbench.testing.mock_server",
        description="A tiny OpenAI-compatible streaming server for tests and demos; prints its URL first.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = any free port (default)")
    p.add_argument("--ttft-s", type=float, default=0.0, help="time to first token, seconds")
    p.add_argument("--itl-s", type=float, default=0.0, help="inter-token delay, seconds")
    p.add_argument("--output-tokens", type=int, default=64, help="tokens per response when max_tokens is absent")
    p.add_argument(
        "--no-honour-max-tokens", action="store_true", help="always send --output-tokens, whatever max_tokens says"
    )
    p.add_argument("--fail-rate", type=float, default=0.0, help="fraction of requests answered with HTTP 500")
    p.add_argument("--hang-rate", type=float, default=0.0, help="fraction of requests that hang after the headers")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default="capbench-mock")
    p.add_argument("--no-record", action="store_true", help="do not record send times")
    p.add_argument(
        "--coalesce", action="store_true", help="write every chunk that is due in one write (default: one per chunk)"
    )
    p.add_argument("--no-usage", action="store_true", help="never report usage, even when the client asks")
    p.add_argument("--sent-log", type=Path, help="write the send records here (JSONL) on exit")
    p.add_argument("--uvloop", action="store_true", help="run on uvloop (must be installed)")
    p.add_argument("--cpu", type=int, action="append", help="pin to this CPU (repeatable)")
    return p.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    settings = MockSettings(
        ttft_s=args.ttft_s,
        itl_s=args.itl_s,
        output_tokens=args.output_tokens,
        honour_max_tokens=not args.no_honour_max_tokens,
        fail_rate=args.fail_rate,
        hang_rate=args.hang_rate,
        seed=args.seed,
        model=args.model,
        record=not args.no_record,
        coalesce=args.coalesce,
        send_usage=not args.no_usage,
    )
    server = MockServer(settings, host=args.host, port=args.port)
    url = await server.start()
    sys.stdout.write(url + "\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        records = list(server.records)
        await server.stop()
        if args.sent_log is not None:
            with args.sent_log.open("wb") as f:
                for rec in records:
                    f.write(_dumps(rec.as_dict()) + b"\n")


def main(argv: Sequence[str] | None = None) -> None:
    args = _parse_args(argv)
    if args.cpu:
        os.sched_setaffinity(0, args.cpu)
    if args.uvloop:
        import uvloop

        factory = uvloop.new_event_loop
    else:
        factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner, contextlib.suppress(KeyboardInterrupt):
        runner.run(_serve(args))


def iter_token_texts(n: int) -> Iterator[str]:
    """The synthetic output the server streams for ``n`` tokens: ``tok0 ``, ``tok1 ``, ..."""
    for i in range(n):
        yield f"tok{i} "


def expected_text(n: int) -> str:
    return "".join(iter_token_texts(n))


if __name__ == "__main__":
    main()
