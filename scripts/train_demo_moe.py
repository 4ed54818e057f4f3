#!/usr/bin/env python
"""Train the demo tiny MoE (transformers ``qwen3_moe``) on offline GSM8K-format arithmetic, from scratch, on CPU.

    python scripts/train_demo_moe.py --out capbench/models/demo_moe [--seed 0] [--steps N] [--threads 2]

Everything is offline and deterministic for a given seed, thread count and library versions:

1. Data: ``generate_problems("train", steps * batch_size)`` from :mod:`capbench.tasks.arithmetic` (every training
   example is seen once); prompt ``PROMPT_TEMPLATE.format(question=...)``, target ``" " + solution`` + EOS.
2. Tokenizer: byte-level BPE trained on the training text, every digit its own token, special tokens
   ``<|endoftext|>`` (EOS and PAD), ``<|im_start|>``, ``<|im_end|>``, with a ChatML chat template.
3. Model: Qwen3-MoE, every layer MoE (8 experts, top-2, ``norm_topk_prob``), fp32, random init from the seed.
4. Training: AdamW, linear warm-up then cosine decay, gradient clipping, cross-entropy on the target tokens only
   (prompt and padding masked; the LM head runs on those positions only) plus the router load-balancing loss
   (``router_aux_loss_coef``). The routers learn at a tenth of the learning rate (``--router-lr-scale``): their
   logits stay small, so each token's two experts get comparable weights and both matter, which is what makes
   accuracy fall clearly when ``top_k`` is changed at inference (see docs/demo_model.md).
5. Evaluation: greedy generation on ``generate_problems("test", eval_size)`` (prompt without special tokens, up to
   32 new tokens or EOS) with the routers' ``top_k`` set to 1, 2, 4 and 8; the answer is the number after the first
   ``####`` (:func:`capbench.tasks.extract.extract_gsm8k_answer`), compared with
   :func:`capbench.tasks.extract.numbers_match`. Also the expert-usage histogram at top_k=2.
6. Output: the checkpoint (config, safetensors, generation config, tokenizer) and ``training_report.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# OpenMP threads sleep instead of spinning while they wait: with the default spin policy, two training threads on
# a 2-core machine that runs anything else slow down 10-40x. Set before torch loads its OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import tokenizers
import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig, PreTrainedTokenizerFast
from transformers.models.qwen3_moe.modeling_qwen3_moe import load_balancing_loss_func

from capbench.tasks.arithmetic import (
    ARITHMETIC_SEED,
    ARITHMETIC_VERSION,
    PROMPT_TEMPLATE,
    ArithmeticProblem,
    generate_problems,
)
from capbench.tasks.extract import EXTRACTION_VERSION, extract_gsm8k_answer, numbers_match

EOS_TOKEN = "<|endoftext|>"
SPECIAL_TOKENS = (EOS_TOKEN, "<|im_start|>", "<|im_end|>")
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
EVAL_TOP_K = (1, 2, 4, 8)
REPORT_FILE = "training_report.json"


def log(message: str) -> None:
    print(message, flush=True)


def build_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE on ``texts``, digits split into single tokens, wrapped for transformers."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS_TOKEN, pad_token=EOS_TOKEN)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def model_config(args: argparse.Namespace, vocab_size: int, eos_id: int) -> Any:
    return AutoConfig.for_model(
        "qwen3_moe",
        hidden_size=args.hidden_size,
        intermediate_size=4 * args.hidden_size,
        moe_intermediate_size=args.moe_intermediate_size,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        head_dim=args.hidden_size // args.heads,
        num_experts=args.experts,
        num_experts_per_tok=2,
        norm_topk_prob=True,
        decoder_sparse_step=1,
        mlp_only_layers=[],
        vocab_size=vocab_size,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
        router_aux_loss_coef=args.aux_coef,
        output_router_logits=False,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
    )


def encode(tok: PreTrainedTokenizerFast, problems: list[ArithmeticProblem]) -> tuple[list[list[int]], list[int]]:
    """Token ids (prompt + target + EOS) and the prompt length of every problem."""
    prompts = tok([PROMPT_TEMPLATE.format(question=p.question) for p in problems], add_special_tokens=False)
    targets = tok([" " + p.solution for p in problems], add_special_tokens=False)
    eos = tok.eos_token_id
    ids = [a + b + [eos] for a, b in zip(prompts["input_ids"], targets["input_ids"], strict=True)]
    return ids, [len(a) for a in prompts["input_ids"]]


def make_batches(
    ids: list[list[int]], prompt_lens: list[int], batch_size: int, pad_id: int, rng: random.Random
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Right-padded ``(input_ids, attention_mask, labels)`` batches; labels are -100 on prompt and padding.

    Examples are grouped by length within windows of 16 batches (less padding), then the batches are shuffled.
    """
    order = list(range(len(ids)))
    window = 16 * batch_size
    batches_idx: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: len(ids[i]))
        batches_idx.extend(chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size))
    rng.shuffle(batches_idx)
    batches = []
    for idx in batches_idx:
        width = max(len(ids[i]) for i in idx)
        input_ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        labels = torch.full((len(idx), width), -100, dtype=torch.long)
        for row, i in enumerate(idx):
            seq = torch.tensor(ids[i], dtype=torch.long)
            input_ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
            labels[row, prompt_lens[i] : len(seq)] = seq[prompt_lens[i] :]
        batches.append((input_ids, mask, labels))
    return batches


