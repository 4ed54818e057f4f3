"""A lean streaming HTTP/1.1 client on :class:`asyncio.Protocol`, built to time streamed responses.

Hot path. For every socket read, :meth:`Connection.data_received` first reads the clock and appends
``(now_ns(), bytes)`` to the exchange; the only other work before returning is what completion detection
needs: counting bytes (``Content-Length``), a check of the read's last four bytes (chunked: the message can
only end with a read ending in CRLF CRLF; then the chunk framing is walked incrementally), or the header
block of the response. No SSE or JSON parsing happens while a response streams.

After the response is complete (or failed), the framing is undone into body pieces carrying the timestamp of
the read they came in, then :mod:`capbench.loadgen.sse` splits events and accounts the OpenAI chunks. A 2xx
event stream whose HTTP message ended (terminal chunk, ``Content-Length`` reached, or a close-delimited body
closed by the server, which is also what a crashing server does) without any ``finish_reason`` and without
``[DONE]`` is a failure (:data:`STREAM_INCOMPLETE`); a complete non-streamed JSON body is judged by its JSON.

Connections: HTTP/1.1 keep-alive, one connection per request in flight, reused last-in first-out; a
connection is dropped after ``Connection: close``, a close-delimited body, a timeout, an error, or bytes
left over after a response. No retries: a request that fails (even on a reused connection the server had just
closed) is reported as failed, because a retried request is a different measurement.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl as _ssl
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from capbench.clock import now_ns
from capbench.loadgen.framing import CHUNKED, CLOSE, DONE, HEADERS, LENGTH, Exchange, ProtocolError, short_error_body
from capbench.loadgen.sse import StreamAccount, account_openai_columns, account_openai_json, split_event_columns
from capbench.loadgen.types import HttpRequestSpec, RequestResult

STREAM_INCOMPLETE = "stream ended without finish_reason or [DONE]"
STREAM_EMPTY = "the stream held no completion chunk (only [DONE]): nothing was generated"
"""The error of a 2xx event stream whose HTTP message ended but that carried neither a ``finish_reason`` nor
the ``[DONE]`` sentinel (what arrived is kept on the result)."""

DoneCallback = Callable[[RequestResult, bool], None]
"""Called once per request as it ends: ``(result, connection_failure)``; the flag marks failures before any
response byte (refused, reset or closed)."""


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; carries at most one exchange at a time."""

    __slots__ = ("client", "closed", "ex", "transport", "uses")

    def __init__(self, client: HttpClient) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.ex: Exchange | None = None
        self.closed = False
        self.uses = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        t = now_ns()
        ex = self.ex
        if ex is None:  # bytes while idle: the connection can no longer be trusted
            self._drop()
            return
        ex.reads.append((t, data))
        state = ex.state
        try:
            if state == CHUNKED:
                if (data[-4:] == b"\r\n\r\n" or len(data) < 4) and ex.walk_chunked():
                    self.client._complete(self, ex)
            elif state == LENGTH:
                ex.remaining -= len(data)
                if ex.remaining <= 0:
                    ex.leftover = ex.remaining < 0
                    ex.state = DONE
                    self.client._complete(self, ex)
            elif state == HEADERS and ex.parse_head():
                self.client._complete(self, ex)
        except ProtocolError as exc:
            self.client._fail(ex, f"protocol error: {exc}", connection_failure=False)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        client = self.client
        client._forget(self)
        ex = self.ex
        if ex is None or ex.finished:
            return
        self.ex = None
        if ex.state == CLOSE and exc is None:
            ex.state = DONE
            client._complete(self, ex)
            return
        if not ex.reads:
            reason = (
                f"connection reset before any response byte ({exc})"
                if exc
                else ("connection closed before any response byte")
            )
            client._fail(ex, reason, connection_failure=True)
        else:
            how = f"reset ({exc})" if exc else "closed"
            client._fail(ex, f"connection {how} mid-response after {ex.bytes_received()} bytes", False)

    def _drop(self) -> None:
        self.closed = True
        self.client._forget(self)
        if self.transport is not None:
            self.transport.abort()


