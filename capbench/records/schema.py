"""File names, schema version and record shapes of a run directory.

The record shapes are documented as ``TypedDict``s; files hold plain JSON. Fields may be added freely; the
meaning of an existing field never changes (bump :data:`SCHEMA_VERSION` instead and keep reading old runs).
"""

from enum import StrEnum
from typing import TypedDict

SCHEMA_VERSION = 1
"""Version of the run-directory format written by this capbench."""

READABLE_SCHEMA_VERSIONS = frozenset({1})
"""Versions :func:`capbench.records.read_run` understands."""

MANIFEST_FILE = "run.json"
REQUESTS_FILE = "requests.jsonl"
PASSES_FILE = "passes.jsonl"
POWER_FILE = "power.jsonl"
SERVER_METRICS_FILE = "server_metrics.jsonl"
SUMMARY_FILE = "summary.json"


class RunStatus(StrEnum):
    """Lifecycle of a run: ``running`` while it goes, then exactly one of the other three."""

    RUNNING = "running"
    COMPLETE = "complete"
    PARTIAL = "partial"  # interrupted (Ctrl-C, a dead server): completed requests are kept
    FAILED = "failed"  # nothing usable was measured


class RequestRecord(TypedDict, total=False):
    """One line of ``requests.jsonl``, appended when the request ends (successfully or not)."""

    id: str
    warmup: bool
    prompt_tokens: int
    output_tokens: int
    t_submit_ns: int
    t_first_token_ns: int | None
    t_done_ns: int
    token_times_ns: list[int]
    error: str | None
    finish_reason: str | None
    output_text: str
    sample_id: str | None
    score: float | None


class PassRecord(TypedDict, total=False):
    """One line of ``passes.jsonl``: one engine forward step.

    ``reqs`` holds ``[n_i, c_i]`` per request in the step: tokens computed now and tokens already in that
    request's KV cache. ``experts_active`` holds, per MoE layer in layer order, the number of distinct routed
    experts that received at least one token in this step (``None`` when not measured).
    ``expert_tokens`` holds, per MoE layer, the number of tokens routed to each expert.
    """

    t_start_ns: int
    t_end_ns: int
    latency_s: float
    reqs: list[list[int]]
    req_ids: list[str]
    sampled: int
    experts_active: list[int] | None
    expert_tokens: list[list[int]] | None
    warmup: bool


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