def losses(
    model: Any, input_ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cross-entropy on the target tokens, router load-balancing loss)`` of one batch.

    The same as ``Qwen3MoeForCausalLM(..., labels=labels, output_router_logits=True)`` (mean token cross-entropy
    with labels shifted by one; ``load_balancing_loss_func`` over the valid positions), except that the LM head
    runs only on the positions that have a target: the prompt's logits are never needed.
    """
    out = model.model(input_ids=input_ids, attention_mask=mask, output_router_logits=True)
    targets = labels[:, 1:]
    keep = targets != -100
    logits = model.lm_head(out.last_hidden_state[:, :-1][keep])
    ce = torch.nn.functional.cross_entropy(logits.float(), targets[keep])
    aux = load_balancing_loss_func(out.router_logits, model.config.num_experts, model.config.num_experts_per_tok, mask)
    assert isinstance(aux, torch.Tensor)  # an int only when no router logits come back
    return ce, aux


def lr_at(step: int, total: int, peak: float, warmup: int, final_ratio: float) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def set_top_k(model: Any, top_k: int) -> None:
    """Route every token to ``top_k`` experts (the routers read ``gate.top_k`` in forward)."""
    for layer in model.model.layers:
        layer.mlp.gate.top_k = top_k


@torch.no_grad()
def generate_answers(
    model: Any, tok: PreTrainedTokenizerFast, problems: list[ArithmeticProblem], max_new_tokens: int, batch: int
) -> list[str]:
    """Greedy completions (special tokens dropped) of the problems' prompts, batched with left padding."""
    tok.padding_side = "left"
    outputs: list[str] = []
    for start in range(0, len(problems), batch):
        chunk = problems[start : start + batch]
        enc = tok(
            [PROMPT_TEMPLATE.format(question=p.question) for p in chunk],
            add_special_tokens=False,
            padding=True,
            return_tensors="pt",
        )
        out = model.generate(
            **enc,
            do_sample=False,
            max_new_tokens=max_new_tokens,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )
        outputs.extend(tok.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True))
    tok.padding_side = "right"
    return outputs


@torch.no_grad()
def expert_histogram(
    model: Any, tok: PreTrainedTokenizerFast, problems: list[ArithmeticProblem], completions: list[str]
) -> list[list[int]]:
    """Tokens routed to each expert per layer (``[layer][expert]``) over prompts + completions, padding excluded."""
    gates = [layer.mlp.gate for layer in model.model.layers]
    counts = torch.zeros(len(gates), model.config.num_experts, dtype=torch.long)
    captured: list[torch.Tensor] = []
    handles = [g.register_forward_hook(lambda _m, _a, out: captured.append(out[2])) for g in gates]
    try:
        texts = [PROMPT_TEMPLATE.format(question=p.question) + c for p, c in zip(problems, completions, strict=True)]
        for start in range(0, len(texts), 64):
            enc = tok(texts[start : start + 64], add_special_tokens=False, padding=True, return_tensors="pt")
            captured.clear()
            model(**enc)
            valid = enc["attention_mask"].reshape(-1).bool()
            for layer, ids in enumerate(captured):
                counts[layer] += torch.bincount(ids[valid].reshape(-1), minlength=model.config.num_experts)
    finally:
        for h in handles:
            h.remove()
    return counts.tolist()


def problem_kinds(problem: ArithmeticProblem) -> list[str]:
    """Categories for the accuracy breakdown: the operation of the last step, two-step, decimal, negative."""
    steps = problem.solution.split("\n")[:-1]
    kinds = [{"+": "add", "-": "subtract", "*": "multiply", "/": "divide"}[steps[-1].split(" ")[1]]]
    if len(steps) > 1:
        kinds.append("two_step")
    if "." in problem.answer:
        kinds.append("decimal_answer")
    if problem.answer.startswith("-"):
        kinds.append("negative_answer")
    return kinds


