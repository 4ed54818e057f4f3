"""What the mock server does (:class:`MockSettings`), what it recorded per request (:class:`SentRecord`), and
the synthetic text it streams (output token ``i`` is ``"tok<i> "``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class MockSettings:
    """Behavior of the mock server (see the module docstring)."""

    ttft_s: float = 0.0
    itl_s: float = 0.0
    output_tokens: int = 64
    honor_max_tokens: bool = True
    fail_rate: float = 0.0
    hang_rate: float = 0.0
    seed: int = 0
    model: str = "capbench-mock"
    record: bool = True
    record_limit: int = 100_000  # send records kept: the most recent; older ones are dropped and counted
    coalesce: bool = False
    send_usage: bool = True  # False: never report usage (a server without it; tests token-count fallbacks)
    ttft_per_stream_s: float = 0.0  # load model: TTFT grows by this per stream in flight
    itl_per_stream_s: float = 0.0  # load model: each inter-token delay grows by this per stream in flight
    ttft_jitter_s: float = 0.0  # noise: a seeded uniform [0, ttft_jitter_s) extra TTFT per request

    def __post_init__(self) -> None:
        delays = (self.ttft_s, self.itl_s, self.ttft_per_stream_s, self.itl_per_stream_s, self.ttft_jitter_s)
        if any(not d >= 0 for d in delays):
            raise ValueError("ttft_s, itl_s, ttft_per_stream_s, itl_per_stream_s and ttft_jitter_s must be >= 0")
        if self.output_tokens < 1:
            raise ValueError("output_tokens must be >= 1")
        if self.record_limit < 1:
            raise ValueError("record_limit must be >= 1")
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


def iter_token_texts(n: int) -> Iterator[str]:
    """The synthetic output the server streams for ``n`` tokens: ``tok0 ``, ``tok1 ``, ..."""
    for i in range(n):
        yield f"tok{i} "


def expected_text(n: int) -> str:
    return "".join(iter_token_texts(n))
