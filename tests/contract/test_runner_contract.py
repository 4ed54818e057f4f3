"""Every runner held to the same contract (tests/contract/contract.py): the fake runner always, hf with the tiny
MoE, openai against the mock server, vllm against the CPU engine (where ``CAPBENCH_VLLM_PYTHON`` is set).

Each runner serves the same shapes of work through the real harness into a real run directory; the checks read
the records back with the scorer's reader. A deliberately broken fake runner must fail them (the suite is not
vacuous).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from capbench.config import build_run_spec
from capbench.testing.fake_runner import FakeRunner
from capbench.workload import Prompt, PromptSet, build_workload, load_prompts
from tests.contract.contract import (
    Served,
    check_errors_recorded,
    check_facts,
    check_ids,
    check_partial,
    check_passes,
    check_timestamps,
    check_tokens,
    serve,
)
from tests.support.engine_steps import line_count, records_after
from tests.support.vllm_engine import MAX_MODEL_LEN

WARMUP, MEASURED = 2, 6


def workload(prompts: PromptSet | None = None, measured: int = MEASURED) -> Any:
    return build_workload(prompts or load_prompts(None), num_requests=measured, duration_s=None, warmup=WARMUP, seed=0)


def with_a_long_prompt(words: int) -> PromptSet:
    """The shipped prompts plus one far longer than a tiny model's context (a request that must fail)."""
    shipped = load_prompts(None)
    long = Prompt(id="too-long", text=" ".join(["seven"] * words))
    return PromptSet(prompts=(long, *shipped.prompts[:3]), source="contract", sha256="contract")


# --- the runners ----------------------------------------------------------------------------------------------


class Backend:
    """One runner under test: how to build it, whether its token times are exact and it sees passes, and how to
    make one of its requests fail or its backend die (None where that cannot happen)."""

    name = ""
    exact = True
    passes = True

    def runner(self, tmp: Path) -> Any:
        raise NotImplementedError

    def pass_mark(self) -> int:
        """Where this backend's pass records stand before a drive (see :meth:`passes_of`)."""
        return 0

    def passes_of(self, served: Served, mark: int) -> list[dict[str, Any]]:
        """The pass records of the drive that ``served`` read back: the run directory's (in-process runners)."""
        return served.passes

    def failing(self, tmp: Path) -> tuple[Any, Any]:
        """A runner and a workload in which some request fails."""
        raise NotImplementedError

    #: Why :meth:`dying` returns None for this backend.
    cannot_die = "it computes in process"

    def dying(self, tmp: Path) -> tuple[Any, Any, Any] | None:
        """A runner, a workload and an on-done hook that kills its backend mid-run; None: see :attr:`cannot_die`."""
        return None


class Fake(Backend):
    name = "fake"

    def runner(self, tmp: Path) -> Any:
        return FakeRunner()

    def failing(self, tmp: Path) -> tuple[Any, Any]:
        return FakeRunner(fail_every=3), workload()

    def dying(self, tmp: Path) -> tuple[Any, Any, Any]:
        return FakeRunner(die_after=3), workload(), None


class HF(Backend):
    name = "hf"

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir

    def _runner(self, **settings: Any) -> Any:
        from capbench.runners.hf.runner import HFRunner

        spec = build_run_spec(None, {"model": str(self.model_dir), "concurrency": 2, "max_tokens": 6, **settings})
        return HFRunner(spec, self.model_dir)

    def runner(self, tmp: Path) -> Any:
        return self._runner()

    def failing(self, tmp: Path) -> tuple[Any, Any]:
        return self._runner(), workload(with_a_long_prompt(5000))  # the tiny models' context is 4,096 tokens


class OpenAI(Backend):
    name = "openai"
    exact = False
    passes = False

    def __init__(self) -> None:
        from capbench.testing.mock_server import MockServerProcess, MockSettings

        self.servers: list[Any] = []
        self.process, self.settings = MockServerProcess, MockSettings

    def _runner(self, settings: Any) -> Any:
        from capbench.runners.openai.runner import OpenAIRunner

        server = self.process(settings)
        server.start()
        self.servers.append(server)
        spec = build_run_spec(
            None, {"runner": "openai", "base_url": server.url, "concurrency": 2, "max_tokens": 6, "timeout_s": 5}
        )
        return OpenAIRunner(spec, None), server

    def runner(self, tmp: Path) -> Any:
        return self._runner(self.settings(output_tokens=6))[0]

    def failing(self, tmp: Path) -> tuple[Any, Any]:
        return self._runner(self.settings(output_tokens=6, fail_rate=0.4, seed=3))[0], workload()

    def dying(self, tmp: Path) -> tuple[Any, Any, Any]:
        runner, server = self._runner(self.settings(output_tokens=6, itl_s=0.01))

        def kill(record: dict[str, Any], done: int) -> None:
            if done == WARMUP + 3:
                server.kill()

        return runner, workload(measured=200), kill

    def close(self) -> None:
        for server in self.servers:
            server.stop()


