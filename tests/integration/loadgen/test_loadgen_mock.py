"""The load generator against the mock OpenAI-compatible server (a subprocess on 127.0.0.1, any free port).

Timing assertions compare client timestamps with the delays the server was asked for and with the send times
the server recorded; tolerances allow for a loaded 2-core machine but fail on timing that is wrong.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from capbench.loadgen import (
    HttpRequestSpec,
    LoadPattern,
    LoadReport,
    RequestResult,
    ServerUnavailable,
    arrival_offsets_ns,
    iter_specs,
    run_load,
)
from capbench.testing import MockServer, MockServerProcess, MockSettings

pytestmark = pytest.mark.integration

MS = 1_000_000


@pytest.fixture(scope="module")
def server() -> Iterator[MockServerProcess]:
    with MockServerProcess(MockSettings()) as proc:
        yield proc


def body(max_tokens: int = 8, chat: bool = False, stream: bool = True, **mock: Any) -> bytes:
    req: dict[str, Any] = {"model": "capbench-mock", "max_tokens": max_tokens, "stream": stream}
    if chat:
        req["messages"] = [{"role": "user", "content": "say something nice"}]
    else:
        req["prompt"] = "say something nice"
    if stream:
        req["stream_options"] = {"include_usage": True}
    if mock:
        req["capbench_mock"] = mock
    return orjson.dumps(req)


def run(
    url: str,
    measured: Iterator[HttpRequestSpec] | Sequence[HttpRequestSpec],
    pattern: LoadPattern,
    warmup: Sequence[HttpRequestSpec] = (),
) -> tuple[LoadReport, list[RequestResult]]:
    results: list[RequestResult] = []
    report = asyncio.run(run_load(url, warmup, iter(measured), pattern, results.append))
    return report, results


def specs(n: int, payload: bytes, path: str = "/v1/completions", prefix: str = "r") -> list[HttpRequestSpec]:
    return list(iter_specs(path, [payload] * n, prefix=prefix, warmup=prefix == "w"))


def ns(value: int | None) -> int:
    assert value is not None
    return value


def max_overlap(results: Sequence[RequestResult]) -> int:
    events = sorted([(r.t_submit_ns, 1) for r in results] + [(r.t_done_ns, -1) for r in results])
    return max(itertools.accumulate(delta for _, delta in events))


def test_ttft_and_itl_match_the_configured_delays_and_the_server_record(server: MockServerProcess) -> None:
    server.reset()
    ttft, itl, n = 50 * MS, 10 * MS, 12
    report, results = run(
        server.url,
        specs(8, body(n, ttft_s=ttft / 1e9, itl_s=itl / 1e9)),
        LoadPattern(concurrency=4, num_requests=8),
    )
    assert report.completed == 8 and report.failed == 0
    sent = {rec["request_id"]: rec for rec in server.sent()["records"]}
    for r in results:
        assert r.error is None and r.http_status == 200 and r.finish_reason == "length"
        assert r.output_text == "".join(f"tok{i} " for i in range(n))
        assert r.usage == {"prompt_tokens": 3, "total_tokens": 3 + n, "completion_tokens": n}
        assert r.chunks == n + 1 and r.stream_done and len(r.token_times_ns) == n
        assert r.t_first_token_ns == r.token_times_ns[0]
        assert r.t_submit_ns <= ns(r.t_sent_ns) <= ns(r.t_first_byte_ns) < ns(r.t_first_token_ns) <= r.t_done_ns
        # token i cannot arrive before the server made it due, and should not come much later
        for i, t in enumerate(r.token_times_ns):
            assert ttft + i * itl <= t - r.t_submit_ns < ttft + i * itl + 30 * MS
        gaps = sorted(b - a for a, b in itertools.pairwise(r.token_times_ns))
        assert 9 * MS <= gaps[len(gaps) // 2] <= 12 * MS
        # client timing error against what the server recorded sending
        truth = sent[r.id]["token_sent_ns"]
        assert len(truth) == n
        # (negative when the server was preempted between its write and reading the clock)
        assert all(abs(c - s) < 15 * MS for c, s in zip(r.token_times_ns, truth, strict=True))


def test_closed_loop_reaches_and_never_exceeds_its_concurrency(server: MockServerProcess) -> None:
    report, results = run(server.url, specs(60, body(4, itl_s=0.002)), LoadPattern(concurrency=6, num_requests=40))
    assert report.submitted == report.completed == len(results) == 40  # stops at num_requests
    assert report.max_in_flight == 6 and max_overlap(results) == 6
    assert [r.id for r in sorted(results, key=lambda r: r.t_submit_ns)] == [f"r{i:04d}" for i in range(40)]
    assert sum(bool(r.connection_reused) for r in results) >= 40 - 6  # keep-alive: one connection per slot
    assert report.output_events == 40 * 4 and not report.aborted


def test_warmup_runs_first_and_is_flagged(server: MockServerProcess) -> None:
    report, results = run(
        server.url,
        specs(5, body(2)),
        LoadPattern(concurrency=2, warmup=3),
        warmup=specs(3, body(2), prefix="w"),
    )
    warm = [r for r in results if r.warmup]
    measured = [r for r in results if not r.warmup]
    assert [r.id for r in warm] and {r.id for r in warm} == {"w0000", "w0001", "w0002"}
    assert max(r.t_done_ns for r in warm) <= report.t_start_ns <= min(r.t_submit_ns for r in measured)
    assert report.submitted == 5 and report.warmup_submitted == 3
    with pytest.raises(ValueError, match=r"pattern\.warmup is 0"):
        run(server.url, specs(1, body(2)), LoadPattern(concurrency=1), warmup=specs(1, body(2), prefix="w"))


def test_open_loop_fires_on_the_precomputed_schedule(server: MockServerProcess) -> None:
    rate, n = 200.0, 200
    pattern = LoadPattern(request_rate=rate, num_requests=n, seed=5)
    report, results = run(
        server.url, itertools.repeat(HttpRequestSpec("r", False, "/v1/completions", body(4))), pattern
    )
    assert report.submitted == report.completed == n
    offsets = arrival_offsets_ns(rate, n, "poisson", seed=5)
    submits = sorted(ns(r.t_scheduled_ns) for r in results)
    assert [s - report.t_start_ns for s in submits] == offsets
    lateness = sorted(r.t_submit_ns - ns(r.t_scheduled_ns) for r in results)
    assert lateness[0] >= 0 and lateness[len(lateness) * 9 // 10] < 10 * MS
    assert report.schedule_lag_p99_s is not None and report.schedule_lag_p50_s is not None
    assert report.schedule_lag_p50_s < 0.005


def test_open_loop_constant_rate_is_achieved(server: MockServerProcess) -> None:
    rate, n = 250.0, 125
    _, results = run(server.url, specs(n, body(4)), LoadPattern(request_rate=rate, arrival="constant", num_requests=n))
    submits = sorted(r.t_submit_ns for r in results)
    achieved = (n - 1) / ((submits[-1] - submits[0]) / 1e9)
    assert achieved == pytest.approx(rate, rel=0.05)


def test_open_loop_max_concurrency_makes_arrivals_wait(server: MockServerProcess) -> None:
    report, results = run(
        server.url,
        specs(12, body(5, itl_s=0.01)),
        LoadPattern(request_rate=1000.0, arrival="constant", max_concurrency=3, num_requests=12),
    )
    assert max_overlap(results) == 3 and report.max_in_flight == 3
    assert report.queued > 0 and report.queue_wait_max_s is not None and report.queue_wait_max_s > 0.03
    assert any("waited for max_concurrency=3" in w for w in report.warnings)
    late = [r for r in results if r.t_submit_ns - ns(r.t_scheduled_ns) > 20 * MS]
    assert late  # they were submitted well after their scheduled arrival


def test_duration_mode_stops_submitting_on_time(server: MockServerProcess) -> None:
    infinite = (HttpRequestSpec(f"r{i:04d}", False, "/v1/completions", body(5, itl_s=0.01)) for i in itertools.count())
    report, results = run(server.url, infinite, LoadPattern(concurrency=3, duration_s=0.4))
    end = report.t_start_ns + 400 * MS
    assert all(r.t_submit_ns < end for r in results)
    assert max(r.t_submit_ns for r in results) > end - 80 * MS  # it kept submitting until then
    assert report.t_end_ns == max(r.t_done_ns for r in results)  # in-flight requests were let finish
    assert report.t_end_ns < end + 150 * MS and report.completed == len(results) >= 9

    report, results = run(server.url, infinite, LoadPattern(request_rate=100.0, duration_s=0.3, seed=1))
    expected = sum(1 for off in arrival_offsets_ns(100.0, 200, seed=1) if off < 300 * MS)
    assert report.submitted == len(results) == expected


def test_http_errors_and_timeouts_are_recorded_without_stopping(server: MockServerProcess) -> None:
    payloads = [body(3), body(3, status=500), body(3, hang=True), body(3, status=404), body(3)]
    measured = list(iter_specs("/v1/completions", payloads))
    report, results = run(server.url, measured, LoadPattern(concurrency=5, timeout_s=0.3))
    by_id = {r.id: r for r in results}
    assert by_id["r0000"].error is None and by_id["r0004"].error is None
    assert by_id["r0001"].http_status == 500 and by_id["r0001"].error == "HTTP 500: injected failure (HTTP 500)"
    assert by_id["r0003"].http_status == 404 and by_id["r0003"].error is not None
    hung = by_id["r0002"]
    assert hung.error == "timeout after 0.3 s" and hung.http_status == 200 and hung.token_times_ns == []
    assert 290 * MS <= hung.t_done_ns - hung.t_submit_ns < 400 * MS
    assert report.completed == 2 and report.failed == 3 and not report.aborted


def test_server_closing_mid_stream_is_an_error_that_keeps_what_arrived(server: MockServerProcess) -> None:
    report, results = run(server.url, specs(1, body(8, close_after_tokens=3, itl_s=0.002)), LoadPattern(concurrency=1))
    (r,) = results
    assert r.error is not None and r.error.startswith("connection closed mid-response after")
    assert r.output_text == "tok0 tok1 tok2 " and len(r.token_times_ns) == 3 and r.usage is None
    assert report.failed == 1


def test_chat_and_non_streamed_requests(server: MockServerProcess) -> None:
    measured = [
        HttpRequestSpec("r0000", False, "/v1/chat/completions", body(4, chat=True)),
        HttpRequestSpec("r0001", False, "/v1/chat/completions", body(4, chat=True, stream=False)),
        HttpRequestSpec("r0002", False, "/v1/completions", body(4, stream=False)),
    ]
    _, results = run(server.url, measured, LoadPattern(concurrency=1))
    chat, chat_json, comp_json = sorted(results, key=lambda r: r.id)
    assert chat.output_text == "tok0 tok1 tok2 tok3 " and len(chat.token_times_ns) == 4 and chat.chunks == 6
    assert chat.usage is not None and chat.usage["prompt_tokens"] == 3
    for r in (chat_json, comp_json):
        assert r.error is None and r.output_text == "tok0 tok1 tok2 tok3 " and r.token_times_ns == []
        assert r.t_first_token_ns is None and r.usage is not None and r.usage["completion_tokens"] == 4


def test_on_result_exceptions_stop_the_load_and_propagate(server: MockServerProcess) -> None:
    seen: list[str] = []

    def explode(result: RequestResult) -> None:
        seen.append(result.id)
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        asyncio.run(run_load(server.url, [], iter(specs(20, body(2))), LoadPattern(concurrency=4), explode))
    assert len(seen) == 1


def test_server_killed_mid_run_raises_after_delivering_finished_results() -> None:
    proc = MockServerProcess(MockSettings(itl_s=0.002, output_tokens=10))
    proc.start()
    results: list[RequestResult] = []

    def on_result(result: RequestResult) -> None:
        results.append(result)
        if len(results) == 30:
            proc.kill()

    try:
        infinite = (HttpRequestSpec(f"r{i:04d}", False, "/v1/completions", body(10)) for i in itertools.count())
        with pytest.raises(ServerUnavailable) as info:
            asyncio.run(run_load(proc.url, [], infinite, LoadPattern(concurrency=4, timeout_s=5), on_result))
    finally:
        proc.stop()
    report = info.value.report
    assert report.aborted and report.abort_reason is not None and "consecutive connection-level" in report.abort_reason
    ok = [r for r in results if r.error is None]
    failed = [r for r in results if r.error is not None]
    assert len(ok) >= 30 and all(len(r.token_times_ns) == 10 for r in ok)
    assert len(failed) >= 10 and failed[-1].error == "connection refused"
    assert report.completed == len(ok) and report.failed == len(failed) and report.submitted == len(results)


def test_no_server_at_all_aborts_quickly() -> None:
    async def main() -> None:
        srv = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        srv.close()
        await srv.wait_closed()
        await run_load(
            f"http://127.0.0.1:{port}", [], iter(specs(50, body(2))), LoadPattern(concurrency=2), seen.append
        )

    seen: list[RequestResult] = []
    with pytest.raises(ServerUnavailable, match="connection refused"):
        asyncio.run(main())
    # the 10th consecutive failure stops submission; the one other request in flight still ends and is reported
    assert 10 <= len(seen) <= 11 and all(r.error == "connection refused" and r.http_status is None for r in seen)


def test_in_process_server_records_send_times_and_serves_the_other_routes() -> None:
    async def main() -> tuple[list[RequestResult], list[Any], list[RequestResult]]:
        async with MockServer(MockSettings(ttft_s=0.01, itl_s=0.002, output_tokens=5, coalesce=True)) as srv:
            got: list[RequestResult] = []
            await run_load(srv.url, [], iter(specs(3, body(5))), LoadPattern(concurrency=3), got.append)
            records = srv.take_records()
            others: list[RequestResult] = []
            routes = [
                HttpRequestSpec("models", False, "/v1/models", b""),
                HttpRequestSpec("nope", False, "/v2/nothing", b"{}"),
                HttpRequestSpec("bad", False, "/v1/completions", b"{not json"),
            ]
            await run_load(srv.url, [], iter(routes), LoadPattern(concurrency=1), others.append)
            return got, records, others

    got, records, others = asyncio.run(main())
    assert {r.id for r in got} == {rec.request_id for rec in records}
    for rec in records:
        assert len(rec.token_sent_ns) == 5 and rec.t_headers_ns is not None and rec.t_end_ns is not None
        assert rec.t_received_ns + 10 * MS <= rec.token_sent_ns[0]
    by_id = {r.id: r for r in others}
    assert by_id["nope"].http_status == 404 and by_id["bad"].http_status == 400
    assert by_id["models"].http_status == 405  # POST on a GET route


def test_seeded_failure_injection_and_the_sent_log(tmp_path: Path) -> None:
    log = tmp_path / "sent.jsonl"
    outcomes = []
    for _ in range(2):
        with MockServerProcess(MockSettings(fail_rate=0.3, seed=7), extra_args=["--sent-log", str(log)]) as srv:
            report, results = run(srv.url, specs(40, body(2)), LoadPattern(concurrency=1))
        outcomes.append([r.http_status for r in sorted(results, key=lambda r: r.id)])
        assert report.failed == outcomes[-1].count(500) and not report.aborted
    assert outcomes[0] == outcomes[1]  # the same seed fails the same requests
    assert 4 <= outcomes[0].count(500) <= 24 and set(outcomes[0]) == {200, 500}
    lines = [orjson.loads(line) for line in log.read_bytes().splitlines()]
    assert [rec["status"] for rec in lines] == outcomes[1]
    assert all(len(rec["token_sent_ns"]) == (2 if rec["status"] == 200 else 0) for rec in lines)


def test_self_check_fields_are_filled(server: MockServerProcess) -> None:
    report, _ = run(server.url, specs(30, body(5, itl_s=0.004)), LoadPattern(concurrency=3))
    assert report.cpu_s is not None and report.cpu_util is not None and 0 <= report.cpu_util < 1.5
    assert report.loop_lag_samples >= 3 and report.loop_lag_p99_s is not None
    assert report.schedule_lag_p99_s is None  # closed loop
    d = report.as_dict()
    assert d["duration_s"] == report.duration_s > 0 and d["loop"] in ("asyncio", "uvloop")


def _raising_after(items: Sequence[HttpRequestSpec], exc: BaseException) -> Iterator[HttpRequestSpec]:
    yield from items
    raise exc


@pytest.mark.parametrize(
    "pattern",
    [LoadPattern(concurrency=1), LoadPattern(concurrency=3), LoadPattern(request_rate=500.0, arrival="constant")],
    ids=["closed-1", "closed-3", "open"],
)
def test_an_exception_from_the_measured_iterator_stops_the_load_and_propagates(
    server: MockServerProcess, pattern: LoadPattern
) -> None:
    """The iterator is read in loop callbacks (a request ending, an arrival timer): its exception must end
    run_load (not only be logged by the loop while run_load waits forever), with earlier results delivered."""
    results: list[RequestResult] = []
    first = specs(1, body(2))
    measured = _raising_after(first, ValueError("bad workload line 2"))

    async def main() -> None:
        await asyncio.wait_for(run_load(server.url, [], measured, pattern, results.append), 10)

    with pytest.raises(ValueError, match="bad workload line 2"):
        asyncio.run(main())
    if pattern.concurrency == 1:  # the next spec is taken when the first request ended: it was delivered
        assert [r.id for r in results] == ["r0000"] and results[0].error is None


def test_an_exception_while_submitting_stops_the_load_and_propagates(server: MockServerProcess) -> None:
    # a request id that cannot go into a header: HttpClient.submit raises (from the on_done callback)
    measured = [*specs(2, body(2)), HttpRequestSpec("r\u2603", False, "/v1/completions", body(2))]
    results: list[RequestResult] = []

    async def main() -> None:
        await asyncio.wait_for(run_load(server.url, [], iter(measured), LoadPattern(concurrency=1), results.append), 10)

    with pytest.raises(UnicodeEncodeError):
        asyncio.run(main())
    assert [r.id for r in results] == ["r0000", "r0001"]


def test_a_single_long_client_stall_is_flagged(server: MockServerProcess) -> None:
    """One 300 ms stall among hundreds of ticks leaves the p99 untouched; the maximum must still flag it."""
    stalled: list[str] = []

    def on_result(result: RequestResult) -> None:
        if result.id == "r0005":
            stalled.append(result.id)
            time.sleep(0.3)  # the client blocks: every timestamp taken meanwhile is late

    report = asyncio.run(
        run_load(
            server.url,
            [],
            iter(specs(60, body(4, itl_s=0.005))),
            LoadPattern(concurrency=2),
            on_result,
            loop_lag_interval_s=0.002,
        )
    )
    assert stalled and report.loop_lag_samples > 110  # (over 101: one outlier cannot reach the p99)
    assert report.loop_lag_p99_s is not None and report.loop_lag_p99_s < 0.05  # the p99 alone misses it
    assert report.loop_lag_max_s is not None and report.loop_lag_max_s >= 0.25
    assert report.loop_stall_s is not None and report.loop_stall_s >= 0.25
    assert report.client_bound
    assert any("stalled for" in w and "late" in w for w in report.warnings)


def test_mock_server_docstring_describes_the_default_write_mode() -> None:
    from capbench.testing import mock_server
    from capbench.testing.mock_server import cli

    doc = mock_server.__doc__ or ""
    assert "every chunk is its own ``transport.write()``" in doc and "``--coalesce``" in doc
    assert cli.parse_args(["--coalesce"]).coalesce and not cli.parse_args([]).coalesce


def test_mock_server_records_no_send_time_for_writes_that_were_not_sent() -> None:
    """A write on a connection that is closing (a failed send closes the transport before connection_lost
    runs) sends nothing: the record must not get that write's time, nor the time of some other write."""

    async def main() -> tuple[list[int], int | None, dict[str, Any], int]:
        async with MockServer(MockSettings(output_tokens=4)) as srv:
            payload = body(4, hang_after_tokens=2)  # zero delays: every token is due at once
            reader, writer = await asyncio.open_connection(srv.host, srv.port)
            writer.write(
                b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nX-Request-Id: r0000\r\nContent-Length: %d\r\n\r\n%s"
                % (len(payload), payload)
            )
            await reader.readuntil(b"tok1 ")  # two tokens sent, then the stream hangs
            (rec,) = srv.records
            (stream,) = srv.streams
            sent_before = list(rec.token_sent_ns)
            other = srv.last_write_ns
            assert stream.conn.transport is not None
            stream.conn.transport.close()  # closing; connection_lost has not run yet
            stream.hang_after = None
            for _ in range(stream.n):  # the rest of the stream is due: token 2, token 3 and the end
                if stream.i < stream.n:
                    stream._step()
            writer.close()
            assert srv.last_write_ns == other  # no write was sent, so nothing newer
            return sent_before, rec.t_end_ns, srv.stats(), len(rec.token_sent_ns)

    sent_before, t_end, stats, n_sent = asyncio.run(main())
    assert len(sent_before) == 2 and n_sent == 2  # tokens 2 and 3 were not sent: no time for them
    assert t_end is None  # the end of the response was never sent
    assert stats["unsent_writes"] >= 5  # tokens 2, 3, usage, [DONE], terminal chunk