class HttpClient:
    """Streams requests to one server and reports each one, finished or failed, through ``on_done``.

    ``submit`` never blocks: it writes the request on an idle keep-alive connection, or opens a new
    connection in a task. ``on_done(result, connection_failure)`` is called synchronously on the event loop,
    exactly once per submitted request, after its connection was returned to the pool (so ``on_done`` may
    submit the next request on it).
    """

    def __init__(
        self,
        base_url: str,
        on_done: DoneCallback,
        timeout_s: float = 600.0,
        headers: Mapping[str, str] | None = None,
        ssl_context: _ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be http://host[:port][/prefix] or https://...; got {base_url!r}")
        self.loop = asyncio.get_running_loop()
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl: _ssl.SSLContext | None = None
        if parts.scheme == "https":
            self.ssl = ssl_context or _ssl.create_default_context()
        self.prefix = parts.path.rstrip("/")
        self.timeout_s = timeout_s
        self.on_done = on_done
        host_header = self.host if parts.port is None else f"{self.host}:{self.port}"
        if ":" in self.host and not host_header.startswith("["):  # IPv6 literal
            host_header = f"[{self.host}]" if parts.port is None else f"[{self.host}]:{self.port}"
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self._head_tail = (
            f"Host: {host_header}\r\nUser-Agent: capbench\r\nAccept: text/event-stream, application/json\r\n"
            f"Content-Type: application/json\r\n{extra}"
        ).encode("latin-1")
        self.idle: list[Connection] = []
        self.active: set[Connection] = set()
        self.connecting: set[asyncio.Task[None]] = set()
        self.pending: set[Exchange] = set()  # submitted, not yet on a connection
        self.in_flight = 0
        self.closed = False

    # -- submission -----------------------------------------------------------------------------------------

    def submit(self, spec: HttpRequestSpec, t_submit_ns: int | None = None, t_scheduled_ns: int | None = None) -> None:
        """Send ``spec`` now (``t_submit_ns`` defaults to the current time).

        Raises (before anything is sent or counted) when the client is closed or the request cannot be
        encoded (an ``id`` or ``path`` that is not Latin-1).
        """
        if self.closed:
            raise RuntimeError("HttpClient is closed")
        body = spec.body
        head = (
            f"POST {self.prefix}{spec.path} HTTP/1.1\r\nContent-Length: {len(body)}\r\nX-Request-Id: {spec.id}\r\n"
        ).encode("latin-1")
        ex = Exchange(spec, now_ns() if t_submit_ns is None else t_submit_ns, t_scheduled_ns)
        ex.request = head + self._head_tail + b"\r\n" + body
        self.in_flight += 1
        loop = self.loop
        ex.timer = loop.call_at(loop.time() + self.timeout_s, self._on_timeout, ex)
        idle = self.idle
        while idle:
            conn = idle.pop()
            if not conn.closed and conn.transport is not None and not conn.transport.is_closing():
                ex.reused = True
                self._send(conn, ex)
                return
        self.pending.add(ex)
        task = loop.create_task(self._connect(ex))
        self.connecting.add(task)
        task.add_done_callback(self.connecting.discard)

    async def _connect(self, ex: Exchange) -> None:
        conn = Connection(self)
        try:
            await self.loop.create_connection(lambda: conn, self.host, self.port, ssl=self.ssl)
        except ConnectionRefusedError:
            self.pending.discard(ex)
            if not ex.finished:
                self._fail(ex, "connection refused", connection_failure=True)
            return
        except OSError as exc:
            self.pending.discard(ex)
            if not ex.finished:
                self._fail(ex, f"connection failed: {exc}", connection_failure=True)
            return
        self.pending.discard(ex)
        if ex.finished or self.closed:  # timed out (or closed) while connecting: keep the connection for later
            if self.closed:
                conn._drop()
            else:
                self.idle.append(conn)
            return
        self._send(conn, ex)

    def _send(self, conn: Connection, ex: Exchange) -> None:
        conn.ex = ex
        conn.uses += 1
        ex.conn = conn
        self.active.add(conn)
        assert conn.transport is not None
        request, ex.request = ex.request, b""
        conn.transport.write(request)
        ex.t_sent_ns = now_ns()

    # -- completion -----------------------------------------------------------------------------------------

    def _release(self, conn: Connection | None, reusable: bool) -> None:
        if conn is None:
            return
        conn.ex = None
        self.active.discard(conn)
        if reusable and not conn.closed and not self.closed:
            self.idle.append(conn)
        elif not conn.closed:
            conn._drop()

    def _complete(self, conn: Connection, ex: Exchange) -> None:
        """The response of ``ex`` is complete: free the connection, then account and report it."""
        ex.finished = True
        if ex.timer is not None:
            ex.timer.cancel()
        self._release(conn, ex.keep_alive and not ex.leftover)
        t_done = ex.reads[-1][0] if ex.reads else now_ns()
        self._report(ex, t_done, None, False)

    def _fail(self, ex: Exchange, error: str, connection_failure: bool) -> None:
        if ex.finished:
            return
        ex.finished = True
        if ex.timer is not None:
            ex.timer.cancel()
        self._release(ex.conn, False)
        self._report(ex, now_ns(), error, connection_failure)

    def _on_timeout(self, ex: Exchange) -> None:
        self._fail(ex, f"timeout after {self.timeout_s:g} s", connection_failure=False)

    def _forget(self, conn: Connection) -> None:
        self.active.discard(conn)
        with contextlib.suppress(ValueError):
            self.idle.remove(conn)

    def _report(self, ex: Exchange, t_done: int, error: str | None, connection_failure: bool) -> None:
        self.in_flight -= 1
        acc: StreamAccount | None = None
        status = ex.status
        try:
            if status is not None:
                pieces = ex.body_pieces()
                if 200 <= status < 300:
                    if "text/event-stream" in ex.content_type or (
                        not ex.content_type and pieces and pieces[0][1].lstrip().startswith(b"data")
                    ):
                        acc = account_openai_columns(*split_event_columns(pieces))
                        if error is None and acc.error is None and not acc.done and acc.finish_reason is None:
                            # the framing ended cleanly (terminal chunk, Content-Length, or the server
                            # closing a close-delimited body, as a crashing server does) but the stream did
                            # not: a truncated generation, not a success
                            error = STREAM_INCOMPLETE
                        if error is None and acc.error is None and acc.chunks == 0:
                            error = STREAM_EMPTY
                    elif pieces and ex.state == DONE:
                        acc = account_openai_json(b"".join([p for _, p in pieces]))
                    if acc is not None and acc.error is not None and error is None:
                        error = acc.error
                elif error is None:
                    message = short_error_body(b"".join([p for _, p in pieces]))
                    error = f"HTTP {status}: {message}" if message else f"HTTP {status}"
        except Exception as exc:  # a bug here must not lose the request (the load would wait for it forever)
            acc = None
            error = error or f"internal error while accounting the response: {type(exc).__name__}: {exc}"
        reads = ex.reads
        times = acc.token_times_ns if acc is not None else []
        result = RequestResult(
            id=ex.spec.id,
            warmup=ex.spec.warmup,
            t_submit_ns=ex.t_submit_ns,
            t_first_token_ns=times[0] if times else None,
            t_done_ns=t_done,
            token_times_ns=times,
            output_text=acc.output_text if acc is not None else "",
            finish_reason=acc.finish_reason if acc is not None else None,
            usage=acc.usage if acc is not None else None,
            http_status=status,
            error=error,
            chunks=acc.chunks if acc is not None else 0,
            t_scheduled_ns=ex.t_scheduled_ns,
            t_sent_ns=ex.t_sent_ns,
            t_first_byte_ns=reads[0][0] if reads else None,
            reasoning_text=acc.reasoning_text if acc is not None else "",
            connection_reused=ex.reused if ex.t_sent_ns is not None else None,
            stream_done=acc.done if acc is not None else False,
            logprobs=acc.logprobs if acc is not None else None,
        )
        ex.reads = []  # let the raw bytes go
        self.on_done(result, connection_failure)

    # -- shutdown -------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Abort every connection and pending connect; requests still in flight are not reported."""
        self.closed = True
        for task in list(self.connecting):
            task.cancel()
        for ex in list(self.pending):
            ex.finished = True
            if ex.timer is not None:
                ex.timer.cancel()
        for conn in [*self.idle, *self.active]:
            if conn.ex is not None:
                conn.ex.finished = True
                if conn.ex.timer is not None:
                    conn.ex.timer.cancel()
                conn.ex = None
            if conn.transport is not None:
                conn.transport.abort()
        self.idle.clear()
        self.active.clear()
        self.pending.clear()


def describe_loop(loop: asyncio.AbstractEventLoop | None = None) -> str:
    """``"uvloop"`` or ``"asyncio"`` (the module of the running loop's class)."""
    loop = loop or asyncio.get_running_loop()
    module = type(loop).__module__.split(".")[0]
    return "uvloop" if module == "uvloop" else "asyncio"
