"""Every command example in the README and the docs runs as written, or is listed here with why it cannot run on
this machine (a GPU, the internet, a cluster, package installs, minutes of training).

Examples run in order, in one working directory shared by all files (so ``runs/b8`` written by one example is
there for the next), through ``bash`` with ``capbench`` and ``python`` bound to this interpreter. Placeholders
are bound to real local things (``DIR`` → the demo model, ``/models/Qwen3-30B-A3B`` → a tiny local model, the
mock server's URL, files such as ``my_run.yaml`` written first). ``capbench run`` examples are capped in size
(3 requests, 8 tokens, 2 s) so the suite stays short: the flags, files and outputs are what is checked. An example
that no rule covers fails the test: a new example must either run or say why it cannot.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from capbench.runners.vllm.server import free_port
from tests.support.paths import DATA, REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DOCUMENTS = (
    "README.md",
    "docs/accuracy.md",
    "docs/hardware.md",
    "docs/loadgen.md",
    "docs/sweep.md",
    "docs/capacity.md",
    "docs/vllm.md",
    "docs/environments.md",
    "docs/demo_model.md",
    "leaderboard/README.md",
    "results/README.md",
)

NOT_HERE: tuple[tuple[str, str], ...] = (
    (r"^make (lock|test-latest)\b", "resolves the newest releases on PyPI: needs the internet"),
    (r"^make ", "set-up: CI runs `make test` itself; `make demo` is `capbench run` + `capbench export`, both run here"),
    (r"^(\.venv/bin/)?pip install", "installs packages"),
    (r"--runner vllm", "launches or attaches to vLLM (a GPU, a hub id or a remote server); the vLLM CPU build runs "
     "in tests/integration/runners/test_vllm_runner.py"),
    (r"--task gsm8k", "lm-eval downloads the gsm8k data: needs the internet"),
    (r"--executor ray", "needs a Ray cluster; tests/integration/sweep/test_sweep_ray.py starts a local one"),
    (r"^capbench sweep sweeps/demo-moe-cpu\.yaml --out", "the shipped sweep (13 points with vLLM): it produced "
     "results/; its dry run runs here, and tests/integration/sweep runs sweeps end to end"),
    (r"^cp results/", "part of regenerating results/ (the shipped sweep)"),
    (r"^capbench leaderboard (?!.*--build-space)", "serves until stopped; tests/integration/leaderboard/"
     "test_leaderboard_browser.py drives it in Chromium"),
    (r"^cd space && git", "git and a push to a Hugging Face Space"),
    (r"scripts/train_demo_moe\.py", "trains the demo model (minutes of CPU)"),
    (r"benchmarks/client_capacity\.py", "a benchmark (minutes); its figures are quoted in the README"),
    (r"^capbench capacity", "a search of several runs against a server (a minute or more); "
     "tests/integration/capacity runs it against the mock server's load model, and test_vllm_workloads.py on vLLM"),
)  # fmt: skip
"""``(pattern, why)``: examples that cannot run here."""

MOCK_SERVER = "python -m capbench.testing.mock_server"


@dataclass(frozen=True)
class Example:
    document: str
    line: int
    command: str

    @property
    def id(self) -> str:
        return f"{self.document}:{self.line}"


def extract(document: str) -> list[Example]:
    """The shell commands of ``document``'s bash blocks: continuations joined, comments and blank lines dropped."""
    out: list[Example] = []
    lines = (REPO / document).read_text().splitlines()
    in_block = False
    pending = ""
    start = 0
    for number, line in enumerate(lines, 1):
        if line.startswith("```"):
            in_block = line.strip() in ("```bash", "```sh", "```shell") if not in_block else False
            continue
        if not in_block:
            continue
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        text = " ".join(shlex.split(pending + line, comments=True, posix=False))
        pending = ""
        if text:
            out.append(Example(document, start, text.removeprefix(".venv/bin/")))
    return out


EXAMPLES = [example for document in DOCUMENTS for example in extract(document)]


def why_not_here(command: str) -> str | None:
    for pattern, why in NOT_HERE:
        if re.search(pattern, command):
            return why
    return None


