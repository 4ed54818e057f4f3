"""HTTP/1.1 response framing for the load generator's client: one request and its response
(:class:`Exchange`), parsed incrementally as reads arrive.

The header block is parsed once it is complete (interim 1xx responses skipped). The body is delimited by
chunked transfer encoding (the chunk framing is walked incrementally, only when a read could end the message),
by ``Content-Length`` (bytes counted), or by the server closing the connection. After the response, the
framing is undone into ``(t_ns, bytes)`` body pieces, each carrying the time of the read it came in.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import TYPE_CHECKING

from orjson import loads

from capbench.loadgen.types import HttpRequestSpec

if TYPE_CHECKING:
    from capbench.loadgen.http import Connection


# Exchange states (also the body framing, ``Exchange.mode``).
HEADERS = 0
CHUNKED = 1
LENGTH = 2
CLOSE = 3  # body delimited by the server closing the connection
DONE = 4

# Chunked walker states.
_W_SIZE = 0
_W_DATA = 1
_W_CRLF = 2
_W_TRAILER = 3
_W_DONE = 4

MAX_HEADER_BYTES = 65536
_REPEAT_16 = itertools.repeat(16)


class ProtocolError(Exception):
    """The server's response broke HTTP/1.1 framing."""


class Exchange:
    """One request and its response on one connection."""

    __slots__ = (
        "body_offset",
        "chunked_pieces",
        "conn",
        "content_type",
        "finished",
        "head_buf",
        "headers",
        "keep_alive",
        "leftover",
        "length",
        "mode",
        "reads",
        "remaining",
        "request",
        "reused",
        "spec",
        "state",
        "status",
        "t_scheduled_ns",
        "t_sent_ns",
        "t_submit_ns",
        "timer",
        "wk_line",
        "wk_off",
        "wk_read",
        "wk_remaining",
        "wk_state",
    )

    def __init__(self, spec: HttpRequestSpec, t_submit_ns: int, t_scheduled_ns: int | None) -> None:
        self.spec = spec
        self.t_submit_ns = t_submit_ns
        self.t_scheduled_ns = t_scheduled_ns
        self.t_sent_ns: int | None = None
        self.request = b""  # the request's bytes, built by HttpClient.submit
        self.reads: list[tuple[int, bytes]] = []
        self.state = HEADERS
        self.head_buf = b""
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.content_type = ""
        self.keep_alive = True
        self.body_offset = (0, 0)  # (read index, offset in that read) where the body starts
        self.remaining = 0
        self.length: int | None = None
        self.mode = HEADERS  # the body framing once the header block is in: CHUNKED, LENGTH or CLOSE
        self.leftover = False
        self.conn: Connection | None = None
        self.reused = False
        self.timer: asyncio.TimerHandle | None = None
        self.finished = False
        self.chunked_pieces: list[tuple[int, bytes]] = []
        self.wk_read = 0
        self.wk_off = 0
        self.wk_state = _W_SIZE
        self.wk_remaining = 0
        self.wk_line = b""

    # -- header block ---------------------------------------------------------------------------------------

    def parse_head(self) -> bool:
        """Consume the header block once it is complete; return True when the response is already complete."""
        reads = self.reads
        data = reads[-1][1]
        buf = self.head_buf + data if self.head_buf else data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEADER_BYTES:
                    raise ProtocolError(f"response header block exceeds {MAX_HEADER_BYTES} bytes")
                self.head_buf = buf
                return False
            head = buf[:end].decode("latin-1")
            rest = len(buf) - (end + 4)  # body bytes in this read
            lines = head.split("\r\n")
            status_line = lines[0]
            parts = status_line.split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/"):
                raise ProtocolError(f"bad status line {status_line[:100]!r}")
            try:
                status = int(parts[1])
            except ValueError:
                raise ProtocolError(f"bad status line {status_line[:100]!r}") from None
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if sep:
                    key = name.strip().lower()
                    value = value.strip()
                    headers[key] = f"{headers[key]}, {value}" if key in headers else value
            if 100 <= status < 200:  # interim response: the real one follows
                buf = buf[end + 4 :]
                continue
            break
        self.head_buf = b""
        self.status = status
        self.headers = headers
        self.content_type = headers.get("content-type", "").lower()
        connection = headers.get("connection", "").lower()
        if parts[0] == "HTTP/1.0":
            self.keep_alive = "keep-alive" in connection
        else:
            self.keep_alive = "close" not in connection
        index = len(reads) - 1
        self.body_offset = (index, len(data) - rest)
        if status in (204, 304):
            self.state = DONE
            self.leftover = rest > 0
            return True
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self.state = self.mode = CHUNKED
            self.wk_read, self.wk_off = self.body_offset
            if rest:
                return self.walk_chunked()
            return False
        length = headers.get("content-length")
        if length is not None:
            try:
                total = int(length.split(",")[0])
            except ValueError:
                raise ProtocolError(f"bad Content-Length {length!r}") from None
            self.state = self.mode = LENGTH
            self.length = total
            self.remaining = total - rest
            if self.remaining <= 0:
                self.leftover = self.remaining < 0
                self.state = DONE
                return True
            return False
        self.state = self.mode = CLOSE
        self.keep_alive = False
        return False

    # -- chunked framing ------------------------------------------------------------------------------------

    def walk_chunked(self) -> bool:
        """Walk the chunk framing of the reads not walked yet; return True once the terminal chunk is in.

        Collects the chunk payloads as ``(t_ns, bytes)`` pieces, at most one piece per chunk and read (the
        payloads a read carried, joined, when the read held whole chunks only).

        Fast path: a read that starts at a chunk boundary and holds only whole chunks whose payloads contain
        no CRLF is undone with one ``split(b"\\r\\n")`` and checked by comparing every size line with the
        length of the payload after it (C-level ``map``); anything else goes through the state machine.
        """
        reads = self.reads
        pieces = self.chunked_pieces
        i = self.wk_read
        pos = self.wk_off
        state = self.wk_state
        remaining = self.wk_remaining
        line = self.wk_line
        n_reads = len(reads)
        while i < n_reads:
            t, data = reads[i]
            n = len(data)
            # (a read of a few hundred bytes holds one or two chunks: the state machine is cheaper there)
            if n - pos > 512 and state == _W_SIZE and not line and data.endswith(b"\r\n"):
                parts = (data[pos:] if pos else data).split(b"\r\n")
                if len(parts) & 1:
                    payloads = parts[1:-1:2]
                    try:
                        sizes = list(map(int, parts[0:-1:2], _REPEAT_16))
                    except ValueError:
                        sizes = []
                    if sizes and sizes == list(map(len, payloads)):
                        last = len(sizes) - 1
                        if 0 not in sizes:
                            pieces.append((t, b"".join(payloads)))
                            i += 1
                            pos = 0
                            continue
                        if sizes.index(0) == last:  # the terminal chunk, no trailers, nothing after it
                            if last:
                                pieces.append((t, b"".join(payloads)))
                            state = _W_DONE
                            pos = n
                            break
            find = data.find
            while pos < n:
                if state == _W_SIZE:
                    j = find(b"\n", pos)
                    if j < 0:
                        line += data[pos:]
                        pos = n
                        break
                    size_line = line + data[pos:j] if line else data[pos:j]
                    line = b""
                    pos = j + 1
                    try:
                        size = int(size_line, 16)
                    except ValueError:
                        try:
                            size = int(size_line.split(b";", 1)[0], 16)
                        except ValueError:
                            raise ProtocolError(f"bad chunk size line {size_line[:40]!r}") from None
                    if size == 0:
                        state = _W_TRAILER
                        continue
                    end = pos + size
                    if end + 2 <= n and data[end : end + 2] == b"\r\n":  # whole chunk in this read
                        pieces.append((t, data[pos:end]))
                        pos = end + 2
                        continue
                    state = _W_DATA
                    remaining = size
                elif state == _W_DATA:
                    take = n - pos if n - pos < remaining else remaining
                    pieces.append((t, data if (pos == 0 and take == n) else data[pos : pos + take]))
                    pos += take
                    remaining -= take
                    if remaining == 0:
                        state = _W_CRLF
                elif state == _W_CRLF:
                    j = find(b"\n", pos)
                    if j < 0:
                        pos = n
                        break
                    pos = j + 1
                    state = _W_SIZE
                elif state == _W_TRAILER:
                    j = find(b"\n", pos)
                    if j < 0:
                        line += data[pos:]
                        pos = n
                        break
                    trailer = (line + data[pos:j]).strip()
                    line = b""
                    pos = j + 1
                    if not trailer:
                        state = _W_DONE
                else:  # _W_DONE with bytes after the message
                    self.leftover = True
                    break
            if state == _W_DONE:
                if pos < n:
                    self.leftover = True
                break
            i += 1
            pos = 0
        self.wk_read = i
        self.wk_off = pos
        self.wk_state = state
        self.wk_remaining = remaining
        self.wk_line = line
        if state == _W_DONE:
            self.state = DONE
            return True
        return False

    # -- after the response ---------------------------------------------------------------------------------

    def body_pieces(self) -> list[tuple[int, bytes]]:
        """The response body as ``(t_ns, bytes)`` pieces, framing removed (as much of it as arrived)."""
        if self.status is None:
            return []
        if self.mode == CHUNKED:
            if self.state != DONE:
                with contextlib.suppress(ProtocolError):
                    self.walk_chunked()
            return self.chunked_pieces
        index, offset = self.body_offset
        reads = self.reads
        pieces: list[tuple[int, bytes]] = []
        if index < len(reads):
            t, data = reads[index]
            if offset < len(data):
                pieces.append((t, data[offset:] if offset else data))
            pieces.extend(reads[index + 1 :])
        if self.length is None:
            return pieces
        total = self.length
        out: list[tuple[int, bytes]] = []
        for t, data in pieces:
            if total <= 0:
                break
            out.append((t, data[:total] if len(data) > total else data))
            total -= len(data)
        return out

    def bytes_received(self) -> int:
        return sum(len(data) for _, data in self.reads)


def short_error_body(body: bytes, limit: int = 200) -> str:
    """A short message from an error body: the OpenAI ``error.message``, a FastAPI ``detail``, or the text."""
    text = ""
    try:
        obj = loads(body)
    except ValueError:
        obj = None
    if isinstance(obj, dict):
        err = obj.get("error")
        if isinstance(err, dict) and err.get("message") is not None:
            text = str(err["message"])
        elif isinstance(err, str):
            text = err
        elif obj.get("message") is not None:
            text = str(obj["message"])
        elif obj.get("detail") is not None:
            text = str(obj["detail"])
    if not text:
        text = body.decode("utf-8", "replace").strip()
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."
