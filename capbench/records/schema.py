"""File names, schema version and record shapes of a run directory.

The record shapes are documented as ``TypedDict``s; files hold plain JSON. Fields may be added freely; the
meaning of an existing field never changes (bump :data:`SCHEMA_VERSION` instead and keep reading old runs).
"""

from enum import StrEnum
from typing import Any, TypedDict

SCHEMA_VERSION = 3
"""Version of the run-directory format written by this capbench. 2: a request's token times are stored compactly
(``token_events``, ``token_t0_ns``, ``token_gaps_ns``, ``token_gap_max_ns``; :mod:`capbench.records.token_times`)
instead of the ``token_times_ns`` list of version 1. 3: a pass record's ``reqs``, ``experts_active`` and
``expert_tokens`` lists are stored as base64 varint strings (``reqs_b64``, ``experts_active_b64``,
``expert_tokens_b64``; :mod:`capbench.records.pass_codec`)."""

READABLE_SCHEMA_VERSIONS = frozenset({1, 2, 3})
"""Versions :func:`capbench.records.read_run` understands."""

MANIFEST_FILE = "run.json"
REQUESTS_FILE = "requests.jsonl"
PASSES_FILE = "passes.jsonl"
POWER_FILE = "power.jsonl"
SERVER_METRICS_FILE = "server_metrics.jsonl"
SUMMARY_FILE = "summary.json"
CAPACITY_FILE = "capacity.json"
"""A capacity search's result, in the search's directory (``capbench capacity``; docs/capacity.md)."""


class RunStatus(StrEnum):
    """Lifecycle of a run: ``running`` while it goes, then exactly one of the other three."""

    RUNNING = "running"
    COMPLETE = "complete"
    PARTIAL = "partial"  # interrupted (Ctrl-C, a dead server): completed requests are kept
    FAILED = "failed"  # nothing usable was measured


class RequestRecord(TypedDict, total=False):
    """One line of ``requests.jsonl``, appended when the request ends (successfully or not); docs/records.md.

    Every runner writes :data:`REQUEST_REQUIRED`; the other keys belong to some runners (server runners: the
    HTTP fields; hf: the sampled token ids; accuracy runs: ``sample_id``, later ``score`` and ``answer``; multi-turn
    runs: ``session_id`` and ``turn``, 0-based; log-likelihood tasks: ``request_type`` and the scored continuation's
    ``continuation_tokens``, ``continuation_logprob`` (nats) and ``is_greedy``).
    Build one with :func:`request_record`.
    """

    id: str
    warmup: bool
    prompt_id: str | None
    prompt_tokens: int | None
    output_tokens: int | None
    t_submit_ns: int
    t_first_token_ns: int | None
    t_done_ns: int
    token_times_ns: list[int]
    error: str | None
    finish_reason: str | None
    output_text: str
    output_token_ids: list[int]
    t_scheduled_ns: int | None
    t_sent_ns: int | None
    t_first_byte_ns: int | None
    chunks: int
    stream_done: bool
    http_status: int | None
    reasoning_text: str | None
    sample_id: str | None
    session_id: str | None
    turn: int | None
    score: float | None
    answer: str | None
    request_type: str
    continuation_tokens: int
    continuation_logprob: float
    is_greedy: bool


REQUEST_REQUIRED: frozenset[str] = frozenset(
    {
        "id",
        "warmup",
        "prompt_tokens",
        "output_tokens",
        "t_submit_ns",
        "t_first_token_ns",
        "t_done_ns",
        "token_times_ns",
        "error",
        "finish_reason",
        "output_text",
    }
)
"""The keys every request record has, whichever runner wrote it."""


def request_record(**fields: Any) -> RequestRecord:
    """A ``requests.jsonl`` record: every :data:`REQUEST_REQUIRED` key must be given, no key outside
    :class:`RequestRecord` may be (a typo is a ``TypeError`` here, not a silently missing column later)."""
    return _checked(fields, RequestRecord, REQUEST_REQUIRED, "request")  # type: ignore[return-value]


class PassRecord(TypedDict, total=False):
    """One engine forward step, as a runner hands it over (docs/records.md); the file stores its three lists
    compactly (schema 3: :func:`capbench.records.pass_codec.compact_pass`).

    ``reqs`` holds ``[n_i, c_i]`` per request in the step: tokens computed now and tokens already in that
    request's KV cache. ``experts_active`` holds, per MoE layer in layer order, the number of distinct routed
    experts that received at least one token in this step (``None`` when not measured). ``expert_tokens`` holds,
    per MoE layer, the number of tokens routed to each expert. vLLM's steps add ``step``, ``dp_rank``,
    ``sampled_ids`` and ``routing_error``. Build one with :func:`pass_record`.
    """

    t_start_ns: int
    t_end_ns: int
    latency_s: float
    reqs: list[list[int]]
    req_ids: list[str]
    sampled: int
    sampled_ids: list[str]
    experts_active: list[int] | None
    expert_tokens: list[list[int]] | None
    routing_error: str | None
    warmup: bool
    step: int
    dp_rank: int


PASS_REQUIRED: frozenset[str] = frozenset(
    {"t_start_ns", "t_end_ns", "reqs", "req_ids", "sampled", "experts_active", "expert_tokens", "warmup"}
)
"""The keys every pass record a runner writes has (a hand-written record may give ``latency_s`` instead of the
two timestamps: the metrics accept it)."""


def pass_record(**fields: Any) -> PassRecord:
    """A ``passes.jsonl`` record, checked like :func:`request_record`."""
    return _checked(fields, PassRecord, PASS_REQUIRED, "pass")  # type: ignore[return-value]


def _checked(fields: dict[str, Any], shape: Any, required: frozenset[str], what: str) -> dict[str, Any]:
    known = shape.__annotations__
    unknown = sorted(set(fields) - set(known))
    missing = sorted(required - set(fields))
    if unknown or missing:
        problems = [f"unknown {unknown}" if unknown else "", f"missing {missing}" if missing else ""]
        raise TypeError(f"{what} record: {'; '.join(p for p in problems if p)}")
    return fields


class PowerRecord(TypedDict, total=False):
    """One line of ``power.jsonl``: a power sample of one GPU, and its energy counter when it has one."""

    t_ns: int
    gpu: int
    power_w: float
    energy_j: float | None


class ServerMetricsRecord(TypedDict):
    """One line of ``server_metrics.jsonl``: one scrape of the server's Prometheus ``/metrics`` endpoint.

    ``phase`` is ``start`` (measured phase begins), ``periodic`` or ``end``; ``text`` is the exposition text
    when ``ok``, else ``None`` and ``error`` says why (``http_status`` when the server answered).
    """

    t_ns: int
    phase: str
    ok: bool
    http_status: int | None
    error: str | None
    text: str | None
