"""SSE splitting and OpenAI chunk accounting, done after the stream from timestamped body pieces."""

from __future__ import annotations

import orjson
import pytest

from capbench.loadgen.sse import account_openai, account_openai_json, split_events


def _completion(text: str | None, finish: str | None = None) -> bytes:
    choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
    return b"data: " + orjson.dumps({"id": "c", "object": "text_completion", "choices": [choice]}) + b"\n\n"


def _chat(delta: dict[str, object], finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return b"data: " + orjson.dumps({"id": "c", "object": "chat.completion.chunk", "choices": [choice]}) + b"\n\n"


USAGE = b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":3,"total_tokens":5,"completion_tokens":2}}\n\n'
DONE = b"data: [DONE]\n\n"


def test_one_event_per_piece_keeps_each_piece_time() -> None:
    events = split_events([(10, b"data: a\n\n"), (20, b"data: b\n\n"), (30, DONE)])
    assert events == [(10, b"a"), (20, b"b"), (30, b"[DONE]")]


def test_several_events_in_one_read_share_its_time() -> None:
    assert split_events([(5, b"data: a\n\ndata: b\n\ndata: c\n\n")]) == [(5, b"a"), (5, b"b"), (5, b"c")]


def test_event_split_across_reads_gets_the_time_of_the_read_that_completed_it() -> None:
    pieces = [(1, b"data: hel"), (2, b"lo\n"), (3, b"\ndata: x\n\nda"), (4, b"ta: y\n\n")]
    assert split_events(pieces) == [(3, b"hello"), (3, b"x"), (4, b"y")]
    # the blank line's LF alone completes an event
    assert split_events([(1, b"data: a\n"), (2, b"\n")]) == [(2, b"a")]


def test_crlf_and_cr_line_ends_including_a_crlf_split_across_reads() -> None:
    pieces = [(1, b"data: a\r\n\r"), (2, b"\ndata: b\r\r"), (3, b"data: c\r\n"), (4, b"\r\n")]
    assert split_events(pieces) == [(1, b"a"), (2, b"b"), (4, b"c")]  # a CR ending a read ends a line at once
    # CRLF after a clean LF-only prefix
    assert split_events([(1, b"data: a\n\n"), (2, b"data: b\r\n\r\n")]) == [(1, b"a"), (2, b"b")]


def test_sse_fields_comments_multiline_data_and_incomplete_tail() -> None:
    body = b": ping\n\nevent: x\nid: 3\ndata:first\ndata: second\ndata\n\nretry: 5\n\ndata: tail-without-blank-line\n"
    assert split_events([(7, body)]) == [(7, b"first\nsecond\n")]


def test_completions_stream_is_accounted() -> None:
    pieces = [
        (100, _completion("Hel")),
        (200, _completion("lo") + _completion("", None)),  # an empty-text event carries no token
        (300, _completion(" world", "length") + USAGE),
        (400, DONE),
    ]
    acc = account_openai(split_events(pieces))
    assert acc.output_text == "Hello world"
    assert acc.token_times_ns == [100, 200, 300]
    assert acc.finish_reason == "length"
    assert acc.usage == {"prompt_tokens": 3, "total_tokens": 5, "completion_tokens": 2}
    assert acc.chunks == 5 and acc.done and acc.error is None


def test_chat_stream_role_chunk_is_not_a_token_and_reasoning_is_separate() -> None:
    pieces = [
        (1, _chat({"role": "assistant", "content": ""})),
        (2, _chat({"reasoning_content": "think"})),
        (3, _chat({"content": "Hi"})),
        (4, _chat({"content": "!"}, "stop")),
        (5, _chat({}, None) + USAGE + DONE),
    ]
    acc = account_openai(split_events(pieces))
    assert acc.output_text == "Hi!"
    assert acc.reasoning_text == "think"
    assert acc.token_times_ns == [2, 3, 4]
    assert acc.finish_reason == "stop"
    assert acc.usage is not None and acc.usage["completion_tokens"] == 2
    assert acc.done and acc.chunks == 6


def test_errors_in_the_stream_are_reported() -> None:
    err = b'data: {"error": {"message": "out of memory", "code": 500}}\n\n'
    acc = account_openai(split_events([(1, _completion("a")), (2, err)]))
    assert acc.error == "error in stream: out of memory" and acc.output_text == "a"
    acc = account_openai(split_events([(1, b"data: {not json\n\n")]))
    assert acc.error is not None and acc.error.startswith("malformed SSE data (not JSON)")
    acc = account_openai(split_events([(1, b"data: [1, 2]\n\n")]))
    assert acc.error is not None and "not a JSON object" in acc.error
    assert not account_openai([]).done


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (b'{"choices":[{"text":"abc","finish_reason":"length"}],"usage":{"completion_tokens":3}}', "abc"),
        (b'{"choices":[{"message":{"role":"assistant","content":"abc"},"finish_reason":"length"}],'
         b'"usage":{"completion_tokens":3}}', "abc"),
    ],
)  # fmt: skip
def test_non_streamed_response(body: bytes, text: str) -> None:
    acc = account_openai_json(body)
    assert acc.output_text == text and acc.finish_reason == "length"
    assert acc.usage == {"completion_tokens": 3} and acc.token_times_ns == []
    assert account_openai_json(b"nope").error is not None
