"""One response being generated: its chunks, when each is due, and how it hangs, closes or ends."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from orjson import dumps

from capbench.clock import now_ns
from capbench.testing.mock_server.settings import SentRecord
from capbench.testing.mock_server.wire import DONE_CHUNK, LAST_CHUNK, STREAM_HEAD, chunk, json_response

if TYPE_CHECKING:
    from capbench.testing.mock_server.connection import Connection
    from capbench.testing.mock_server.server import MockServer


class Stream:
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
        "next_ns",
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
        conn: Connection,
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
        self.next_ns = self.t_first_ns  # when token ``i`` is due
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
        return chunk(self.prefix + body)

    def _role_chunk(self) -> bytes:
        role = b'{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}\n\n'
        return chunk(self.prefix + role)

    def start(self) -> None:
        if self.stream:
            zero_itl = not self.itl_ns and not self.server.settings.itl_per_stream_s
            if self.server.settings.coalesce and self.t_first_ns <= now_ns() and zero_itl:
                self._step(head=STREAM_HEAD)  # zero delays, coalescing: headers and the whole stream in one write
            else:
                self.rec.t_headers_ns = self.server.write(self.conn, STREAM_HEAD)
                self._step()
        elif self.hang_after is None:
            self._arm(self.t_first_ns + self.server.itl_ns(self.itl_ns) * (self.n - 1))
        # else: a non-streamed request asked to hang: never answer

    def _arm(self, due_ns: int) -> None:
        loop = self.server.loop
        assert loop is not None
        self.timer = loop.call_at(loop.time() + (due_ns - now_ns()) / 1e9, self.fire)

    def fire(self) -> None:
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
        if i < stop_at and self.next_ns <= now_ns():
            if i == 0 and self.chat:
                server.write(conn, self._role_chunk())
            t = server.write(conn, self._token_chunk(i))
            if t is not None and server.settings.record:
                rec.token_sent_ns.append(t)
            i += 1
            self.i = i
            self.next_ns += server.itl_ns(self.itl_ns)
        if i == self.n:
            if self.include_usage:
                server.write(conn, chunk(self.prefix + b"]," + self.usage + b"}\n\n"))
            server.write(conn, DONE_CHUNK)
            rec.t_end_ns = server.write(conn, LAST_CHUNK)
            conn.response_done(self)
        elif i == stop_at:
            if self.close_after is not None and i == self.close_after:
                conn.abort()
            # else hang: send nothing more, keep the connection open until the client goes away
        else:
            due = self.next_ns
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
        itl = self.itl_ns
        stop_at = self._stop_at()
        while i < stop_at and self.next_ns <= now:
            if i == 0 and self.chat:
                parts.append(self._role_chunk())
            parts.append(self._token_chunk(i))
            i += 1
            self.next_ns += server.itl_ns(itl)
        self.i = i
        ended = i == n
        if ended:
            if self.include_usage:
                parts.append(chunk(self.prefix + b"]," + self.usage + b"}\n\n"))
            parts += [DONE_CHUNK, LAST_CHUNK]
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
            self._arm(self.next_ns)

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
        body = dumps(
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
        self.rec.t_end_ns = self.server.write(self.conn, json_response(200, body, self.conn.keep_alive))
        self.conn.response_done(self)

    def cancel(self) -> None:
        self.cancelled = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
