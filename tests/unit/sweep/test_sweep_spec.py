"""Sweep files: expansion order, include/exclude, dotted keys, content-hash ids, validation; attempts; GPUs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import orjson
import pytest
import yaml

from capbench.config import RunSpec
from capbench.errors import CapbenchError, ConfigError
from capbench.sweep.manifest import SweepManifest, attempt_dir
from capbench.sweep.point import gpus_needed, run_dir_status
from capbench.sweep.spec import SweepSpec, expand, load_sweep, point_id
from tests.support.paths import REPO


def sweep(**kwargs: object) -> SweepSpec:
    return SweepSpec.model_validate(kwargs)


def test_grid_order_exclude_and_include() -> None:
    points = expand(
        sweep(
            base={"task": "none", "num_requests": 4},
            axes={"top_k": [1, 2], "concurrency": [4, 16]},
            exclude=[{"top_k": 2, "concurrency": 4}],
            include=[{"top_k": 8, "dtype": "bfloat16"}],
        )
    )
    assert [p.assignment for p in points] == [
        {"top_k": 1, "concurrency": 4},
        {"top_k": 1, "concurrency": 16},
        {"top_k": 2, "concurrency": 16},
        {"top_k": 8, "dtype": "bfloat16"},
    ]
    assert [p.origin for p in points] == ["grid", "grid", "grid", "include[0]"]
    last = points[-1].spec
    assert (last.top_k, last.dtype, last.num_requests, last.concurrency) == (8, "bfloat16", 4, None)
    assert points[0].label() == "top_k=1, concurrency=4"


def test_ids_are_content_hashes_and_duplicates_collapse() -> None:
    points = expand(sweep(base={"task": "none"}, axes={"top_k": [1, 2]}, include=[{"top_k": 1}]))
    assert len(points) == 2  # the include equals grid point 1
    spec = points[0].spec
    settings = {"task": "none", "top_k": 1}  # the settings given; every other one is left to its default
    expected = hashlib.sha256(json.dumps(settings, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert points[0].id == expected[:12] == point_id(spec)
    assert point_id(RunSpec(top_k=1, task="none")) == points[0].id  # order does not matter
    assert point_id(RunSpec(task="none", top_k=1, out="elsewhere")) == points[0].id  # out is not part of it
    assert point_id(RunSpec(task="none", top_k=2)) != points[0].id
    # A setting given at its default value is a different configuration: a launched vLLM without dtype computes
    # in the model's dtype, with dtype float32 (the field's default) in float32.
    assert point_id(RunSpec(task="none", top_k=1, dtype="float32")) != points[0].id


def test_a_setting_given_at_its_default_reaches_the_point_config() -> None:
    point = expand(sweep(base={"runner": "vllm", "model": "m"}, axes={"dtype": ["float32", "bfloat16"]}))[0]
    assert point.config()["dtype"] == "float32"
    assert "dtype" in RunSpec.model_validate(yaml.safe_load(point.config_yaml())).model_fields_set


def test_dotted_keys_set_one_engine_argument() -> None:
    points = expand(
        sweep(
            base={"runner": "vllm", "model": "m", "engine_args": {"max_model_len": 512}},
            axes={"engine_args.max_num_seqs": [8, 64]},
        )
    )
    assert [p.spec.engine_args for p in points] == [
        {"max_model_len": 512, "max_num_seqs": 8},
        {"max_model_len": 512, "max_num_seqs": 64},
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"axes": {"concurrency": [1, -2]}}, "concurrency=-2 (grid) is not a valid run"),
        ({"axes": {"no_such_setting": [1]}}, "no_such_setting"),
        ({"axes": {"out": ["a", "b"]}}, "sets each point's 'out' itself"),
        ({"axes": {"top_k": [1]}, "exclude": [{"dtype": "float32"}]}, "not axes"),
        ({"axes": {"top_k": [1]}, "exclude": [{"top_k": 1}]}, "no points"),
        ({"axes": {"nope.x": [1]}}, "unknown sweep key"),
        ({"base": {"top_k": 2}, "axes": {"top_k.foo": [1]}}, "top_k is not a mapping setting"),
    ],
)
def test_bad_sweeps_name_the_problem(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        expand(sweep(**data))
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"axes": {"top_k": []}}, "has no values"),
        ({"axes": {"top_k": [1, 1]}}, "lists a value twice"),
        ({"grid": {}}, "unknown key 'grid'"),
    ],
)
def test_sweep_file_validation(tmp_path: Path, data: dict[str, object], message: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_sweep(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_base_config_is_relative_to_the_sweep_file(tmp_path: Path) -> None:
    (tmp_path / "run.yaml").write_text(yaml.safe_dump({"task": "none", "num_requests": 3}))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"base_config": "run.yaml", "axes": {"seed": [1, 2]}}))
    points = expand(load_sweep(tmp_path / "s.yaml"), base_dir=tmp_path)
    assert [(p.spec.num_requests, p.spec.seed) for p in points] == [(3, 1), (3, 2)]


def test_shipped_example_sweep_expands() -> None:
    path = REPO / "sweeps" / "demo-moe-cpu.yaml"
    points = expand(load_sweep(path), base_dir=path.parent)
    grid = [p for p in points if p.origin == "grid"]
    assert len(grid) == 8 and {p.spec.top_k for p in grid} == {1, 2}
    assert {p.spec.dtype for p in grid} == {"float32", "bfloat16"} and {p.spec.concurrency for p in grid} == {4, 16}
    assert len({p.id for p in points}) == len(points)
    vllm = [p.spec for p in points if p.spec.runner == "vllm"]
    assert {s.enforce_eager for s in vllm} == {False, True}  # compiled (the default) and eager


def test_point_config_round_trips_through_a_run_yaml() -> None:
    point = expand(sweep(base={"task": "none", "slo": {"ttft_s": 0.5}}, axes={"top_k": [2]}))[0]
    back = RunSpec.model_validate(yaml.safe_load(point.config_yaml()))
    assert back == point.spec and back.model_fields_set == point.spec.model_fields_set  # == ignores what was set


def _run_dir(path: Path, status: str | None, summary: bool) -> Path:
    path.mkdir(parents=True)
    if status is not None:
        (path / "run.json").write_bytes(orjson.dumps({"status": status}))
    if summary:
        (path / "summary.json").write_text("{}")
    return path


def test_run_dir_status(tmp_path: Path) -> None:
    assert run_dir_status(_run_dir(tmp_path / "a", "complete", True)) == "complete"
    assert run_dir_status(_run_dir(tmp_path / "b", "complete", False)) == "partial"  # never scored
    assert run_dir_status(_run_dir(tmp_path / "c", "running", False)) == "partial"  # killed mid-run
    assert run_dir_status(_run_dir(tmp_path / "d", "partial", True)) == "partial"
    assert run_dir_status(_run_dir(tmp_path / "e", None, False)) == "failed"
    assert run_dir_status(tmp_path / "missing") == "failed"


def test_next_attempt_never_reuses_a_directory(tmp_path: Path) -> None:
    point = expand(sweep(base={"task": "none"}, axes={"top_k": [1]}))[0]
    manifest = SweepManifest(out=tmp_path, name="t", sweep_file="s.yaml", executor="local")
    manifest.add_points([point])
    assert manifest.next_attempt(point.id) == 1
    attempt_dir(tmp_path, point.id, 1).mkdir(parents=True)  # left by a sweep killed before it saved
    assert manifest.next_attempt(point.id) == 2
    manifest.start_attempt(point.id, 2)
    assert manifest.next_attempt(point.id) == 3
    loaded = SweepManifest.load(tmp_path)
    assert loaded.points[point.id].attempts[0].n == 2 and loaded.points[point.id].status == "running"
    loaded.refresh_from_disk()  # nothing on disk for attempt 2: it never started
    assert loaded.points[point.id].status == "failed"


def test_unreadable_manifest_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "sweep.json").write_text('{"sweep_schema_version": 99}')
    with pytest.raises(CapbenchError, match="not a sweep manifest"):
        SweepManifest.load(tmp_path)


@pytest.mark.parametrize(
    ("settings", "gpus_available", "expected"),
    [
        ({"runner": "vllm", "model": "m"}, True, 1),
        ({"runner": "vllm", "model": "m", "engine_args": {"tensor_parallel_size": 4}}, True, 4),
        (
            {"runner": "vllm", "model": "m", "engine_args": {"tensor-parallel-size": 2, "pipeline_parallel_size": 2}},
            True,
            4,
        ),
        ({"runner": "vllm", "model": "m", "engine_args": {"tensor_parallel_size": 4}}, False, 0),
        ({"runner": "vllm", "base_url": "http://h:1"}, True, 0),  # attaches to a server elsewhere
        ({"runner": "openai", "base_url": "http://h:1"}, True, 0),
        ({"runner": "hf"}, True, 1),
        ({"runner": "hf"}, False, 0),
        ({"runner": "hf", "device": "cpu"}, True, 0),
        ({"runner": "hf", "device": "cuda"}, False, 1),
    ],
)
def test_gpus_needed(settings: dict[str, object], gpus_available: bool, expected: int) -> None:
    assert gpus_needed(RunSpec.model_validate(settings), gpus_available=gpus_available) == expected


def test_run_json_saying_failed_is_failed(tmp_path: Path) -> None:
    assert run_dir_status(_run_dir(tmp_path / "f", "failed", True)) == "failed"


def test_next_attempt_counts_logs_too(tmp_path: Path) -> None:
    point = expand(sweep(base={"task": "none"}, axes={"top_k": [1]}))[0]
    manifest = SweepManifest(out=tmp_path, name="t", sweep_file="s.yaml", executor="local")
    manifest.add_points([point])
    log = tmp_path / "points" / point.id / "attempt-4.log"
    log.parent.mkdir(parents=True)
    log.write_text("an attempt whose record was lost")
    assert manifest.next_attempt(point.id) == 5


def test_edited_grid_keeps_old_points_out_of_the_grid(tmp_path: Path) -> None:
    first = expand(sweep(base={"task": "none"}, axes={"top_k": [1, 2]}))
    manifest = SweepManifest(out=tmp_path, name="t", sweep_file="s.yaml", executor="local")
    manifest.add_points(first)
    second = expand(sweep(base={"task": "none"}, axes={"top_k": [2, 4]}))
    manifest.add_points(second)
    assert [(r.assignment, r.in_grid) for r in manifest.points.values()] == [
        ({"top_k": 2}, True),
        ({"top_k": 4}, True),
        ({"top_k": 1}, False),
    ]
    assert manifest.counts() == {"pending": 2}


def test_a_killed_attempt_gets_an_error(tmp_path: Path) -> None:
    point = expand(sweep(base={"task": "none"}, axes={"top_k": [1]}))[0]
    manifest = SweepManifest(out=tmp_path, name="t", sweep_file="s.yaml", executor="local")
    manifest.add_points([point])
    attempt = manifest.start_attempt(point.id, 1)
    _run_dir(tmp_path / attempt.run_dir, "running", False)
    manifest.refresh_from_disk()
    assert attempt.status == "partial" and attempt.error is not None and "sweep stopped" in attempt.error


def test_secrets_and_machine_settings_are_not_forwarded_to_ray_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    from capbench.sweep.local import worker_environment

    monkeypatch.setenv("CAPBENCH_CACHE_DIR", "/cache")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    for secret in ("HF_TOKEN", "TRANSFORMERS_API_TOKEN", "CAPBENCH_SECRET_THING", "VLLM_API_KEY", "HF_PASSWORD"):
        monkeypatch.setenv(secret, "s3cret")
    monkeypatch.setenv("VLLM_HOST_IP", "10.0.0.1")
    monkeypatch.setenv("CAPBENCH_VLLM_PYTHON", "/here/python")
    env = worker_environment()
    assert {"CAPBENCH_CACHE_DIR", "HF_HUB_OFFLINE", "VLLM_CPU_KVCACHE_SPACE"} <= set(env)
    assert "s3cret" not in env.values() and "VLLM_HOST_IP" not in env and "CAPBENCH_VLLM_PYTHON" not in env


def test_error_text_names_the_reason_and_the_signal(tmp_path: Path) -> None:
    from capbench.sweep.point import _error_text

    log = tmp_path / "a.log"
    log.write_text("warning: an error-looking warning\ncapbench run: error: cannot reach the server\n")
    assert _error_text(log, 2) == "capbench run: error: cannot reach the server (exit code 2; log: a.log)"
    log.write_text(
        'noise about errors\nTraceback (most recent call last):\n  File "x.py", line 1, in <module>\n'
        "    boom()\nRuntimeError: out of memory\n"
    )
    assert _error_text(log, -9).startswith("RuntimeError: out of memory (killed by SIGKILL")


def test_a_point_run_with_repeats_is_complete_when_every_repeat_is(tmp_path: Path) -> None:
    import json

    def repeats_dir(path: Path, incomplete: list[str]) -> Path:
        path.mkdir()
        summary = {
            "kind": "repeats",
            "repeats": {"n": 2, "run_dirs": ["repeat-1", "repeat-2"], "incomplete": incomplete},
        }
        (path / "summary.json").write_text(json.dumps(summary))
        return path

    assert run_dir_status(repeats_dir(tmp_path / "all", [])) == "complete"
    assert run_dir_status(repeats_dir(tmp_path / "some", ["repeat-2"])) == "partial"
