"""HTTP/1.1 and server-sent-event framing of the mock server's responses (chunked transfer encoding, one SSE
event per HTTP chunk), its routes, and the prompt-token count it reports (whitespace-separated words)."""

from __future__ import annotations

from typing import Any

from orjson import dumps

REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error"}
STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)
DONE_CHUNK = b"e\r\ndata: [DONE]\n\n\r\n"
LAST_CHUNK = b"0\r\n\r\n"
MAX_REQUEST_BYTES = 16 * 1024 * 1024
ROUTES = {
    "/v1/completions": "POST",
    "/v1/chat/completions": "POST",
    "/v1/models": "GET",
    "/health": "GET",
    "/_capbench/sent": "GET",
    "/_capbench/reset": "POST",
}


def count_words(value: Any) -> int:
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):
        if value and all(isinstance(v, int) for v in value):
            return len(value)
        return sum(count_words(v) for v in value)
    if isinstance(value, dict):
        if value.get("type") == "text" or "text" in value:
            return count_words(value.get("text", ""))
        return count_words(value.get("content", ""))
    return 0


def chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def json_response(status: int, body: bytes, keep_alive: bool = True) -> bytes:
    reason = REASONS.get(status, "Error")
    conn = b"" if keep_alive else b"connection: close\r\n"
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n"
        % (status, reason.encode(), len(body), conn)
        + body
    )


def error_body(status: int, message: str) -> bytes:
    kind = "InternalServerError" if status >= 500 else "BadRequestError"
    return dumps({"error": {"message": message, "type": kind, "param": None, "code": status}})
