"""Trace files: Mooncake JSONL and BurstGPT CSV parsed, every malformed input refused by line before a request."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from capbench.errors import ConfigError
from capbench.workload.traces import load_trace


def mooncake(tmp_path: Path, lines: list[object]) -> Path:
    path = tmp_path / "trace.jsonl"
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


def burst(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "burst.csv"
    path.write_text(text)
    return path


def entry(t: int, n: int, blocks: list[int], out: int = 5) -> dict[str, object]:
    return {"timestamp": t, "input_length": n, "output_length": out, "hash_ids": blocks}


def test_mooncake_entries_and_schedule(tmp_path: Path) -> None:
    trace = load_trace(
        mooncake(tmp_path, [entry(1000, 600, [1, 2]), entry(1250, 512, [1]), entry(3000, 10, [9])]), "mooncake"
    )
    assert [e.prompt_tokens for e in trace.entries] == [600, 512, 10]
    assert [e.block_ids for e in trace.entries] == [(1, 2), (1,), (9,)]
    assert trace.offsets_ns() == [0, 250_000_000, 2_000_000_000]
    assert trace.offsets_ns(replay_speed=10, count=2) == [0, 25_000_000]
    assert trace.duration_s(4.0) == 0.5
    assert len(trace.sha256) == 64


def test_mooncake_blocks_beyond_the_prompt_are_dropped(tmp_path: Path) -> None:
    trace = load_trace(mooncake(tmp_path, [entry(0, 100, [4, 5, 6])]), "mooncake")
    assert trace.entries[0].block_ids == (4,)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"trace.jsonl:2: not valid JSON"),
        ('["a list"]', r":2: each line must be a JSON object"),
        ({"timestamp": 5, "input_length": 3, "hash_ids": [1]}, r":2: missing output_length"),
        (entry(5, 0, [1]), r":2: input_length must be an integer >= 1"),
        (entry(5, 1100, [1, 2]), r":2: input_length 1100 needs 3 blocks of 512 tokens but hash_ids lists 2"),
        ({**entry(5, 3, [1]), "hash_ids": "1"}, r":2: hash_ids must be a list"),
        ({**entry(5, 3, [1]), "output_length": True}, r":2: output_length must be an integer"),
        ({**entry(5, 3, [1]), "timestamp": "soon"}, r":2: timestamp must be a number"),
        (entry(1, 3, [1]), r":2: timestamp 0.001 s is earlier than line 1's 0.002 s"),
    ],
)
def test_mooncake_problems_name_the_line(tmp_path: Path, line: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_trace(mooncake(tmp_path, [entry(2, 3, [1]), line]), "mooncake")


def test_burstgpt_skips_failed_entries_and_counts_them(tmp_path: Path) -> None:
    text = (
        "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
        "5,ChatGPT,472,18,490,Conversation log\n"
        "45,ChatGPT,1087,0,1087,Conversation log\n"
        "118,GPT-4,417,276,693,API log\n"
    )
    trace = load_trace(burst(tmp_path, text), "burstgpt")
    assert [(e.prompt_tokens, e.output_tokens) for e in trace.entries] == [(472, 18), (417, 276)]
    assert trace.skipped_failed == 1
    assert trace.offsets_ns() == [0, 113_000_000_000]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Timestamp,Request tokens\n1,2\n", r"missing column\(s\) Response tokens"),
        ("Timestamp,Request tokens,Response tokens\n1,,3\n", r"burst.csv:2: a row needs"),
        ("Timestamp,Request tokens,Response tokens\n1,x,3\n", r"burst.csv:2: Request tokens must be an integer"),
        ("Timestamp,Request tokens,Response tokens\n9,2,3\n4,2,3\n", r"burst.csv:3: timestamp 4 s is earlier"),
        ("Timestamp,Request tokens,Response tokens\n9,2,0\n", r"holds no requests \(1 failed entries skipped\)"),
    ],
)
def test_burstgpt_problems_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_trace(burst(tmp_path, text), "burstgpt")


def test_unreadable_and_unknown(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read trace"):
        load_trace(tmp_path / "nope.jsonl", "mooncake")
    with pytest.raises(ConfigError, match="trace_format must be one of"):
        load_trace(tmp_path / "nope.jsonl", "azure")
    with pytest.raises(ConfigError, match="holds no requests"):
        load_trace(mooncake(tmp_path, ["", ""]), "mooncake")
    with pytest.raises(ConfigError, match="replay_speed"):
        load_trace(mooncake(tmp_path, [entry(0, 3, [1])]), "mooncake").offsets_ns(0)
