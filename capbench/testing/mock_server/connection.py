"""One client connection of the mock server: parses HTTP/1.1 requests with Content-Length bodies and serves
them one at a time (keep-alive)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from capbench.clock import now_ns
from capbench.testing.mock_server.wire import MAX_REQUEST_BYTES

if TYPE_CHECKING:
    from capbench.testing.mock_server.server import MockServer
    from capbench.testing.mock_server.stream import Stream


class Connection(asyncio.Protocol):
    """One client connection: parses requests (HTTP/1.1, Content-Length bodies), one response at a time."""

    def __init__(self, server: MockServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.busy: Stream | None = None
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
            if length > MAX_REQUEST_BYTES or "chunked" in headers.get("transfer-encoding", ""):
                self.abort()  # this server reads Content-Length bodies only
                return
            if len(buf) < end + 4 + length:
                return
            body = buf[end + 4 : end + 4 + length]
            self.buf = buf[end + 4 + length :]
            connection = headers.get("connection", "").lower()
            self.keep_alive = ("keep-alive" in connection) if version == "HTTP/1.0" else ("close" not in connection)
            self.server.handle(self, method, target, headers, body, now_ns())

    def response_done(self, stream: Stream | None = None) -> None:
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