def test_the_documents_hold_examples() -> None:
    assert len(EXAMPLES) > 50 and sum(e.document == "README.md" for e in EXAMPLES) > 30


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, capbench_cache: Path) -> Iterator[Path]:
    """The shared working directory, with the files the examples name."""
    work = tmp_path_factory.mktemp("doc-examples")
    (work / "sweeps").symlink_to(REPO / "sweeps")
    (work / "results").mkdir()
    shutil.copy(REPO / "results" / "results.csv", work / "results" / "results.csv")
    (work / "my_run.yaml").write_text("task: none\nnum_requests: 3\nmax_tokens: 8\nconcurrency: 2\n")
    profile = yaml.safe_load((REPO / "hardware_profiles" / "h100-sxm.yaml").read_text())
    profile.update(id="my-gpu", name="My GPU", aliases=["My GPU"])
    (work / "my-gpu.yaml").write_text(yaml.safe_dump(profile))
    data = work / "data.jsonl"
    data.write_text("".join(f'{{"q": "What is {i} plus {i}?", "a": "{2 * i}"}}\n' for i in range(4)))
    task = (
        "task: my_task\ndataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {data}\n"
        "test_split: test\noutput_type: generate_until\n"
        'doc_to_text: "Question: {{q}}\\nAnswer:"\ndoc_to_target: "{{a}}"\n'
        "generation_kwargs:\n  until: ['Question:']\n  max_gen_toks: 16\n  do_sample: false\n"
        "metric_list:\n  - metric: exact_match\n    aggregation: mean\n    higher_is_better: true\n"
        "metadata:\n  version: 1.0\n"
    )
    (work / "my_task.yaml").write_text(task)
    trace = [{"timestamp": 100 * i, "input_length": 40 + i, "output_length": 4, "hash_ids": [i % 2]} for i in range(4)]
    (work / "mooncake_trace.jsonl").write_text("".join(json.dumps(entry) + "\n" for entry in trace))
    (work / "path" / "to").mkdir(parents=True)
    (work / "path" / "to" / "my_task.yaml").write_text(task)
    shutil.copy(DATA / "models" / "qwen3-30b-a3b.json", work / "path" / "to" / "config.json")
    yield work


@dataclass
class Servers:
    """The mock servers the examples started, and the URL each example's port stands for."""

    urls: dict[str, str] = field(default_factory=dict)
    procs: list[subprocess.Popen[str]] = field(default_factory=list)


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    started = Servers()
    yield started
    for proc in started.procs:
        proc.terminate()
        proc.wait(timeout=30)


def capped(command: str) -> str:
    """A ``capbench run`` example at a size a test can afford: 3 requests (or 2 s), at most 8 new tokens."""
    if not command.startswith("capbench run"):
        return command
    if "--duration-s" in command:
        command = re.sub(r"--duration-s \S+", "--duration-s 2", command)
    elif "--num-requests" in command:
        command = re.sub(r"--num-requests \S+", "--num-requests 3", command)
    elif not command.split()[2:3] or not command.split()[2].endswith(".yaml"):
        command += " --num-requests 3"
    return re.sub(r"--max-tokens \d+", "--max-tokens 8", command)


def bind(command: str, tiny_model_dir: Path, urls: dict[str, str]) -> str:
    """Placeholders → real local things."""
    command = command.replace("/models/Qwen3-30B-A3B", str(tiny_model_dir))
    command = re.sub(r"--model DIR\b", f"--model {REPO / 'capbench' / 'models' / 'demo_moe'}", command)
    for placeholder, url in urls.items():
        command = command.replace(placeholder, url)
    return command


def start_mock_server(command: str, servers: Servers) -> None:
    """``python -m capbench.testing.mock_server --port P ... [&]``: started as written on a free port; the URL it
    prints replaces ``http://127.0.0.1:P`` in later examples (``--port 0``: started, checked and stopped)."""
    args = shlex.split(command.rstrip("&").strip())
    port_index = args.index("--port") + 1
    asked = args[port_index]
    args[port_index] = str(free_port())
    proc = subprocess.Popen([sys.executable, *args[1:]], stdout=subprocess.PIPE, text=True)
    servers.procs.append(proc)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:"), url
    if asked != "0":
        servers.urls[f"http://127.0.0.1:{asked}"] = url


@pytest.mark.parametrize("example", EXAMPLES, ids=[example.id for example in EXAMPLES])
def test_example(example: Example, workdir: Path, tiny_model_dir: Path, capbench_cache: Path, servers: Servers) -> None:
    why = why_not_here(example.command)
    if why is not None:
        pytest.skip(f"not run here: {why}")
    if example.command.startswith(MOCK_SERVER):
        start_mock_server(example.command, servers)
        return
    command = bind(capped(example.command), tiny_model_dir, servers.urls)
    prelude = f'capbench() {{ "{sys.executable}" -m capbench "$@"; }}\npython() {{ "{sys.executable}" "$@"; }}\n'
    env = {**os.environ, "CAPBENCH_CACHE_DIR": str(capbench_cache), "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        ["bash", "-c", prelude + command], cwd=workdir, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, (
        f"{example.id}: {command}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    )
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
