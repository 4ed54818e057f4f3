"""A tiny OpenAI-compatible streaming server for tests, demos and client benchmarks (standard library asyncio).

Run it::

    python -m capbench.testing.mock_server --port 0 --ttft-s 0.05 --itl-s 0.01 --output-tokens 64

It prints its URL (``http://127.0.0.1:PORT``) as the first line of stdout and serves until SIGINT/SIGTERM.

Endpoints: ``POST /v1/completions`` and ``POST /v1/chat/completions`` (streamed as server-sent events when
``"stream": true``, else one JSON body), ``GET /v1/models``, ``GET /health``, and for measurements
``GET /_capbench/sent`` (what the server sent and when, JSON) and ``POST /_capbench/reset`` (forget it). Only
the most recent ``record_limit`` requests are kept (``--record-limit``, default 100,000; ``records_dropped`` in
the ``stats`` counts the others), so a long soak does not grow the server; ``--no-record`` keeps none.

Generation is synthetic: output token ``i`` is the text ``"tok<i> "``; ``prompt_tokens`` is the number of
whitespace-separated words of the prompt (completions: the prompt string, or the list's length for token
ids; chat: the text of every message), so it is *not* the count a real tokenizer would give. The number of
output tokens is the request's ``max_tokens`` (``max_completion_tokens`` for chat) when present and
``honor_max_tokens`` is on, else ``output_tokens``. Every request finishes with ``finish_reason: "length"``.

Timing. The request counts as received when its last byte was read (``t_received_ns``). Response headers are
written at once; token ``i`` is due at ``t_received + ttft + i·itl`` (absolute times, so delays do not
drift). A load model (``ttft_per_stream_s``, ``itl_per_stream_s``; ``--ttft-per-stream-s``,
``--itl-per-stream-s``) makes latency grow with load: with ``N`` the streams the server has open at that moment
(those waiting for their first token included, the one concerned too), a request's TTFT is ``ttft_s +
ttft_per_stream_s·N`` at its arrival, and the delay after each token is ``itl_s + itl_per_stream_s·N`` when that
token is sent; in a closed loop of concurrency ``C`` in steady state ``N = C``, so TTFT = ``ttft_s +
ttft_per_stream_s·C`` and TPOT = ``itl_s + itl_per_stream_s·C`` (a capacity at an SLO in closed form).
``ttft_jitter_s`` adds a seeded uniform ``[0, ttft_jitter_s)`` to each TTFT (noise for repeat statistics).
By default every chunk is its own ``transport.write()``, and the streams that are due take turns on
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
a ``random.Random(seed)`` in arrival order. A request can also ask for a behavior in its JSON body with a
``"capbench_mock"`` object: ``status`` (respond with that HTTP status and an OpenAI error body), ``hang``
(headers, then nothing), ``hang_after_tokens`` / ``close_after_tokens`` (stop sending, or close the
connection, after that many tokens), ``ttft_s``, ``itl_s``, ``output_tokens`` (override the settings).

Modules: :mod:`.settings` (what the server does and what it recorded), :mod:`.wire` (HTTP/1.1 and SSE
framing), :mod:`.stream` (one response being generated), :mod:`.connection` (request parsing), :mod:`.server`
(the server on an event loop), :mod:`.process` (the server in a child process), :mod:`.cli` (the command line).
"""

from capbench.testing.mock_server.process import MockServerProcess, settings_to_args
from capbench.testing.mock_server.server import MockServer
from capbench.testing.mock_server.settings import MockSettings, SentRecord, expected_text, iter_token_texts

__all__ = [
    "MockServer",
    "MockServerProcess",
    "MockSettings",
    "SentRecord",
    "expected_text",
    "iter_token_texts",
    "settings_to_args",
]
