"""Local log-likelihood tasks written by the tests: an lm-eval task YAML in MMLU's format over local data files,
and a perplexity (``loglikelihood_rolling``) task in wikitext's shape. Nothing is downloaded: the questions are
capbench's arithmetic problems, the files are written into the test's directory."""

from __future__ import annotations

import json
from pathlib import Path

from capbench.tasks.arithmetic import generate_problems
from capbench.tasks.arithmetic_mc import generate_choice_problems

MMLU_TASK = "local_mmlu_arithmetic"
ROLLING_TASK = "local_arithmetic_perplexity"


def write_mmlu_task(folder: Path, samples: int, *, fewshot: int = 2) -> Path:
    """MMLU's data format (``question``, ``subject``, ``choices``, ``answer`` as an index) in ``test`` and ``dev``
    JSONL files, and lm-eval's MMLU prompt (the question, lettered options, ``Answer:``; the choices scored are
    the letters) with ``fewshot`` examples from ``dev``. Returns the YAML's path."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for split, n in (("test", samples), ("dev", 5)):
        rows = [
            {
                "question": p.question,
                "subject": "elementary_arithmetic",
                "choices": [c.rsplit("#### ", 1)[1] for c in p.choices],
                "answer": p.label,
            }
            for p in generate_choice_problems("test" if split == "test" else "train", n, 7)
        ]
        path = folder / f"{split}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        files[split] = path
    task = folder / f"{MMLU_TASK}.yaml"
    task.write_text(
        f"task: {MMLU_TASK}\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {files['test']}\n    dev: {files['dev']}\n"
        "test_split: test\n"
        "fewshot_split: dev\n"
        "fewshot_config:\n  sampler: first_n\n"
        f"num_fewshot: {fewshot}\n"
        "output_type: multiple_choice\n"
        'doc_to_text: "{{question.strip()}}\\nA. {{choices[0]}}\\nB. {{choices[1]}}\\nC. {{choices[2]}}\\n'
        'D. {{choices[3]}}\\nAnswer:"\n'
        "doc_to_choice: ['A', 'B', 'C', 'D']\n"
        "doc_to_target: answer\n"
        "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n"
        "metadata:\n  version: 1.0\n",
        encoding="utf-8",
    )
    return task


def write_rolling_task(folder: Path, samples: int) -> Path:
    """A perplexity task in wikitext's shape: each document is a few worked arithmetic solutions, scored whole by
    rolling log-likelihood (``word_perplexity``, ``byte_perplexity``, ``bits_per_byte``). Returns the YAML's path."""
    folder.mkdir(parents=True, exist_ok=True)
    problems = generate_problems("test", samples * 3)
    docs = [
        {"page": "\n".join(f"Question: {p.question}\nAnswer: {p.solution}" for p in problems[i * 3 : i * 3 + 3])}
        for i in range(samples)
    ]
    data = folder / "pages.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    task = folder / f"{ROLLING_TASK}.yaml"
    task.write_text(
        f"task: {ROLLING_TASK}\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {data}\n"
        "test_split: test\n"
        "output_type: loglikelihood_rolling\n"
        'doc_to_text: ""\n'
        'doc_to_target: "{{page}}"\n'
        "metric_list:\n  - metric: word_perplexity\n  - metric: byte_perplexity\n  - metric: bits_per_byte\n"
        "metadata:\n  version: 1.0\n",
        encoding="utf-8",
    )
    return task
