"""Tiny MoE models with random weights and a locally trained tokenizer, built offline.

The embedded default (:class:`TinyMoESpec`, :func:`build_tiny_moe`) is a tiny Qwen3-MoE in fp32. For tests
that need other architectures, :func:`build_tiny_family` builds one tiny model per family in
:data:`TINY_FAMILIES`: ``qwen3_moe`` (the default itself), ``mixtral`` (fp32, every layer MoE) and
``deepseek_v2`` (bf16, multi-head latent attention, a dense first layer and a shared expert).

Every model is built deterministically from a seed (same seed, same torch and transformers versions -> identical
weights and tokenizer), nothing downloaded, a few MB on disk, built in about a second and cached under
``<cache>/models/<name>-<hash>`` where the hash covers the spec and the library versions.

The models are built with the dev environment's transformers (5.23) and served by vLLM 0.32, which pins an older
transformers (< 5.20) in its own environment. The ``config.json`` files written here load in transformers 5.19 with
every key unchanged, so they are written as transformers saves them, without fix-ups.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from capbench.errors import CapbenchError
from capbench.paths import cache_dir

EOS_TOKEN = "<|endoftext|>"
SPECIAL_TOKENS = (EOS_TOKEN, "<|im_start|>", "<|im_end|>")
SPEC_FILE = "capbench_tiny_spec.json"

#: The families :func:`build_tiny_family` builds (transformers ``model_type``).
TINY_FAMILIES: tuple[str, ...] = ("qwen3_moe", "mixtral", "deepseek_v2")

#: The dtype each family's weights are saved in. vLLM's CPU backend runs DeepSeek MLA in bf16 only.
TINY_FAMILY_DTYPES: Mapping[str, str] = MappingProxyType(
    {"qwen3_moe": "float32", "mixtral": "float32", "deepseek_v2": "bfloat16"}
)

_DTYPE_TAGS = {"float32": "fp32", "bfloat16": "bf16"}


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

    def config_kwargs(self) -> dict[str, Any]:
        """The ``AutoConfig.for_model("qwen3_moe", ...)`` arguments (token ids excluded)."""
        return {
            "hidden_size": self.hidden_size,
            "intermediate_size": 4 * self.hidden_size,
            "moe_intermediate_size": self.moe_intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "num_experts": self.num_experts,
            "num_experts_per_tok": self.num_experts_per_tok,
            "vocab_size": self.vocab_size,
            "max_position_embeddings": self.max_position_embeddings,
            "tie_word_embeddings": False,
            "norm_topk_prob": True,
            "decoder_sparse_step": 1,
            "mlp_only_layers": [],
        }


def _mixtral_config() -> dict[str, Any]:
    """Mixtral: GQA attention, every layer MoE, 8 experts of width ``intermediate_size``, top-2, no shared expert."""
    return {
        "hidden_size": 128,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 32,
        "num_local_experts": 8,
        "num_experts_per_tok": 2,
        "vocab_size": 512,
        "max_position_embeddings": 4096,
        "sliding_window": None,
        "tie_word_embeddings": False,
    }


def _deepseek_v2_config() -> dict[str, Any]:
    """DeepSeek-V2 with MLA: layer 0 dense, layers 1-2 MoE (8 routed experts, top-2, one shared expert).

    ``kv_lora_rank`` 512, ``qk_rope_head_dim`` 64 and ``num_key_value_heads == num_attention_heads`` are what
    vLLM's CPU MLA backend accepts; the other dims are small. ``q_lora_rank`` is set so the low-rank query path
    (``q_a_proj``/``q_b_proj``) is exercised too. ``n_group``/``topk_group`` are 1 (as in DeepSeek-V2-Lite), not
    null: vLLM always routes DeepSeek-V2 through grouped top-k and its CPU router asserts both are set; one group
    of all experts is plain top-k, which is what transformers' ``greedy`` method computes.
    """
    return {
        "hidden_size": 128,
        "intermediate_size": 256,
        "moe_intermediate_size": 64,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "q_lora_rank": 64,
        "kv_lora_rank": 512,
        "qk_nope_head_dim": 32,
        "qk_rope_head_dim": 64,
        "v_head_dim": 32,
        "n_routed_experts": 8,
        "num_experts_per_tok": 2,
        "n_shared_experts": 1,
        "first_k_dense_replace": 1,
        "moe_layer_freq": 1,
        "topk_method": "greedy",
        "n_group": 1,
        "topk_group": 1,
        "norm_topk_prob": False,
        "routed_scaling_factor": 1.0,
        "vocab_size": 512,
        "max_position_embeddings": 4096,
        "tie_word_embeddings": False,
    }


_FAMILY_CONFIGS: Mapping[str, Callable[[], dict[str, Any]]] = MappingProxyType(
    {"mixtral": _mixtral_config, "deepseek_v2": _deepseek_v2_config}
)


@dataclass(frozen=True)
class TinyFamilySpec:
    """A tiny model of one family in :data:`TINY_FAMILIES` other than the default (see :func:`build_tiny_family`).

    Its shape is fixed per family (the ``_<family>_config`` functions); only the seed varies.
    """

    model_type: str
    seed: int = 0

    def __post_init__(self) -> None:
        if self.model_type not in _FAMILY_CONFIGS:
            known = ", ".join(_FAMILY_CONFIGS)
            raise CapbenchError(f"no tiny spec for model_type {self.model_type!r}; known: {known}")

    @property
    def dtype(self) -> str:
        """The torch dtype name the weights are saved in."""
        return TINY_FAMILY_DTYPES[self.model_type]

    def config_kwargs(self) -> dict[str, Any]:
        """The ``AutoConfig.for_model(model_type, ...)`` arguments (token ids excluded)."""
        return _FAMILY_CONFIGS[self.model_type]()

    @property
    def vocab_size(self) -> int:
        return int(self.config_kwargs()["vocab_size"])

    @property
    def name(self) -> str:
        config = self.config_kwargs()
        experts = config.get("num_local_experts") or config.get("n_routed_experts")
        family = self.model_type.replace("_", "")
        dtype = _DTYPE_TAGS[self.dtype]
        return f"capbench-tiny-{family}-{dtype}-e{experts}k{config['num_experts_per_tok']}-s{self.seed}"

    def payload(self) -> dict[str, Any]:
        """Everything that determines the weights (what the cache hash and the spec file record)."""
        return {"model_type": self.model_type, "dtype": self.dtype, "seed": self.seed, "config": self.config_kwargs()}


def _versions() -> dict[str, str]:
    import tokenizers
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "tokenizers": tokenizers.__version__}


def _payload(spec: TinyMoESpec | TinyFamilySpec) -> dict[str, Any]:
    # The default's payload is asdict(spec), as it has always been: its cache directory name must not change.
    return asdict(spec) if isinstance(spec, TinyMoESpec) else spec.payload()


def spec_hash(spec: TinyMoESpec | TinyFamilySpec) -> str:
    """A short content hash of the spec and the library versions that determine the weights."""
    payload = json.dumps({"spec": _payload(spec), "versions": _versions()}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def tokenizer_corpus() -> list[str]:
    """The text the tokenizer is trained on: the shipped prompt set."""
    text = resources.files("capbench.data").joinpath("prompts.jsonl").read_text(encoding="utf-8")
    return [json.loads(line)["prompt"] for line in text.splitlines() if line.strip()]


def _train_tokenizer(vocab_size: int, out_dir: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
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


def _build_model(
    model_type: str, config_kwargs: Mapping[str, Any], dtype: str, seed: int, out_dir: Path, eos_token_id: int
) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(
        model_type,
        **config_kwargs,
        bos_token_id=eos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=eos_token_id,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    model.save_pretrained(out_dir)


def _build_cached(spec: TinyMoESpec | TinyFamilySpec, root: Path | None, force: bool) -> Path:
    """Build ``spec`` into ``<root>/<name>-<hash>`` unless it is already there; return that directory.

    The model is built in a temporary sibling directory and renamed into place, so a crash never leaves a
    half-built model.
    """
    root = root or cache_dir() / "models"
    target = root / f"{spec.name}-{spec_hash(spec)}"
    if target.is_dir() and (target / "config.json").is_file() and not force:
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{spec.name}-"))
    try:
        _train_tokenizer(spec.vocab_size, tmp)
        from transformers import AutoTokenizer

        eos_id = AutoTokenizer.from_pretrained(tmp).eos_token_id
        if isinstance(spec, TinyMoESpec):
            _build_model("qwen3_moe", spec.config_kwargs(), "float32", spec.seed, tmp, eos_id)
        else:
            _build_model(spec.model_type, spec.config_kwargs(), spec.dtype, spec.seed, tmp, eos_id)
        (tmp / SPEC_FILE).write_text(json.dumps(_payload(spec), indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def build_tiny_moe(spec: TinyMoESpec | None = None, root: Path | None = None, force: bool = False) -> Path:
    """Build (or reuse from the cache) the tiny MoE of ``spec``; return its model directory.

    The directory holds ``config.json``, ``model.safetensors`` and the tokenizer files. It is built in a
    temporary sibling directory and renamed into place, so a crash never leaves a half-built model.
    """
    return _build_cached(spec or TinyMoESpec(), root, force)


def build_tiny_family(model_type: str, root: Path | None = None, force: bool = False, seed: int = 0) -> Path:
    """Build (or reuse from the cache) the tiny model of family ``model_type``; return its model directory.

    ``qwen3_moe`` is the embedded default (:func:`build_tiny_moe`, fp32); ``mixtral`` is fp32 with every layer
    MoE; ``deepseek_v2`` is bf16 with MLA, a dense first layer and one shared expert. The directory name holds
    the family, the dtype, E, k and the seed; all families share the default's tokenizer.

    Raises:
        CapbenchError: ``model_type`` is not in :data:`TINY_FAMILIES`.
    """
    if model_type not in TINY_FAMILIES:
        raise CapbenchError(f"no tiny model for model_type {model_type!r}; known: {', '.join(TINY_FAMILIES)}")
    if model_type == "qwen3_moe":
        return build_tiny_moe(TinyMoESpec(seed=seed), root=root, force=force)
    return _build_cached(TinyFamilySpec(model_type, seed=seed), root, force)
