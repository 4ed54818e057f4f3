"""The embedded default model: a tiny Qwen3-MoE with random weights and a locally trained tokenizer.

Built deterministically from a seed (same seed, same torch and transformers versions -> identical weights and
tokenizer), nothing downloaded, a few MB on disk, built in about a second and cached under
``<cache>/models/<name>-<hash>`` where the hash covers the spec and the library versions.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from capbench.paths import cache_dir

EOS_TOKEN = "<|endoftext|>"
SPECIAL_TOKENS = (EOS_TOKEN, "<|im_start|>", "<|im_end|>")


@dataclass(frozen=True)
class TinyMoESpec:
    """Shape of the embedded tiny MoE (Qwen3-MoE architecture, every layer MoE)."""

    seed: int = 0
    hidden_size: int = 128
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    head_dim: int = 32
    moe_intermediate_size: int = 64
    num_experts: int = 8
    num_experts_per_tok: int = 2
    vocab_size: int = 512
    max_position_embeddings: int = 4096

    @property
    def name(self) -> str:
        return f"capbench-tiny-qwen3moe-e{self.num_experts}k{self.num_experts_per_tok}-s{self.seed}"


def _versions() -> dict[str, str]:
    import tokenizers
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "tokenizers": tokenizers.__version__}


def spec_hash(spec: TinyMoESpec) -> str:
    """A short content hash of the spec and the library versions that determine the weights."""
    payload = json.dumps({"spec": asdict(spec), "versions": _versions()}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def tokenizer_corpus() -> list[str]:
    """The text the tokenizer is trained on: the shipped prompt set."""
    text = resources.files("capbench.data").joinpath("prompts.jsonl").read_text(encoding="utf-8")
    return [json.loads(line)["prompt"] for line in text.splitlines() if line.strip()]


def _train_tokenizer(spec: TinyMoESpec, out_dir: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(tokenizer_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS_TOKEN, pad_token=EOS_TOKEN)
    fast.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    fast.save_pretrained(out_dir)


def _build_model(spec: TinyMoESpec, out_dir: Path, eos_token_id: int) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(
        "qwen3_moe",
        hidden_size=spec.hidden_size,
        intermediate_size=4 * spec.hidden_size,
        moe_intermediate_size=spec.moe_intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        head_dim=spec.head_dim,
        num_experts=spec.num_experts,
        num_experts_per_tok=spec.num_experts_per_tok,
        vocab_size=spec.vocab_size,
        max_position_embeddings=spec.max_position_embeddings,
        tie_word_embeddings=False,
        norm_topk_prob=True,
        decoder_sparse_step=1,
        mlp_only_layers=[],
        bos_token_id=eos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=eos_token_id,
    )
    torch.manual_seed(spec.seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(out_dir)


def build_tiny_moe(spec: TinyMoESpec | None = None, root: Path | None = None, force: bool = False) -> Path:
    """Build (or reuse from the cache) the tiny MoE of ``spec``; return its model directory.

    The directory holds ``config.json``, ``model.safetensors`` and the tokenizer files. It is built in a
    temporary sibling directory and renamed into place, so a crash never leaves a half-built model.
    """
    spec = spec or TinyMoESpec()
    root = root or cache_dir() / "models"
    target = root / f"{spec.name}-{spec_hash(spec)}"
    if target.is_dir() and (target / "config.json").is_file() and not force:
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{spec.name}-"))
    try:
        _train_tokenizer(spec, tmp)
        from transformers import AutoTokenizer

        eos_id = AutoTokenizer.from_pretrained(tmp).eos_token_id
        _build_model(spec, tmp, eos_id)
        (tmp / "capbench_tiny_spec.json").write_text(json.dumps(asdict(spec), indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
