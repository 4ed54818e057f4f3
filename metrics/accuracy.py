"""Accuracy of a run, from its scored request records and lm-eval's figures in ``run.json``.

``run.json`` ``accuracy`` holds what lm-eval reported (``metric``, ``value``, ``stderr``, ``n``,
``no_answer_rate``). The records of ``requests.jsonl`` hold each sample's ``score`` and extracted ``answer``
(null: nothing extracted). This module recounts from the records, so the two can be checked against each other:

- samples = distinct ``sample_id`` among measured records (repeats of one sample count once);
- ``value_recount`` = Σ score / samples (the mean lm-eval uses for ``mean``-aggregated metrics; a failed request
  scores 0, it is never dropped); null when any sample has no score (the run was interrupted before scoring);
- ``no_answer_rate_recount`` = samples whose answer is null / samples;
- ``failed_requests`` = measured records with an error.

When lm-eval aggregates otherwise (a group's weighted mean, a non-mean metric), the recount can differ from
``value``; ``recount_matches`` says whether it agrees within 1e-9.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from capbench.records.columns import RequestChunk, request_chunks


class AccuracyTally:
    """Each sample's last score and answer, and the failed-request count, over request chunks (any request type)."""

    def __init__(self) -> None:
        self.scores: dict[str, float | None] = {}
        self.answers: dict[str, Any] = {}
        self.failed = 0

    def add(self, chunk: RequestChunk) -> None:
        if chunk.sample_id is None or chunk.score is None or chunk.answer is None:
            return
        for i in np.flatnonzero(~chunk.warmup).tolist():
            sample = chunk.sample_id[i]
            if sample is None:
                continue
            sid = str(sample)
            if chunk.failed[i]:
                self.failed += 1
            score = chunk.score[i]
            self.scores[sid] = None if score is None else float(score)
            self.answers[sid] = chunk.answer[i]

    def result(self, manifest: Mapping[str, Any]) -> dict[str, Any] | None:
        """``summary.json`` ``accuracy``: lm-eval's figures plus the recount (None when the run had no task)."""
        reported = manifest.get("accuracy")
        spec_task = ((manifest.get("load") or {}).get("dataset") or {}).get("task")
        if reported is None and spec_task is None:
            return None
        scores, answers = self.scores, self.answers
        n = len(scores)
        known = [s for s in scores.values() if s is not None]
        recount = sum(known) / n if n and len(known) == n else None
        out: dict[str, Any] = {
            "task": (reported or {}).get("task", spec_task),
            "metric": None,
            "value": None,
            "stderr": None,
            "n": None,
            "no_answer_rate": None,
            **{k: v for k, v in (reported or {}).items() if k in ("metric", "value", "stderr", "n", "no_answer_rate")},
            "samples_recorded": n,
            "value_recount": recount,
            "no_answer_rate_recount": sum(a is None for a in answers.values()) / n
            if n and recount is not None
            else None,
            "failed_requests": self.failed,
            "recount_matches": None,
        }
        if out["value"] is not None and recount is not None:
            out["recount_matches"] = abs(float(out["value"]) - recount) <= 1e-9
        if reported is None:
            out["note"] = "the task was not scored (the run ended before lm-eval scored it)"
        return out


def accuracy_summary(manifest: Mapping[str, Any], requests: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """``summary.json`` ``accuracy``: lm-eval's figures plus the recount (None when the run had no task)."""
    tally = AccuracyTally()
    if manifest.get("accuracy") is not None or ((manifest.get("load") or {}).get("dataset") or {}).get("task"):
        for chunk in request_chunks(requests):
            tally.add(chunk)
    return tally.result(manifest)