class VLLM(Backend):
    """The session's shared CPU engine serving the demo MoE (tests/support/vllm_engine.py: a launch costs about a
    minute)."""

    name = "vllm"
    exact = False
    cannot_die = "the engine is shared; tests/integration/runners/test_vllm_runner.py kills a launched server mid-run"

    def __init__(self, shared: Any) -> None:
        self.engine, self.run_dir, _ = shared.get()

    def runner(self, tmp: Path) -> Any:
        return self.engine

    def failing(self, tmp: Path) -> tuple[Any, Any]:
        return self.engine, workload(with_a_long_prompt(MAX_MODEL_LEN + 500))  # the server refuses it

    def pass_mark(self) -> int:
        return line_count(self.run_dir / "passes.jsonl")

    def passes_of(self, served: Served, mark: int) -> list[dict[str, Any]]:
        """The steps the shared engine's plugin appended to its own passes.jsonl during this drive."""
        return records_after(self.run_dir / "passes.jsonl", mark)


@pytest.fixture(scope="module")
def backends(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Backends are built on first use (a test for one runner starts nothing for another)."""
    built: dict[str, Any] = {}

    def get(name: str) -> Any:
        if name not in built:
            if name == "fake":
                built[name] = Fake()
            elif name == "hf":
                built[name] = HF(request.getfixturevalue("tiny_model_dir"))
            elif name == "openai":
                built[name] = OpenAI()
            else:
                request.getfixturevalue("vllm_environment")
                built[name] = VLLM(request.getfixturevalue("shared_vllm_engine"))
        return built[name]

    yield {"get": get}
    for backend in built.values():
        if isinstance(backend, OpenAI):
            backend.close()  # the shared vLLM engine is closed by its last user (tests/support/vllm_engine.py)


RUNNERS = [
    pytest.param("fake", id="fake"),
    pytest.param("hf", id="hf", marks=pytest.mark.integration),
    pytest.param("openai", id="openai", marks=pytest.mark.integration),
    pytest.param("vllm", id="vllm", marks=[pytest.mark.integration, pytest.mark.slow]),
]


@pytest.fixture(params=RUNNERS)
def backend(request: pytest.FixtureRequest, backends: dict[str, Any]) -> Backend:
    if request.param == "vllm" and not os.environ.get("CAPBENCH_VLLM_PYTHON"):
        if os.environ.get("CAPBENCH_REQUIRE_VLLM") == "1":
            pytest.fail("CAPBENCH_REQUIRE_VLLM=1 but CAPBENCH_VLLM_PYTHON is not set")
        pytest.skip("the vllm runner's contract needs CAPBENCH_VLLM_PYTHON (make vllm-env)")
    return backends["get"](request.param)  # type: ignore[no-any-return]


def test_records_of_a_clean_run(backend: Backend, tmp_path: Path) -> None:
    runner = backend.runner(tmp_path)
    mark = backend.pass_mark()
    served = serve(runner, workload(), tmp_path / "run")
    assert served.raised is None and served.status == "complete"
    check_ids(served)
    check_timestamps(served)
    check_tokens(served, exact=backend.exact)
    assert all(r["error"] is None for r in served.requests)
    if backend.passes:
        check_passes(replace(served, passes=backend.passes_of(served, mark)))
    else:
        assert served.passes == []
    json.dumps(runner.engine_info())
    json.dumps(runner.facts)


def test_a_failing_request_is_recorded_not_raised(backend: Backend, tmp_path: Path) -> None:
    runner, work = backend.failing(tmp_path)
    mark = backend.pass_mark()
    served = serve(runner, work, tmp_path / "run")
    check_errors_recorded(served)
    check_ids(served)
    check_timestamps(served)
    check_tokens(served, exact=backend.exact)
    if backend.passes:
        check_passes(replace(served, passes=backend.passes_of(served, mark)))  # a refused request has no pass


def test_a_dying_backend_leaves_a_partial_run(backend: Backend, tmp_path: Path) -> None:
    dying = backend.dying(tmp_path)
    if dying is None:
        pytest.skip(f"the {backend.name} runner is not killed here: {backend.cannot_die}")
    runner, work, hook = dying
    served = serve(runner, work, tmp_path / "run", on_done=hook)
    check_partial(served, at_least=2)
    check_timestamps(served)
    check_tokens(served, exact=backend.exact)


def test_facts_and_close(backend: Backend, tmp_path: Path) -> None:
    if backend.name == "vllm":
        pytest.skip(
            "the shared engine is closed once, by its last user (launched servers' close is tested in "
            "tests/integration/runners/test_vllm_runner.py)"
        )
    check_facts(backend.runner(tmp_path))


@pytest.mark.parametrize("defect", ["time_travel", "token_miscount", "lost_request", "raises_on_error", "bad_pass"])
def test_a_broken_runner_fails_the_contract(defect: str, tmp_path: Path) -> None:
    """Each defect breaks exactly the rule it targets; the suite catches every one."""
    runner = FakeRunner(defect=defect, fail_every=3 if defect == "raises_on_error" else 0)
    checks = {
        "time_travel": check_timestamps,
        "token_miscount": lambda s: check_tokens(s, exact=True),
        "lost_request": check_ids,
        "raises_on_error": check_errors_recorded,
        "bad_pass": check_passes,
    }
    with pytest.raises(AssertionError):
        checks[defect](serve(runner, workload(), tmp_path / "run"))
