"""The mock server on the running event loop: routes, failure injection, the send clock (see the package
docstring for what "sent" means)."""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from typing import Any

from orjson import dumps, loads

from capbench.clock import now_ns
from capbench.testing.mock_server.connection import Connection
from capbench.testing.mock_server.settings import MockSettings, SentRecord
from capbench.testing.mock_server.stream import Stream
from capbench.testing.mock_server.wire import ROUTES, count_words, error_body, json_response


class MockServer:
    """The mock server on the running event loop: ``await start()`` (or ``async with``), then ``url``."""

    def __init__(self, settings: MockSettings | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.settings = settings or MockSettings()
        self.host = host
        self.port = port
        self.loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self.connections: set[Connection] = set()
        self.streams: set[Stream] = set()
        # bounded: a soak at thousands of requests/s would otherwise grow the server by ~3 kB a request
        self.records: deque[SentRecord] = deque(maxlen=self.settings.record_limit)
        self.records_dropped = 0
        self.requests = 0
        self.buffered_writes = 0
        self.unsent_writes = 0
        self.last_write_ns = 0  # the latest write that was sent
        self._ids = 0
        self._rng = random.Random(self.settings.seed)
        self._jitter = random.Random(f"{self.settings.seed}:jitter")
        self.created = b"%d" % int(time.time())
        self.model_json = dumps(self.settings.model)
        self._token_text: list[bytes] = []
        self._ready: list[Stream] = []

    # -- lifecycle ------------------------------------------------------------------------------------------

    async def start(self) -> str:
        self.loop = asyncio.get_running_loop()
        self._server = await self.loop.create_server(lambda: Connection(self), self.host, self.port)
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
            "records_dropped": self.records_dropped,
        }

    def take_records(self) -> list[SentRecord]:
        """The records kept so far (the most recent ``record_limit``), forgetting them."""
        out = list(self.records)
        self.records.clear()
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

    def itl_ns(self, base_ns: int) -> int:
        """The next inter-token delay of a stream whose own delay is ``base_ns``: the load model adds
        ``itl_per_stream_s`` per stream in flight now."""
        return base_ns + round(self.settings.itl_per_stream_s * 1e9 * len(self.streams))

    def make_ready(self, stream: Stream) -> None:
        """Run ``stream``'s next step on the next loop iteration, with every other stream that is ready: one
        callback per iteration for all of them (like an engine step), not one per stream."""
        self._ready.append(stream)
        if len(self._ready) == 1:
            assert self.loop is not None
            self.loop.call_soon(self._run_ready)

    def _run_ready(self) -> None:
        ready, self._ready = self._ready, []
        for stream in ready:
            stream.fire()

    def write(self, conn: Connection, data: bytes) -> int | None:
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
        self, conn: Connection, method: str, target: str, headers: dict[str, str], body: bytes, t_ns: int
    ) -> None:
        path = target.split("?", 1)[0]
        allowed = ROUTES.get(path)
        if allowed is None:
            self._reply(conn, 404, error_body(404, f"no route for {method} {path}"))
        elif method != allowed:
            self._reply(conn, 405, error_body(405, f"{method} not allowed on {path} (use {allowed})"))
        elif path in ("/v1/completions", "/v1/chat/completions"):
            self._generate(conn, path, headers, body, t_ns)
        elif path == "/health":
            self._reply(conn, 200, b"")
        elif path == "/v1/models":
            model = {"id": self.settings.model, "object": "model", "created": int(self.created), "owned_by": "capbench"}
            self._reply(conn, 200, dumps({"object": "list", "data": [model]}))
        elif path == "/_capbench/sent":
            records = [r.as_dict() for r in self.records]
            self._reply(conn, 200, dumps({"records": records, "stats": self.stats()}))
        else:  # /_capbench/reset
            self.records.clear()
            self.records_dropped = 0
            self._reply(conn, 200, b"{}")

    def _reply(self, conn: Connection, status: int, body: bytes) -> int | None:
        t = self.write(conn, json_response(status, body, conn.keep_alive))
        conn.response_done()
        return t

    def _generate(self, conn: Connection, path: str, headers: dict[str, str], body: bytes, t_ns: int) -> None:
        settings = self.settings
        self.requests += 1
        try:
            req = loads(body)
            if not isinstance(req, dict):
                raise ValueError("the body is not a JSON object")
        except ValueError as exc:
            self._reply(conn, 400, error_body(400, f"invalid JSON body: {exc}"))
            return
        chat = path == "/v1/chat/completions"
        mock = req.get("capbench_mock") or {}
        rid = headers.get("x-request-id") or f"req-{self.requests}"
        prompt_tokens = count_words(req.get("messages") if chat else req.get("prompt"))
        stream = bool(req.get("stream"))
        fail = settings.fail_rate > 0 and self._rng.random() < settings.fail_rate
        hang = settings.hang_rate > 0 and self._rng.random() < settings.hang_rate
        status = int(mock.get("status", 500 if fail else 200))
        rec = SentRecord(rid, path, stream, status, t_ns, prompt_tokens=prompt_tokens)
        if settings.record:
            if len(self.records) == self.records.maxlen:
                self.records_dropped += 1
            self.records.append(rec)
        if status != 200:
            rec.t_end_ns = self._reply(conn, status, error_body(status, f"injected failure (HTTP {status})"))
            return
        n = settings.output_tokens
        if settings.honor_max_tokens:
            asked = req.get("max_completion_tokens") if chat else None
            asked = asked if asked is not None else req.get("max_tokens")
            if isinstance(asked, int) and asked > 0:
                n = asked
        n = int(mock.get("output_tokens", n))
        rec.output_tokens = n
        # the load model counts the streams in flight now, this one included
        in_flight = len(self.streams) + 1
        ttft_s = float(mock.get("ttft_s", settings.ttft_s)) + settings.ttft_per_stream_s * in_flight
        if settings.ttft_jitter_s > 0:
            ttft_s += self._jitter.random() * settings.ttft_jitter_s
        itl_s = float(mock.get("itl_s", settings.itl_s))
        hang_after = 0 if (hang or mock.get("hang")) else mock.get("hang_after_tokens")
        options = req.get("stream_options") or {}
        s = Stream(
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
