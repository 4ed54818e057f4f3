"""The Ray executor on a real single-node Ray cluster: points run as tasks, their run directories are gathered.

Two tiny demo-model points and one that cannot start run through :func:`run_on_ray` and, for comparison,
through :func:`run_point` locally; statuses and deterministic figures must agree. Skips without Ray unless
``CAPBENCH_REQUIRE_RAY=1``. The archive-safety tests at the end need no Ray.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from capbench.errors import CapbenchError
from capbench.runners.vllm.server import free_port
from capbench.sweep.archive import extract_run_archive, pack_run_dir
from capbench.sweep.point import Job, Outcome, run_point
from capbench.sweep.ray_executor import run_on_ray

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ENV_REQUIRE_RAY = "CAPBENCH_REQUIRE_RAY"
RUN_FILES = ("run.json", "requests.jsonl", "passes.jsonl", "summary.json")
DETERMINISTIC = ["output_tokens", "input_tokens", "completed_requests", "model", "decode_mean_experts_active"]
POINTS: dict[str, dict[str, Any]] = {
    "demo-s0": {"task": "none", "num_requests": 4, "max_tokens": 4, "concurrency": 2, "warmup": 0, "seed": 0},
    "demo-s1": {"task": "none", "num_requests": 4, "max_tokens": 4, "concurrency": 2, "warmup": 0, "seed": 1},
    # Nothing listens on port 9: the run refuses to start (exit code 2), leaving no run.json.
    "no-server": {"runner": "openai", "base_url": "http://127.0.0.1:9", "task": "none", "num_requests": 2},
}


def _point_env(cache: Path) -> dict[str, str]:
    """What the points' processes need on the workers (which inherit the cluster's environment, not ours)."""
    names = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "GRADIO_ANALYTICS_ENABLED")
    env = {name: os.environ[name] for name in names if name in os.environ}
    env["CAPBENCH_CACHE_DIR"] = str(cache)
    return env


@pytest.fixture(scope="module")
def ray_address(capbench_cache: Path) -> Iterator[str]:
    """A fresh local Ray cluster (2 CPUs, no GPU) in its own process group; killed (that group only) afterwards."""
    try:
        import ray
    except ImportError:
        if os.environ.get(ENV_REQUIRE_RAY) == "1":
            pytest.fail(f"ray is not installed and {ENV_REQUIRE_RAY}=1: pip install 'capbench[ray]'")
        pytest.skip("ray is not installed (pip install 'capbench[ray]')")
    ray_bin = Path(sys.executable).parent / "ray"
    temp_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's unix sockets live under it
    port = free_port()
    env = {**os.environ, **_point_env(capbench_cache), "RAY_USAGE_STATS_ENABLED": "0"}
    command = [
        str(ray_bin),
        "start",
        "--head",
        f"--port={port}",
        "--num-cpus=2",
        "--num-gpus=0",
        "--include-dashboard=false",
        "--disable-usage-stats",
        f"--temp-dir={temp_dir}",
        f"--dashboard-agent-listen-port={free_port()}",
    ]
    # A new session: every daemon and worker of this cluster shares its process group, so teardown can stop
    # exactly this cluster (`ray stop` would stop every Ray cluster of this user on the machine).
    started = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180, start_new_session=True)
    group = _group_of_cluster(temp_dir)
    try:
        if started.returncode != 0:
            pytest.fail(
                f"`ray start` failed ({started.returncode}):\n{started.stdout[-3000:]}\n{started.stderr[-3000:]}"
            )
        yield f"127.0.0.1:{port}"
    finally:
        with contextlib.suppress(Exception):
            ray.shutdown()
        if group is not None:
            _kill_cluster(group)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _kill_cluster(group: int) -> None:
    """SIGKILL the cluster's process group and the workers its raylet started (each in a group of its own)."""
    members: set[int] = set()
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid, pgid = int(entry.name), int(fields[1]), int(fields[2])
        children.setdefault(ppid, []).append(pid)
        if pgid == group:
            members.add(pid)
    for pid in {child for member in members for child in children.get(member, [])} - members:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)


