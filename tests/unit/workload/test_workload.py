"""Prompt files and request lists: validation, seeded order, warm-up marking by id."""

from __future__ import annotations

from pathlib import Path

import pytest

from capbench.errors import CapbenchError
from capbench.workload import build_requests, load_prompts


def test_shipped_prompts_load_with_a_content_hash() -> None:
    prompts = load_prompts()
    assert len(prompts.prompts) >= 32
    assert len({p.id for p in prompts.prompts}) == len(prompts.prompts)
    assert len(prompts.sha256) == 64 and "shipped" in prompts.source


def test_requests_are_warmup_first_marked_by_id_and_seeded() -> None:
    prompts = load_prompts()
    requests = build_requests(prompts, num_requests=5, warmup=2, seed=7)
    assert [r.id for r in requests] == ["w0000", "w0001", "r0000", "r0001", "r0002", "r0003", "r0004"]
    assert [r.warmup for r in requests] == [True, True, False, False, False, False, False]
    assert build_requests(prompts, 5, 2, seed=7) == requests
    assert [r.prompt for r in build_requests(prompts, 5, 2, seed=8)] != [r.prompt for r in requests]


def test_more_requests_than_prompts_cycle(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "a"}\n{"prompt": "b", "id": "B"}\n')
    prompts = load_prompts(path)
    assert [p.id for p in prompts.prompts] == ["line1", "B"]
    texts = [r.prompt.text for r in build_requests(prompts, 6, 0, seed=0)]
    assert sorted(set(texts)) == ["a", "b"] and texts.count("a") == texts.count("b") == 3


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"prompt": "ok"}\nnot json\n', r"p\.jsonl:2: not valid JSON"),
        ('{"text": "x"}\n', r"p\.jsonl:1: each line needs a non-empty string field 'prompt'"),
        ('{"prompt": ""}\n', r"p\.jsonl:1: each line needs"),
        ("\n\n", "holds no prompts"),
    ],
)
def test_bad_prompt_files_are_clear_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(content)
    with pytest.raises(CapbenchError, match=message):
        load_prompts(path)


def test_missing_prompt_file(tmp_path: Path) -> None:
    with pytest.raises(CapbenchError, match="cannot read prompt file"):
        load_prompts(tmp_path / "nope.jsonl")
