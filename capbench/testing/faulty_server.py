"""A small OpenAI-compatible server that answers with one chosen fault, for capbench's reliability tests.

    python -m capbench.testing.faulty_server --fault absurd_usage [--fault-every 1] [--max-model-len N] [--port 0]

It prints its URL (``http://127.0.0.1:PORT``) as the first line of stdout and serves until SIGTERM/SIGINT.
``GET /v1/models`` lists one model (``faulty``, with ``max_model_len`` when given), ``GET /health`` answers 200,
``POST /v1/completions`` and ``/v1/chat/completions`` answer a whole streamed body at once (SSE events with a
``Content-Length``). Request ``k`` (0-based, in arrival order) gets the fault when ``k % fault_every == 0``, else
a correct stream: :data:`TOKENS` text tokens, ``finish_reason: "length"``, a true ``usage``.

Faults (:data:`FAULTS`), one per class of malformed response a real server has been seen to send:

- ``none``: every response correct (the control);
- ``done_only``: the stream holds only ``data: [DONE]``;
- ``negative_usage``, ``absurd_usage`` (10^15 tokens), ``string_usage`` (``"3"``), ``bool_usage`` (``true``),
  ``float_usage`` (``3.5``): impossible ``usage`` token counts with a correct stream;
- ``usage_over_max_tokens``: streams and reports ``max_tokens + 5`` tokens;
- ``usage_over_streamed``: streams 2 one-byte tokens and reports 500;
- ``malformed_chunk``: an event whose data is not JSON;
- ``no_finish``: text chunks, then the body ends without ``finish_reason`` or ``[DONE]``;
- ``http_500``: HTTP 500 with an OpenAI error body.

Standard library only (:mod:`http.server` in a thread); not built for speed (the mock server is).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULTS: tuple[str, ...] = (
    "none",
    "done_only",
    "negative_usage",
    "absurd_usage",
    "string_usage",
    "bool_usage",
    "float_usage",
    "usage_over_max_tokens",
    "usage_over_streamed",
    "malformed_chunk",
    "no_finish",
    "http_500",
)
TOKENS = 4
MODEL = "faulty"


def _event(obj: Any) -> bytes:
    return b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n"


def _chunk(text: str, chat: bool, finish: str | None = None) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
    if chat:
        choice["delta"] = {"content": text}
    else:
        choice["text"] = text
    return {"id": "x", "object": "chat.completion.chunk" if chat else "text_completion", "choices": [choice]}


def stream_body(fault: str, chat: bool, max_tokens: int, prompt_tokens: int) -> tuple[int, bytes]:
    """``(HTTP status, body)`` of one generation response with ``fault`` (module docstring)."""
    if fault == "http_500":
        return 500, json.dumps({"error": {"message": "injected failure", "type": "server_error"}}).encode()
    if fault == "done_only":
        return 200, _event(b"[DONE]")
    tokens = max_tokens + 5 if fault == "usage_over_max_tokens" else min(TOKENS, max_tokens)
    if fault == "usage_over_streamed":
        tokens = 2
    events = [_event(_chunk(f"t{i} " if fault != "usage_over_streamed" else "a", chat)) for i in range(tokens)]
    if fault == "malformed_chunk":
        events.insert(1, b"data: {this is not json\n\n")
    if fault == "no_finish":
        return 200, b"".join(events)
    events.append(_event(_chunk("", chat, finish="length")))
    completion: Any = {
        "negative_usage": -3,
        "absurd_usage": 10**15,
        "string_usage": str(tokens),
        "bool_usage": True,
        "float_usage": tokens + 0.5,
        "usage_over_streamed": 500,
    }.get(fault, tokens)
    prompt: Any = 10**15 if fault == "absurd_usage" else prompt_tokens
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": None}
    events.append(_event({"id": "x", "choices": [], "usage": usage}))
    events.append(_event(b"[DONE]"))
    return 200, b"".join(events)


class FaultyServer(ThreadingHTTPServer):
    """The server: its fault, how often, the model's stated context, and a request counter."""

    daemon_threads = True

    def __init__(self, port: int, fault: str, fault_every: int = 1, max_model_len: int | None = None) -> None:
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
        super().__init__(("127.0.0.1", port), _Handler)
        self.fault = fault
        self.fault_every = max(1, fault_every)
        self.max_model_len = max_model_len
        self.count = 0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def next_fault(self) -> str:
        with self.lock:
            k = self.count
            self.count += 1
        return self.fault if k % self.fault_every == 0 else "none"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FaultyServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send(200, b"", "text/plain")
        elif self.path == "/v1/models":
            entry: dict[str, Any] = {"id": MODEL, "object": "model"}
            if self.server.max_model_len is not None:
                entry["max_model_len"] = self.server.max_model_len
            self._send(200, json.dumps({"object": "list", "data": [entry]}).encode(), "application/json")
        else:
            self._send(404, b'{"error": {"message": "not found"}}', "application/json")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        request = json.loads(self.rfile.read(length) or b"{}")
        if self.path not in ("/v1/completions", "/v1/chat/completions"):
            self._send(404, b'{"error": {"message": "not found"}}', "application/json")
            return
        chat = self.path.endswith("chat/completions")
        prompt = (
            " ".join(str(m.get("content", "")) for m in request.get("messages", []))
            if chat
            else str(request.get("prompt", ""))
        )
        max_tokens = int(request.get("max_tokens") or 16)
        status, body = stream_body(self.server.next_fault(), chat, max_tokens, len(prompt.split()))
        content_type = "text/event-stream" if status == 200 else "application/json"
        self._send(status, body, content_type)


def build_parser() -> argparse.ArgumentParser:
    """The command's parser (also rendered into docs/cli.md by scripts/cli_reference.py)."""
    parser = argparse.ArgumentParser(
        prog="python -m capbench.testing.faulty_server",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--fault",
        choices=FAULTS,
        required=True,
        help="the fault to answer with (the module docstring describes each)",
    )
    parser.add_argument("--fault-every", type=int, default=1, help="fault request k when k %% N == 0 (default 1)")
    parser.add_argument("--max-model-len", type=int, default=None, help="the context /v1/models states")
    parser.add_argument("--port", type=int, default=0, help="0 = any free port (default)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    server = FaultyServer(args.port, args.fault, args.fault_every, args.max_model_len)
    print(server.url, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