def test_mock_server_process_that_fails_to_start_is_cleaned_up(tmp_path: Path) -> None:
    crash = tmp_path / "crash.sh"
    crash.write_text("#!/bin/sh\necho 'Traceback: no such module' >&2\nexit 3\n")
    crash.chmod(0o755)
    proc = MockServerProcess(python=str(crash))
    with pytest.raises(RuntimeError, match=r"did not start \(exited with status 3"):
        proc.start()
    assert proc.proc is not None and proc.proc.poll() == 3
    assert proc.proc.stdout is not None and proc.proc.stdout.closed

    silent = tmp_path / "silent.sh"
    silent.write_text("#!/bin/sh\nexec sleep 30\n")
    silent.chmod(0o755)
    proc = MockServerProcess(python=str(silent), start_timeout_s=0.3)
    with pytest.raises(RuntimeError, match=r"no URL within 0\.3 s"):
        proc.start()
    assert proc.proc is not None and proc.proc.poll() is not None  # killed, not left running
    assert proc.proc.stdout is not None and proc.proc.stdout.closed


def test_mock_server_keeps_only_the_most_recent_send_records() -> None:
    """A soak must not grow the server: past record_limit the oldest send records are dropped, and counted."""

    async def main() -> tuple[list[str], dict[str, Any], int]:
        async with MockServer(MockSettings(output_tokens=2, record_limit=3)) as srv:
            specs = iter_specs("/v1/completions", itertools.repeat(body(2)))
            await run_load(srv.url, [], specs, LoadPattern(concurrency=1, num_requests=5), lambda r: None)
            ids, stats = [r.request_id for r in srv.records], srv.stats()
            srv.take_records()
            return ids, stats, len(srv.records)

    ids, stats, left = asyncio.run(main())
    assert ids == ["r0002", "r0003", "r0004"]
    assert stats["records"] == 3 and stats["records_dropped"] == 2 and stats["requests"] == 5
    assert left == 0
