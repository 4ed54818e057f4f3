"""The vLLM step recorder's own logic, without vLLM: ids, records, appends, the plugin switch."""

from __future__ import annotations

import json
import multiprocessing
import sys
from pathlib import Path

import pytest

from capbench.records.pass_codec import expand_pass
from capbench.runners.vllm import plugin
from capbench.runners.vllm.step_recorder import AppendOnlyLines, StepRecorder, capbench_request_id, is_warmup_id


@pytest.mark.parametrize(
    ("engine_id", "expected"),
    [
        ("cmpl-r0003-0-1a2b3c4d", "r0003"),
        ("chatcmpl-w0001-9f9f9f9f", "w0001"),
        ("r0012", "r0012"),
        ("cmpl-r123456-0", "r123456"),
        ("cmpl-abcdef-0", "cmpl-abcdef-0"),  # not capbench's: kept as is
        ("cmpl-xr0003-0", "cmpl-xr0003-0"),  # no id boundary
        ("cmpl-r003-0", "cmpl-r003-0"),  # too few digits
    ],
)
def test_capbench_request_id(engine_id: str, expected: str) -> None:
    assert capbench_request_id(engine_id) == expected


def test_warmup_ids() -> None:
    assert is_warmup_id("w0000")
    assert not is_warmup_id("r0000")
    assert not is_warmup_id("cmpl-w0000-0")  # only after mapping
    assert not is_warmup_id("whatever")


def read(path: Path) -> list[dict]:
    """The records as written (schema 3: the integer lists as base64 varint strings), lists restored."""
    return [expand_pass(json.loads(line)) for line in path.read_text().splitlines()]


def test_step_record_fields(tmp_path: Path) -> None:
    out = tmp_path / "passes.jsonl"
    rec = StepRecorder(AppendOnlyLines(out), dp_rank=1)
    step = rec.begin([("cmpl-r0000-0-aa", 17, 0), ("cmpl-r0001-0-bb", 1, 20), ("cmpl-r0002-0-cc", 0, 5)], t_start_ns=10)
    assert step is not None and step.num_tokens == 18
    written = rec.finish(["cmpl-r0001-0-bb"], [[3, 0, 1, 0], [0, 0, 0, 0]], t_end_ns=25)
    assert written is not None and written["reqs_b64"] == "EQABFA==" and "reqs" not in written
    record = read(out)[0]
    assert record == expand_pass(written)
    assert record["reqs"] == [[17, 0], [1, 20]]  # a request with 0 tokens scheduled is not in the step
    assert record["req_ids"] == ["r0000", "r0001"]
    assert record["sampled"] == 1 and record["sampled_ids"] == ["r0001"]
    assert record["experts_active"] == [2, 0]
    assert (record["t_start_ns"], record["t_end_ns"], record["dp_rank"], record["step"]) == (10, 25, 1, 0)
    assert record["warmup"] is False


def test_unobserved_routing_is_null_not_zero(tmp_path: Path) -> None:
    rec = StepRecorder(AppendOnlyLines(tmp_path / "p.jsonl"))
    rec.begin([("w0000", 4, 0)])
    record = rec.finish(["w0000"], None)
    assert record is not None
    assert record["experts_active_b64"] is None and record["expert_tokens_b64"] is None
    assert record["warmup"] is True


def test_empty_and_aborted_steps_write_nothing(tmp_path: Path) -> None:
    out = tmp_path / "p.jsonl"
    rec = StepRecorder(AppendOnlyLines(out))
    assert rec.begin([]) is None
    assert rec.finish([], None) is None
    rec.begin([("r0000", 3, 0)])
    rec.abort()
    assert rec.finish(["r0000"], None) is None
    rec.begin([("r0000", 3, 0)])
    rec.finish(["r0000"], None)
    assert [r["step"] for r in read(out)] == [0]


def _append_many(path: str, rank: int) -> None:
    rec = StepRecorder(AppendOnlyLines(Path(path)), dp_rank=rank)
    for _ in range(300):
        rec.begin([(f"r{rank:04d}", 1000, 0)])
        rec.finish([f"r{rank:04d}"], [[1] * 64] * 8)