def _group_of_cluster(temp_dir: str) -> int | None:
    """The process group of the Ray daemons whose command line names ``temp_dir`` (ours: a fresh session)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            if temp_dir.encode() in cmdline:
                group = os.getpgid(int(entry.name))
                if group != os.getpgid(0):
                    return group
        except (OSError, ProcessLookupError):
            continue
    return None


def _jobs(root: Path) -> list[Job]:
    return [
        Job(
            point_id=name,
            config_yaml=yaml.safe_dump(settings, sort_keys=True),
            run_dir=root / name / "run",
            log_path=root / name / "point.log",
            gpus=0,
        )
        for name, settings in POINTS.items()
    ]


def _run_locally(jobs: list[Job], workdir: Path) -> dict[str, Outcome]:
    outcomes = {}
    for job in jobs:
        config = workdir / f"{job.point_id}.yaml"
        config.write_text(job.config_yaml)
        outcomes[job.point_id] = run_point(config, job.run_dir, job.log_path)
    return outcomes


def test_points_run_on_ray_and_match_local_runs(
    ray_address: str, capbench_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from capbench.summary.export import export_runs

    monkeypatch.chdir(tmp_path)
    local = _run_locally(_jobs(tmp_path / "local"), tmp_path)  # first: measures the CPU profile for both

    jobs = _jobs(tmp_path / "ray")
    started: list[str] = []
    done: dict[str, list[Outcome]] = {}
    began = time.monotonic()
    run_on_ray(
        jobs,
        address=ray_address,
        on_start=lambda job: started.append(job.point_id),
        on_done=lambda job, outcome: done.setdefault(job.point_id, []).append(outcome),
        env=_point_env(capbench_cache),
    )
    elapsed = time.monotonic() - began

    assert sorted(started) == sorted(POINTS)
    assert {name: len(outcomes) for name, outcomes in done.items()} == dict.fromkeys(POINTS, 1)
    ray_outcomes = {name: outcomes[0] for name, outcomes in done.items()}
    assert {n: o.status for n, o in ray_outcomes.items()} == {n: o.status for n, o in local.items()}
    assert ray_outcomes["no-server"].status == "failed"  # the run never started: no run.json
    assert ray_outcomes["no-server"].error and "cannot reach the server" in ray_outcomes["no-server"].error
    assert ray_outcomes["no-server"].exit_code == 2
    # `capbench run` makes the (empty) run directory before it gives up: gathered as it is, like a local run.
    assert (tmp_path / "ray" / "no-server" / "run").is_dir() == (tmp_path / "local" / "no-server" / "run").is_dir()
    assert b"cannot reach the server" in (tmp_path / "ray" / "no-server" / "point.log").read_bytes()

    demo = [name for name in POINTS if name.startswith("demo")]
    for name in demo:
        outcome = ray_outcomes[name]
        assert outcome.status == "complete" and outcome.error is None and outcome.exit_code == 0, outcome
        assert 0 < outcome.duration_s <= elapsed
        run_dir = tmp_path / "ray" / name / "run"
        assert all((run_dir / f).is_file() for f in RUN_FILES), sorted(p.name for p in run_dir.iterdir())
        assert (tmp_path / "ray" / name / "point.log").is_file()
    ray_rows = export_runs([tmp_path / "ray" / name / "run" for name in demo])[DETERMINISTIC]
    local_rows = export_runs([tmp_path / "local" / name / "run" for name in demo])[DETERMINISTIC]
    assert ray_rows.to_dict("records") == local_rows.to_dict("records")
    assert (ray_rows["output_tokens"] > 0).all()


def test_a_task_that_raises_is_recorded_failed(ray_address: str, tmp_path: Path) -> None:
    job = Job("crash", "task: none\n", tmp_path / "crash" / "run", tmp_path / "crash" / "point.log", 0)
    done: list[Outcome] = []
    # An explicit working directory that does not exist on the worker: starting the point raises in the task.
    run_on_ray(
        [job],
        address=ray_address,
        on_start=lambda job: None,
        on_done=lambda job, o: done.append(o),
        cwd=tmp_path / "nope",
    )
    [outcome] = done
    assert outcome.status == "failed" and outcome.exit_code is None and outcome.duration_s > 0
    assert outcome.error and outcome.error.startswith("Ray task failed:") and "nope" in outcome.error
    assert "\n" not in outcome.error
    assert outcome.error in job.log_path.read_text()


def test_ctrl_c_gathers_partial_runs_and_cancels_queued_ones(
    ray_address: str, capbench_cache: Path, tmp_path: Path
) -> None:
    """Two long points run (2 CPUs), a third waits; Ctrl-C once both have measured requests."""
    settings = {"task": "none", "num_requests": 5000, "max_tokens": 16, "concurrency": 2, "warmup": 0}
    tag = f"ki{os.getpid()}"
    jobs = [
        Job(f"{tag}-{i}", yaml.safe_dump({**settings, "seed": i}), tmp_path / str(i) / "run", tmp_path / f"{i}.log", 0)
        for i in range(3)
    ]
    done: dict[str, Outcome] = {}
    running = threading.Event()
    fired = threading.Event()

    def interrupt_when_measuring() -> None:  # the workers run on this machine: watch their temp folders
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and running.is_set():
            measuring = [
                p for p in Path(tempfile.gettempdir()).glob(f"capbench-{tag}-*/run/requests.jsonl") if p.stat().st_size
            ]
            if len(measuring) >= 2:
                fired.set()
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.2)
        if running.is_set():  # never both measuring: stop the run anyway (the test then fails on `fired`)
            os.kill(os.getpid(), signal.SIGINT)

    running.set()
    watcher = threading.Thread(target=interrupt_when_measuring, daemon=True)
    watcher.start()
    began = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_on_ray(
                jobs,
                address=ray_address,
                on_start=lambda job: None,
                on_done=lambda job, outcome: done.__setitem__(job.point_id, outcome),
                env=_point_env(capbench_cache),
            )
    finally:
        running.clear()
        watcher.join()
    assert fired.is_set()
    assert time.monotonic() - began < 100
    assert sorted(done) == sorted(job.point_id for job in jobs)
    statuses = sorted(outcome.status for outcome in done.values())
    assert statuses == ["failed", "partial", "partial"], done
    for job in jobs:
        outcome = done[job.point_id]
        if outcome.status == "partial":
            assert outcome.exit_code == 130 and outcome.error and "interrupted" in outcome.error
            assert all((job.run_dir / f).is_file() for f in RUN_FILES)
        else:
            assert outcome.error and "cancelled" in outcome.error and not job.run_dir.exists()
    assert not list(Path(tempfile.gettempdir()).glob(f"capbench-{tag}-*"))  # the workers cleaned up


def test_refuses_an_existing_run_directory(tmp_path: Path) -> None:
    (tmp_path / "p" / "run").mkdir(parents=True)
    job = Job("p", "task: none\n", tmp_path / "p" / "run", tmp_path / "p" / "point.log", 0)
    with pytest.raises(CapbenchError, match="already exists"):
        run_on_ray([job], address="127.0.0.1:9", on_start=lambda job: None, on_done=lambda job, outcome: None)


def test_unreachable_cluster_is_a_clear_error(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    job = Job("p", "task: none\n", tmp_path / "p" / "run", tmp_path / "p" / "point.log", 0)
    with pytest.raises(CapbenchError, match=r"127\.0\.0\.1:9.*ray start --head"):
        run_on_ray([job], address="127.0.0.1:9", on_start=lambda job: None, on_done=lambda job, outcome: None)


# --- archive safety (no Ray) ---------------------------------------------------------------------------------------


def _archive(*members: tuple[str, bytes | None, str | None]) -> bytes:
    """A tar.gz of ``(name, file content or None, symlink target or None)`` members."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content, link in members:
            info = tarfile.TarInfo(name)
            if link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tar.addfile(info)
            else:
                info.size = len(content or b"")
                tar.addfile(info, io.BytesIO(content or b""))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "link"),
    [
        ("../evil", None),
        ("run/../../evil", None),
        ("/tmp/evil", None),
        ("elsewhere/file", None),
        ("run/link", "../../evil"),
        ("run/link", "/etc/passwd"),
        ("run/x", "."),  # harmless alone, but run/x/.. would climb out: every link is refused
        ("run/alias.json", "run.json"),
    ],
)
def test_extraction_rejects_members_escaping_the_run_dir(tmp_path: Path, name: str, link: str | None) -> None:
    data = _archive(("run/run.json", b"{}", None), (name, b"x" if link is None else None, link))
    dest = tmp_path / "out" / "run"
    with pytest.raises(CapbenchError, match="refusing to unpack"):
        extract_run_archive(data, dest)
    assert not dest.exists()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []  # the staging folder is gone too
    assert not (tmp_path / "evil").exists() and not (tmp_path / "out" / "evil").exists()