def evaluate(
    model: Any, tok: PreTrainedTokenizerFast, problems: list[ArithmeticProblem], max_new_tokens: int
) -> tuple[dict[str, Any], list[list[int]]]:
    results: dict[str, Any] = {}
    histogram: list[list[int]] = []
    for k in EVAL_TOP_K:
        set_top_k(model, k)
        t0 = time.perf_counter()
        completions = generate_answers(model, tok, problems, max_new_tokens, batch=128)
        preds = [extract_gsm8k_answer(c) for c in completions]
        hits = [numbers_match(pred, p.answer) for pred, p in zip(preds, problems, strict=True)]
        correct = sum(hits)
        by_kind: dict[str, list[int]] = {}
        for hit, p in zip(hits, problems, strict=True):
            for kind in problem_kinds(p):
                by_kind.setdefault(kind, [0, 0])[0] += hit
                by_kind[kind][1] += 1
        no_answer = sum(pred is None for pred in preds)
        results[str(k)] = {
            "accuracy": correct / len(problems),
            "correct": correct,
            "no_answer_rate": no_answer / len(problems),
            "no_answer": no_answer,
            "accuracy_by_kind": {kind: round(c / n, 4) for kind, (c, n) in sorted(by_kind.items())},
            "count_by_kind": {kind: n for kind, (_, n) in sorted(by_kind.items())},
            "examples": [
                {"id": p.id, "gold": p.answer, "completion": c}
                for p, c in zip(problems[:3], completions[:3], strict=True)
            ],
        }
        log(
            f"eval top_k={k}: accuracy {correct}/{len(problems)} = {correct / len(problems):.3f}, "
            f"no answer {no_answer}, {time.perf_counter() - t0:.1f}s"
        )
        if k == 2:
            histogram = expert_histogram(model, tok, problems, completions)
    set_top_k(model, 2)
    return results, histogram


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="checkpoint directory (replaced)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--final-lr-ratio", type=float, default=0.05)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--router-lr-scale", type=float, default=0.1, help="router learning rate / --lr")
    p.add_argument("--aux-coef", type=float, default=0.05, help="router load-balancing loss coefficient")
    p.add_argument("--hidden-size", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--experts", type=int, default=8)
    p.add_argument("--moe-intermediate-size", type=int, default=128)
    p.add_argument("--vocab-size", type=int, default=768)
    p.add_argument("--data-seed", type=int, default=ARITHMETIC_SEED, help="seed of the arithmetic generator")
    p.add_argument("--eval-size", type=int, default=1000)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument(
        "--eval-every", type=int, default=500, help="also evaluate top_k=2 every N steps (0: only at the end)"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wall_start = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    rng = random.Random(args.seed)

    n_train = args.steps * args.batch_size
    train = generate_problems("train", n_train, seed=args.data_seed)
    test = generate_problems("test", args.eval_size, seed=args.data_seed)
    tok_texts = [PROMPT_TEMPLATE.format(question=p.question) + " " + p.solution for p in train[:20000]]
    tok = build_tokenizer(tok_texts, args.vocab_size)
    eos_id = tok.eos_token_id
    ids, prompt_lens = encode(tok, train)
    batches = make_batches(ids, prompt_lens, args.batch_size, eos_id, rng)
    n_tokens = sum(len(x) for x in ids)
    log(
        f"data: {n_train} train problems ({n_tokens} tokens, {n_tokens / n_train:.1f} per problem), "
        f"{len(test)} test problems, vocab {len(tok)}, {time.perf_counter() - wall_start:.1f}s"
    )

    config = model_config(args, len(tok), eos_id)
    torch.manual_seed(args.seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: qwen3_moe, {n_params / 1e6:.2f}M parameters, experts impl {config._experts_implementation}")

    routers = [p for n, p in model.named_parameters() if n.endswith("mlp.gate.weight")]
    others = [(n, p) for n, p in model.named_parameters() if not n.endswith("mlp.gate.weight")]
    decay = [p for n, p in others if p.ndim >= 2 and "norm" not in n]
    no_decay = [p for n, p in others if not (p.ndim >= 2 and "norm" not in n)]
    groups: list[dict[str, Any]] = [
        {"params": decay, "weight_decay": args.weight_decay, "lr_scale": 1.0},
        {"params": no_decay, "weight_decay": 0.0, "lr_scale": 1.0},
        {"params": routers, "weight_decay": args.weight_decay, "lr_scale": args.router_lr_scale},
    ]
    opt = torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.98), eps=1e-8)
    model.train()
    train_start = time.perf_counter()
    window_ce, window_aux, window_n = 0.0, 0.0, 0
    final_ce = float("nan")
    curve: list[dict[str, float]] = []
    for step, (input_ids, mask, labels) in enumerate(batches):
        lr = lr_at(step, len(batches), args.lr, args.warmup, args.final_lr_ratio)
        for group in opt.param_groups:
            group["lr"] = lr * group["lr_scale"]
        ce, aux_loss = losses(model, input_ids, mask, labels)
        (ce + args.aux_coef * aux_loss).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        aux = float(aux_loss.detach())
        window_ce += float(ce.detach())
        window_aux += aux
        window_n += 1
        if (step + 1) % args.log_every == 0 or step + 1 == len(batches):
            elapsed = time.perf_counter() - train_start
            eta = elapsed / (step + 1) * (len(batches) - step - 1)
            final_ce = window_ce / window_n
            log(
                f"step {step + 1}/{len(batches)} loss {final_ce:.4f} aux {window_aux / window_n:.3f} "
                f"lr {lr:.2e} elapsed {elapsed:.0f}s eta {eta:.0f}s"
            )
            window_ce, window_aux, window_n = 0.0, 0.0, 0
        if args.eval_every and (step + 1) % args.eval_every == 0 and step + 1 < len(batches):
            model.eval()
            completions = generate_answers(model, tok, test, args.max_new_tokens, batch=128)
            correct = sum(
                numbers_match(extract_gsm8k_answer(c), p.answer) for c, p in zip(completions, test, strict=True)
            )
            curve.append({"step": step + 1, "accuracy_top_k2": correct / len(test)})
            log(f"step {step + 1}: test accuracy (top_k=2) {correct}/{len(test)}")
            model.train()
    train_seconds = time.perf_counter() - train_start
    model.eval()

    eval_start = time.perf_counter()
    results, histogram = evaluate(model, tok, test, args.max_new_tokens)
    eval_seconds = time.perf_counter() - eval_start

    out_dir: Path = args.out
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}-"))
    try:
        set_top_k(model, 2)
        model.generation_config = GenerationConfig(
            bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=eos_id, do_sample=False, max_new_tokens=32
        )
        model.save_pretrained(tmp)
        tok.padding_side = "right"
        tok.save_pretrained(tmp)
        tmp.chmod(0o755)  # mkdtemp makes it private; the checkpoint is shipped and read by other processes
        report = {
            "model_type": "qwen3_moe",
            "command": " ".join(["python", "scripts/train_demo_moe.py", *(sys.argv[1:] if argv is None else argv)]),
            "seed": args.seed,
            "steps": len(batches),
            "batch_size": args.batch_size,
            "learning_rate": args.lr,
            "warmup_steps": args.warmup,
            "final_lr_ratio": args.final_lr_ratio,
            "weight_decay": args.weight_decay,
            "router_aux_loss_coef": args.aux_coef,
            "router_lr_scale": args.router_lr_scale,
            "threads": args.threads,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "parameters": n_params,
            "architecture": {
                "hidden_size": args.hidden_size,
                "num_hidden_layers": args.layers,
                "num_attention_heads": args.heads,
                "num_key_value_heads": args.kv_heads,
                "num_experts": args.experts,
                "num_experts_per_tok": 2,
                "moe_intermediate_size": args.moe_intermediate_size,
                "vocab_size": len(tok),
            },
            "train_problems": n_train,
            "train_tokens": n_tokens,
            "final_train_loss": final_ce,
            "train_seconds": round(train_seconds, 1),
            "eval_seconds": round(eval_seconds, 1),
            "versions": {
                "python": sys.version.split()[0],
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "tokenizers": tokenizers.__version__,
            },
            "arithmetic_version": ARITHMETIC_VERSION,
            "arithmetic_seed": args.data_seed,
            "extraction_version": EXTRACTION_VERSION,
            "test_size": len(test),
            "max_new_tokens": args.max_new_tokens,
            "accuracy": {k: v["accuracy"] for k, v in results.items()},
            "no_answer_rate": {k: v["no_answer_rate"] for k, v in results.items()},
            "eval": results,
            "expert_tokens_top_k2": histogram,
            "learning_curve": curve,
        }
        report["wall_seconds"] = round(time.perf_counter() - wall_start, 1)
        (tmp / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
        for f in tmp.iterdir():
            f.chmod(0o644)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    size = dir_size(out_dir)
    log(
        f"saved {out_dir} ({size / 1e6:.2f} MB); wall {report['wall_seconds']:.0f}s; accuracy by top_k "
        + ", ".join(f"{k}: {v:.3f}" for k, v in report["accuracy"].items())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
