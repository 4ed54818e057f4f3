"""Fixed-length prompts: exact token counts, re-tokenized as the server or runner will, with real tokenizers.

Three tokenizers built offline: the embedded tiny model's byte-level BPE (no special tokens added, a ChatML
template); a lowercasing WordPiece that adds ``[CLS] ... [SEP]`` and has a plain-text template and a
``model_max_length`` of 4096; and a SentencePiece-style (Metaspace, byte fallback) BPE that adds a BOS token,
with a Llama-style template that trims the content.
"""

from __future__ import annotations

import copy
import hashlib
import io
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capbench.workload import PromptSet
from capbench.workload.fixed_length import FixedLengthError, build_fixed_prompts, safe_pool

pytestmark = pytest.mark.integration

TOKENIZERS = ("tiny", "wordpiece", "metaspace")
LENGTHS = (1, 2, 7, 64, 500, 2048)


def _wordpiece() -> Any:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from capbench.models.tiny import tokenizer_corpus

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    trainer = trainers.WordPieceTrainer(vocab_size=400, special_tokens=specials, show_progress=False)
    tok.train_from_iterator(tokenizer_corpus(), trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        model_max_length=4096,
    )
    fast.chat_template = (
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant:{% endif %}"
    )
    return fast


def _metaspace() -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from capbench.models.tiny import tokenizer_corpus

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Sequence([decoders.Metaspace(), decoders.ByteFallback(), decoders.Fuse()])
    specials = ["<unk>", "<s>", "</s>", *(f"<0x{i:02X}>" for i in range(256))]
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=specials, show_progress=False)
    tok.train_from_iterator(tokenizer_corpus(), trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    fast.chat_template = "{{ bos_token }}{% for m in messages %}[INST] {{ m['content'] | trim }} [/INST]{% endfor %}"
    return fast


@pytest.fixture(scope="session")
def tokenizers(tiny_model_dir: Path) -> dict[str, Any]:
    from transformers import AutoTokenizer

    return {"tiny": AutoTokenizer.from_pretrained(tiny_model_dir), "wordpiece": _wordpiece(), "metaspace": _metaspace()}


def _seen(tok: Any, text: str, chat: bool, add_special_tokens: bool) -> list[int]:
    """The ids the model sees for ``text``, computed here independently of capbench.workload.fixed_length."""
    if chat:
        out = tok.apply_chat_template(
            [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True, return_dict=False
        )
        return [int(i) for i in out]
    return [int(i) for i in tok(text, add_special_tokens=add_special_tokens)["input_ids"]]


def _overhead(tok: Any, chat: bool, add_special_tokens: bool) -> int:
    return len(_seen(tok, "", chat, add_special_tokens))


def _check_exact(tok: Any, prompts: PromptSet, length: int, count: int, chat: bool, add_special_tokens: bool) -> None:
    assert [p.id for p in prompts.prompts] == [f"fixed-{i:04d}" for i in range(count)]
    texts = [p.text for p in prompts.prompts]
    assert len(set(texts)) == count, "prompts within a set are distinct"
    assert len({p.token_ids for p in prompts.prompts}) == count, "and so are the ids the model sees"
    for p in prompts.prompts:
        seen = _seen(tok, p.text, chat, add_special_tokens)
        assert len(seen) == length, (p.id, len(seen))
        assert p.token_ids == tuple(seen)
        assert p.text.isprintable() and p.text.strip()
    assert prompts.sha256 == hashlib.sha256("\n".join(texts).encode()).hexdigest()
    assert prompts.source.startswith(f"fixed length: {length} tokens (")
    assert prompts.source.endswith(", seed 0")
    assert ("chat template" in prompts.source) == chat


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("add_special_tokens", [False, True])
@pytest.mark.parametrize("chat", [False, True])
@pytest.mark.parametrize("name", TOKENIZERS)
def test_exact_lengths(
    tokenizers: dict[str, Any], name: str, chat: bool, add_special_tokens: bool, length: int
) -> None:
    tok = tokenizers[name]
    overhead = _overhead(tok, chat, add_special_tokens)
    count = 8 if length >= 500 else 24
    if length <= overhead:
        with pytest.raises(FixedLengthError, match=rf"prompt_tokens={length} is too small.* {overhead} tokens"):
            build_fixed_prompts(tok, length, count, 0, chat=chat, add_special_tokens=add_special_tokens)
        return
    prompts = build_fixed_prompts(tok, length, count, 0, chat=chat, add_special_tokens=add_special_tokens)
    _check_exact(tok, prompts, length, count, chat, add_special_tokens)


@pytest.mark.parametrize("add_special_tokens", [False, True])
@pytest.mark.parametrize("chat", [False, True])
@pytest.mark.parametrize("name", TOKENIZERS)
def test_shortest_possible_prompt(tokenizers: dict[str, Any], name: str, chat: bool, add_special_tokens: bool) -> None:
    """One token of text after the overhead: the prompt is a single pool token."""
    tok = tokenizers[name]
    length = _overhead(tok, chat, add_special_tokens) + 1
    prompts = build_fixed_prompts(tok, length, 8, 0, chat=chat, add_special_tokens=add_special_tokens)
    _check_exact(tok, prompts, length, 8, chat, add_special_tokens)


def test_the_tokenizers_differ(tokenizers: dict[str, Any]) -> None:
    """The three tokenizers cover no added tokens, BOS only, and CLS+SEP, and three template overheads."""
    overheads = {name: _overhead(tok, False, True) for name, tok in tokenizers.items()}
    assert overheads == {"tiny": 0, "wordpiece": 2, "metaspace": 1}
    assert len({_overhead(tok, True, False) for tok in tokenizers.values()}) == 3


@pytest.mark.parametrize("name", TOKENIZERS)
def test_deterministic(tokenizers: dict[str, Any], name: str) -> None:
    tok = tokenizers[name]
    first = build_fixed_prompts(tok, 100, 16, 7, chat=True)
    assert build_fixed_prompts(tok, 100, 16, 7, chat=True) == first
    assert build_fixed_prompts(copy.deepcopy(tok), 100, 16, 7, chat=True) == first


def test_deterministic_across_tokenizer_loads(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    one = build_fixed_prompts(AutoTokenizer.from_pretrained(tiny_model_dir), 300, 8, 3, add_special_tokens=True)
    two = build_fixed_prompts(AutoTokenizer.from_pretrained(tiny_model_dir), 300, 8, 3, add_special_tokens=True)
    assert one == two


@pytest.mark.parametrize("name", TOKENIZERS)
def test_seeds_give_different_prompts(tokenizers: dict[str, Any], name: str) -> None:
    tok = tokenizers[name]
    zero = build_fixed_prompts(tok, 64, 16, 0)
    one = build_fixed_prompts(tok, 64, 16, 1)
    assert not {p.text for p in zero.prompts} & {p.text for p in one.prompts}
    assert zero.sha256 != one.sha256
    assert one.source == "fixed length: 64 tokens (completions, no special tokens), seed 1"


def test_lengths_of_one_seed_are_not_prefixes(tokenizers: dict[str, Any]) -> None:
    """A sweep over lengths with one seed does not send prompts that a prefix cache could partly serve."""
    tok = tokenizers["tiny"]
    short = build_fixed_prompts(tok, 500, 8, 0)
    long = build_fixed_prompts(tok, 2048, 8, 0)
    for s in short.prompts:
        for x in long.prompts:
            assert s.token_ids is not None and x.token_ids is not None
            assert x.token_ids[:16] != s.token_ids[:16]


def test_too_short_for_the_chat_template_names_both_numbers(tokenizers: dict[str, Any]) -> None:
    tok = tokenizers["tiny"]
    overhead = _overhead(tok, True, False)
    assert overhead > 1
    with pytest.raises(FixedLengthError) as info:
        build_fixed_prompts(tok, overhead, 4, 0, chat=True)
    message = str(info.value)
    assert f"prompt_tokens={overhead}" in message
    assert f"chat template alone takes {overhead} tokens" in message
    assert f"shortest prompt possible is {overhead + 1} tokens" in message


def test_too_short_for_the_special_tokens(tokenizers: dict[str, Any]) -> None:
    with pytest.raises(FixedLengthError, match=r"prompt_tokens=2 is too small: the special tokens .* take 2 tokens"):
        build_fixed_prompts(tokenizers["wordpiece"], 2, 4, 0, add_special_tokens=True)
    # Without special tokens the same length is fine.
    assert len(build_fixed_prompts(tokenizers["wordpiece"], 2, 4, 0).prompts) == 4


def test_longer_than_model_max_length(tokenizers: dict[str, Any]) -> None:
    with pytest.raises(FixedLengthError, match=r"prompt_tokens=4097 is larger than .* model_max_length of 4096"):
        build_fixed_prompts(tokenizers["wordpiece"], 4097, 1, 0)
    # The tiny tokenizer's model_max_length is transformers' "no limit" placeholder: no error.
    assert tokenizers["tiny"].model_max_length > 1e9
    prompts = build_fixed_prompts(tokenizers["tiny"], 4097, 1, 0)
    assert prompts.prompts[0].token_ids is not None and len(prompts.prompts[0].token_ids) == 4097


@pytest.mark.parametrize(("prompt_tokens", "count", "match"), [(0, 4, "at least 1 token"), (8, 0, "at least 1 prompt")])
def test_bad_arguments(tokenizers: dict[str, Any], prompt_tokens: int, count: int, match: str) -> None:
    with pytest.raises(FixedLengthError, match=match):
        build_fixed_prompts(tokenizers["tiny"], prompt_tokens, count, 0)


def test_chat_needs_a_template(tokenizers: dict[str, Any]) -> None:
    tok = copy.deepcopy(tokenizers["wordpiece"])
    tok.chat_template = None
    with pytest.raises(FixedLengthError, match="chat template"):
        build_fixed_prompts(tok, 64, 4, 0, chat=True)


def test_search_that_cannot_succeed_says_where_and_what_lengths(tokenizers: dict[str, Any]) -> None:
    """More one-token prompts than there are safe tokens: some prompt cannot be distinct."""
    tok = tokenizers["tiny"]
    pool = safe_pool(tok)
    with pytest.raises(FixedLengthError) as info:
        build_fixed_prompts(tok, 1, len(pool) + 1, 0)
    message = str(info.value)
    assert "could not build prompt fixed-" in message
    assert "with exactly 1 tokens" in message
    assert "lengths reached 1..1, closest [1]" in message
    assert "repeated earlier prompts" in message


def test_safe_pool(tokenizers: dict[str, Any]) -> None:
    for tok in tokenizers.values():
        pool = safe_pool(tok)
        assert pool == tuple(sorted(pool))
        assert not set(pool) & set(tok.all_special_ids)
        for i in pool:
            text = tok.decode([i])
            assert text.strip() and text.isprintable()
            assert tok(text, add_special_tokens=False)["input_ids"] == [i]


def test_256_prompts_of_2048_tokens_are_exact_and_quiet(tokenizers: dict[str, Any]) -> None:
    tok = tokenizers["tiny"]
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        prompts = build_fixed_prompts(tok, 2048, 256, 0, chat=True)
    assert out.getvalue() == "" and err.getvalue() == ""
    assert len({p.text for p in prompts.prompts}) == 256
    assert all(p.token_ids is not None and len(p.token_ids) == 2048 for p in prompts.prompts)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(TOKENIZERS),
    length=st.integers(min_value=1, max_value=400),
    seed=st.integers(min_value=0, max_value=2**32),
    chat=st.booleans(),
    add_special_tokens=st.booleans(),
)
def test_any_length_is_exact(
    tokenizers: dict[str, Any], name: str, length: int, seed: int, chat: bool, add_special_tokens: bool
) -> None:
    tok = tokenizers[name]
    if length <= _overhead(tok, chat, add_special_tokens):
        with pytest.raises(FixedLengthError, match="too small"):
            build_fixed_prompts(tok, length, 4, seed, chat=chat, add_special_tokens=add_special_tokens)
        return
    prompts = build_fixed_prompts(tok, length, 4, seed, chat=chat, add_special_tokens=add_special_tokens)
    for p in prompts.prompts:
        assert p.token_ids == tuple(_seen(tok, p.text, chat, add_special_tokens))
        assert len(p.token_ids) == length
