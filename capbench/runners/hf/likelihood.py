"""Continuation log-probabilities from a forward pass's logits (the hf runner's log-likelihood requests).

A log-likelihood request's prompt is ``context + continuation`` (``m`` continuation tokens). In a left-padded batch
every row ends at the last column, so the logits that predict the continuation are the ``m`` positions before the
last one; the pass keeps the last ``k`` positions' logits (``k`` ≥ m + 1 for every row). For continuation token
``j`` (0-based) the predicting position is kept index ``k - m - 1 + j``.

- ``continuation_logprob`` = Σ_j log_softmax(logits)[position_j, token_j], in nats: the log-softmax in float32,
  each token's value summed in float64 (the same sum a server's per-token log-probabilities give);
- ``is_greedy``: every continuation token is the argmax of its position's logits (lm-eval's definition; a tie
  resolves to the lowest id, as ``torch.argmax`` does).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def continuation_scores(logits: torch.Tensor, continuations: Sequence[Sequence[int]]) -> list[tuple[float, bool]]:
    """``(continuation_logprob, is_greedy)`` of each row of ``logits`` ([rows, k, vocab], the last ``k``
    positions) for its ``continuations`` row (token ids)."""
    rows, kept, _ = logits.shape
    if rows != len(continuations):
        raise ValueError(f"{rows} rows of logits for {len(continuations)} continuations")
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    out: list[tuple[float, bool]] = []
    for row, tokens in enumerate(continuations):
        m = len(tokens)
        if not 0 < m < kept:
            raise ValueError(f"a continuation of {m} tokens needs 1 ≤ m < {kept} kept positions")
        window = logprobs[row, kept - m - 1 : kept - 1]
        target = torch.tensor(list(tokens), dtype=torch.long, device=window.device)
        picked = window.gather(-1, target.unsqueeze(-1)).squeeze(-1)
        greedy = bool((window.argmax(dim=-1) == target).all())
        out.append((sum(float(v) for v in picked.tolist()), greedy))
    return out
