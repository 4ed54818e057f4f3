"""Sessions in the load generator (``follow_up``) against the mock server on 127.0.0.1: a closed loop's concurrency
counts sessions, a session's next request waits for the previous answer and the think time, a duration cuts
sessions without sending late turns, and a failing follow-up stops the load."""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from collections.abc import Iterator

import orjson
import pytest

from capbench.loadgen import HttpRequestSpec, LoadPattern, LoadReport, RequestResult, run_load
from capbench.testing import MockServerProcess, MockSettings

pytestmark = pytest.mark.integration

MS = 1_000_000
PATH = "/v1/chat/completions"


@pytest.fixture(scope="module")
def server() -> Iterator[MockServerProcess]:
    with MockServerProcess(MockSettings(ttft_s=0.01, itl_s=0.002, output_tokens=4)) as proc:
        yield proc


def spec(session: int, turn: int, history: list[str]) -> HttpRequestSpec:
    messages = [{"role": "user", "content": text} for text in history]
    body = {"model": "m", "max_tokens": 4, "stream": True, "stream_options": {"include_usage": True}}
    return HttpRequestSpec(
        id=f"s{session}t{turn}", warmup=False, path=PATH, body=orjson.dumps({**body, "messages": messages})
    )


class Conversations:
    """Sessions of ``turns`` turns: each turn sends every earlier answer back."""

    def __init__(self, turns: int, think_s: float) -> None:
        self.turns, self.think_s = turns, think_s
        self.history: dict[int, list[str]] = {}

    def first(self, sessions: int | None) -> Iterator[HttpRequestSpec]:
        for s in itertools.count() if sessions is None else range(sessions):
            self.history[s] = ["hello there"]
            yield spec(s, 0, self.history[s])

    def follow_up(self, result: RequestResult) -> tuple[HttpRequestSpec, float] | None:
        session, turn = (int(x) for x in result.id[1:].split("t"))
        if result.error is not None or turn + 1 >= self.turns:
            return None
        self.history[session] += [result.output_text, "and then?"]
        return spec(session, turn + 1, self.history[session]), self.think_s


def drive(
    pattern: LoadPattern, conversations: Conversations, url: str, sessions: int | None
) -> tuple[LoadReport, list[RequestResult]]:
    results: list[RequestResult] = []
    report = asyncio.run(
        run_load(url, [], conversations.first(sessions), pattern, results.append, follow_up=conversations.follow_up)
    )
    return report, results


def by_session(results: list[RequestResult]) -> dict[str, list[RequestResult]]:
    out: dict[str, list[RequestResult]] = defaultdict(list)
    for r in sorted(results, key=lambda r: r.t_submit_ns):
        out[r.id.split("t")[0]].append(r)
    return out


def test_concurrency_counts_sessions_and_turns_wait_for_answer_and_think_time(server: MockServerProcess) -> None:
    think_s = 0.03
    conversations = Conversations(turns=3, think_s=think_s)
    report, results = drive(LoadPattern(concurrency=2, num_requests=5), conversations, server.url, None)
    assert len(results) == 15 and all(r.error is None for r in results)
    assert report.submitted == 15 and report.follow_ups == 10 and report.follow_ups_dropped == 0
    sessions = by_session(results)
    assert len(sessions) == 5
    spans = []
    for turns in sessions.values():
        assert [r.id[-1] for r in turns] == ["0", "1", "2"]
        for before, after in itertools.pairwise(turns):
            # the next turn is sent once the answer is complete, after the think time (not much later)
            wait_ns = after.t_submit_ns - before.t_done_ns
            assert think_s * 1e9 <= wait_ns < think_s * 1e9 + 25 * MS, wait_ns
        spans.append((turns[0].t_submit_ns, turns[-1].t_done_ns))
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    assert max(itertools.accumulate(d for _, d in events)) == 2  # two sessions at a time, think time included
    # the prompt grows: each turn carries the conversation so far (the mock counts words)
    sent = {rec["request_id"]: rec["prompt_tokens"] for rec in server.sent()["records"]}
    for turns in sessions.values():
        counts = [sent[r.id] for r in turns]
        assert counts == sorted(counts) and len(set(counts)) == 3


def test_a_duration_cuts_sessions_and_sends_no_turn_after_it(server: MockServerProcess) -> None:
    conversations = Conversations(turns=50, think_s=0.02)
    report, results = drive(LoadPattern(concurrency=3, duration_s=0.5), conversations, server.url, None)
    assert report.follow_ups_dropped == 3  # each live session was cut
    end = report.t_start_ns + 500 * MS
    assert all(r.t_submit_ns < end for r in results)


def test_a_follow_up_that_raises_stops_the_load(server: MockServerProcess) -> None:
    def broken(result: RequestResult) -> tuple[HttpRequestSpec, float] | None:
        raise RuntimeError("cannot build the next turn")

    conversations = Conversations(turns=3, think_s=0.0)
    with pytest.raises(RuntimeError, match="cannot build the next turn"):
        asyncio.run(
            run_load(
                server.url, [], conversations.first(4), LoadPattern(concurrency=2), lambda r: None, follow_up=broken
            )
        )


def test_sessions_need_a_closed_loop(server: MockServerProcess) -> None:
    conversations = Conversations(turns=2, think_s=0.0)
    with pytest.raises(ValueError, match="closed loop"):
        asyncio.run(
            run_load(
                server.url,
                [],
                conversations.first(1),
                LoadPattern(request_rate=10.0, num_requests=1),
                lambda r: None,
                follow_up=conversations.follow_up,
            )
        )