def test_replicas_share_one_file_without_torn_lines(tmp_path: Path) -> None:
    """Data-parallel replicas are separate processes appending to one passes.jsonl."""
    out = tmp_path / "passes.jsonl"
    procs = [multiprocessing.get_context("fork").Process(target=_append_many, args=(str(out), r)) for r in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    records = read(out)  # every line parses
    assert len(records) == 900
    for rank in range(3):
        steps = [r["step"] for r in records if r["dp_rank"] == rank]
        assert steps == list(range(300))


def test_plugin_is_inert_without_its_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """vLLM loads the plugin in every process: without the variable it installs nothing; with it, the recorder
    is installed for that directory."""
    from capbench.runners.vllm import adapter

    calls: list[tuple[Path, bool]] = []
    monkeypatch.setattr(adapter, "install", lambda path, record_experts=True: calls.append((path, record_experts)))
    meta_path = list(sys.meta_path)
    monkeypatch.delenv(plugin.ENV_RECORD_DIR, raising=False)
    plugin.register()
    assert calls == [] and sys.meta_path == meta_path
    monkeypatch.setenv(plugin.ENV_RECORD_DIR, "")
    plugin.register()
    assert calls == []
    monkeypatch.setenv(plugin.ENV_RECORD_DIR, str(tmp_path))
    monkeypatch.setenv(plugin.ENV_RECORD_EXPERTS, "0")
    plugin.register()
    assert calls == [(tmp_path, False)]


def test_plugin_wants_an_absolute_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(plugin.ENV_RECORD_DIR, "runs/relative")
    with pytest.raises(RuntimeError, match="absolute"):
        plugin.register()


def test_patch_applies_when_the_module_is_imported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The adapter's hooks are applied right after the model-runner module is first imported, and only then."""
    import importlib
    import sys

    from capbench.runners.vllm.adapter import _PatchAfterImport

    package = tmp_path / "fake_engine_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "runner.py").write_text("class Runner:\n    def step(self):\n        return 'original'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    seen: list[str] = []

    def patch(module: object) -> None:
        seen.append(module.__name__)  # type: ignore[attr-defined]
        module.Runner.step = lambda self: "patched"  # type: ignore[attr-defined]

    hook = _PatchAfterImport({"fake_engine_pkg.runner": patch})
    monkeypatch.setattr(sys, "meta_path", [hook, *sys.meta_path])
    assert "fake_engine_pkg.runner" not in sys.modules and seen == []
    module = importlib.import_module("fake_engine_pkg.runner")
    assert seen == ["fake_engine_pkg.runner"]
    assert module.Runner().step() == "patched"
    importlib.reload(module)  # the hook fires once: a later reload is vLLM's business
    assert seen == ["fake_engine_pkg.runner"]
    for name in ("fake_engine_pkg.runner", "fake_engine_pkg"):
        sys.modules.pop(name, None)


def test_writer_thread_keeps_step_order_and_counts_off_thread(tmp_path: Path) -> None:
    out = tmp_path / "passes.jsonl"
    rec = StepRecorder(AppendOnlyLines(out), writer_thread=True)
    for i in range(200):
        rec.begin([(f"r{i:04d}", 3, 0)])
        if i % 3 == 0:
            rec.finish([f"r{i:04d}"], None)  # routing not observed for this step
        else:
            rec.finish([f"r{i:04d}"], lambda i=i: [[i % 4, 0, 2], [0, 0, 6]])
    rec.close()
    records = read(out)
    assert [r["step"] for r in records] == list(range(200))
    for i, r in enumerate(records):
        if i % 3 == 0:
            assert r["experts_active"] is None and r["expert_tokens"] is None
        else:
            assert r["expert_tokens"] == [[i % 4, 0, 2], [0, 0, 6]]
            assert r["experts_active"] == [1 + (i % 4 > 0), 1]


def test_a_failed_routing_check_is_null_with_its_reason(tmp_path: Path) -> None:
    """A counting function may answer ``(None, reason)``: the step keeps null routing and says why; a measured step
    has ``routing_error`` null, and a step recorded without routing has it null too (nothing was attempted)."""
    out = tmp_path / "passes.jsonl"
    rec = StepRecorder(AppendOnlyLines(out), writer_thread=True)
    rec.begin([("r0000", 4, 0)])
    rec.finish(["r0000"], lambda: (None, "routing self-check failed: layer 0 counted 0 expert choices, expected 8"))
    rec.begin([("r0000", 1, 4)])
    rec.finish(["r0000"], lambda: ([[1, 1], [2, 0]], None))
    rec.begin([("r0000", 1, 5)])
    rec.finish(["r0000"], None)
    rec.close()
    failed, measured, unrecorded = read(out)
    assert failed["experts_active"] is None and failed["expert_tokens"] is None
    assert failed["routing_error"].startswith("routing self-check failed: layer 0")
    assert measured["experts_active"] == [2, 1] and measured["routing_error"] is None
    assert unrecorded["experts_active"] is None and unrecorded["routing_error"] is None


def test_a_recorded_server_gets_its_own_compile_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Recorded servers never share vLLM's compile cache with unrecorded ones (whose VLLM_CACHE_ROOT, the user's
    or vLLM's default, is left alone), and the root is keyed by the recorder's version."""
    import shutil

    from capbench.runners.vllm.adapter import RECORDER_VERSION
    from capbench.runners.vllm.runner import compile_cache_root, vllm_env

    monkeypatch.setenv("CAPBENCH_CACHE_DIR", str(tmp_path / "capbench"))
    monkeypatch.setenv("VLLM_CACHE_ROOT", str(tmp_path / "users-vllm-cache"))
    recorded, plugin_dir = vllm_env(record_dir=tmp_path / "run")
    try:
        assert recorded["VLLM_CACHE_ROOT"] == str(compile_cache_root())
        assert compile_cache_root() == tmp_path / "capbench" / "vllm-compile" / f"recorder-v{RECORDER_VERSION}"
        assert recorded["VLLM_USE_V2_MODEL_RUNNER"] == "0"
    finally:
        shutil.rmtree(plugin_dir or tmp_path / "none", ignore_errors=True)
    plain, none = vllm_env(record_dir=None)
    assert none is None and plain["VLLM_CACHE_ROOT"] == str(tmp_path / "users-vllm-cache")
    monkeypatch.delenv("VLLM_CACHE_ROOT")
    assert "VLLM_CACHE_ROOT" not in vllm_env(record_dir=None)[0]  # vLLM's own default


def test_v2_model_runner_is_refused_with_the_switch() -> None:
    from capbench.errors import CapbenchError
    from capbench.runners.vllm.runner import check_v1_runner

    check_v1_runner({"VLLM_USE_V2_MODEL_RUNNER": "0"})
    check_v1_runner({})
    with pytest.raises(CapbenchError, match=r"unset it .*VLLM_USE_V2_MODEL_RUNNER=0.*--no-record-steps"):
        check_v1_runner({"VLLM_USE_V2_MODEL_RUNNER": "1"})


def test_expert_counts_that_are_not_one_table_leave_the_step_unmeasured_with_the_reason(tmp_path: Path) -> None:
    out = tmp_path / "passes.jsonl"
    rec = StepRecorder(AppendOnlyLines(out))
    rec.begin([("r0000", 3, 0)])
    rec.finish(["r0000"], [[1, 2], [3]])  # layers of 2 and 1 experts
    rec.begin([("r0000", 1, 3)])
    rec.finish(["r0000"], [[1, 0], [0, 1]])
    ragged, fine = read(out)
    assert ragged["experts_active"] is None and ragged["expert_tokens"] is None
    assert ragged["routing_error"].startswith("expert counts not written: ")
    assert fine["experts_active"] == [1, 1] and fine["routing_error"] is None