def test_packed_run_dir_round_trips(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "run.json").write_text('{"status": "complete"}')
    (source / "sub" / "a.jsonl").write_bytes(b"1\n2\n")
    dest = tmp_path / "gathered" / "run"
    extract_run_archive(pack_run_dir(source), dest)
    assert (dest / "run.json").read_text() == '{"status": "complete"}'
    assert (dest / "sub" / "a.jsonl").read_bytes() == b"1\n2\n"
    with pytest.raises(CapbenchError, match="already exists"):
        extract_run_archive(pack_run_dir(source), dest)


def test_sweep_cli_on_ray_matches_the_local_executor(ray_address: str, tmp_path: Path) -> None:
    """The same grid through `capbench sweep --executor local` and `--executor ray`: same points, statuses and
    deterministic figures; --resume on Ray skips complete points and re-runs the failed one in a new attempt."""
    from capbench.cli import main
    from capbench.testing.mock_server import MockServerProcess, MockSettings

    with MockServerProcess(MockSettings(ttft_s=0.002, itl_s=0.001, output_tokens=8)) as server:
        sweep = tmp_path / "sweep.yaml"
        sweep.write_text(
            yaml.safe_dump(
                {
                    "base": {"runner": "openai", "base_url": server.url, "task": "none", "num_requests": 4},
                    "axes": {"concurrency": [1, 2], "max_tokens": [3, 5]},
                    "include": [{"base_url": "http://127.0.0.1:9"}],  # cannot start
                }
            )
        )
        local, on_ray = tmp_path / "local", tmp_path / "ray"
        assert main(["sweep", str(sweep), "--out", str(local)]) == 1
        assert main(["sweep", str(sweep), "--out", str(on_ray), "--executor", "ray", "--ray-address", ray_address]) == 1
        manifests = [yaml.safe_load((d / "sweep.json").read_text()) for d in (local, on_ray)]
        local_points, ray_points = ([(p["id"], p["status"]) for p in m["points"]] for m in manifests)
        assert local_points == ray_points
        assert [p["status"] for p in manifests[1]["points"]] == ["complete"] * 4 + ["failed"]
        columns = ["sweep_point_id", "output_tokens", "completed_requests", "max_tokens", "concurrency", "status"]
        frames = [pd.read_csv(d / "results.csv").sort_values("sweep_point_id")[columns] for d in (local, on_ray)]
        assert frames[0].reset_index(drop=True).equals(frames[1].reset_index(drop=True))
        for point in manifests[1]["points"][:4]:  # gathered from the workers into OUT/points/<id>/attempt-1
            assert (on_ray / point["run_dir"] / "summary.json").is_file()

        resume = ["sweep", str(sweep), "--out", str(on_ray), "--executor", "ray", "--ray-address", ray_address]
        assert main([*resume, "--resume"]) == 1
        resumed = yaml.safe_load((on_ray / "sweep.json").read_text())["points"]
        assert [len(p["attempts"]) for p in resumed] == [1, 1, 1, 1, 2]
        assert len(pd.read_csv(on_ray / "results.csv")) == 4


def test_ray_refuses_pinned_gpus_and_fails_points_no_node_can_hold(
    ray_address: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from capbench.cli import main

    ray_args = ["--executor", "ray", "--ray-address", ray_address]
    pinned = tmp_path / "pinned.yaml"
    pinned.write_text(yaml.safe_dump({"base": {"task": "none", "gpus": [0]}, "axes": {"seed": [1]}}))
    assert main(["sweep", str(pinned), "--out", str(tmp_path / "pinned"), *ray_args]) == 2
    assert "Ray assigns each point its GPUs" in capsys.readouterr().err
    assert not (tmp_path / "pinned").exists()  # refused before the output directory was touched

    cuda = tmp_path / "cuda.yaml"  # the test cluster has no GPU: this point could never be placed
    cuda.write_text(yaml.safe_dump({"base": {"task": "none", "device": "cuda"}, "axes": {"seed": [1]}}))
    assert main(["sweep", str(cuda), "--out", str(tmp_path / "cuda"), *ray_args]) == 1
    point = yaml.safe_load((tmp_path / "cuda" / "sweep.json").read_text())["points"][0]
    assert point["status"] == "failed" and "needs 1 GPU(s) on one node" in point["attempts"][0]["error"]
