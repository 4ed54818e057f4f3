"""vLLM classified by capability: tested, compatible but untested, or refused naming what is missing.

The facts of vLLM 0.33.0 (tests/data/vllm/facts-0.33.0.json) were extracted from its release wheel with
``python -m capbench.runners.vllm.compat vllm-0.33.0-...whl --facts``; when that wheel is in the wheel cache
(``make test`` fetches it), the test re-extracts them and they must be identical.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest

from capbench.runners.vllm.compat import (
    LAST_TESTED,
    REQUIREMENTS,
    check_facts,
    classify,
    extract_facts_from_wheel,
    refusal_message,
)
from tests.support.paths import DATA

VLLM_DATA = DATA / "vllm"
FACTS_033 = VLLM_DATA / "facts-0.33.0.json"
ROUTER_PATH = "model_executor/layers/fused_moe/router/base_router.py"
WHEEL_CACHE = Path(os.environ.get("CAPBENCH_WHEEL_CACHE", Path.home() / ".cache" / "capbench-wheels"))


def facts_033() -> dict[str, Any]:
    return dict(json.loads(FACTS_033.read_text(encoding="utf-8")))


def test_vllm_033_is_compatible_but_untested() -> None:
    facts = facts_033()
    assert facts["version"] == "0.33.0"
    problems = check_facts(facts)
    assert problems == []
    assert classify(facts["version"], problems) == "compatible_untested"


def test_a_tested_version_with_every_symbol_is_tested() -> None:
    assert classify(LAST_TESTED, []) == "tested"


def test_a_missing_method_is_refused_by_name() -> None:
    facts = copy.deepcopy(facts_033())
    router = facts["files"]["model_executor/layers/fused_moe/router/base_router.py"]["classes"]["BaseRouter"]
    del router["methods"]["set_capture_fn"]
    problems = check_facts(facts)
    assert problems == [
        "vllm/model_executor/layers/fused_moe/router/base_router.py: BaseRouter.set_capture_fn(self, capture_fn): "
        "method not defined"
    ]
    assert classify("0.33.0", problems) == "refused"
    message = refusal_message("0.33.0", problems)
    assert "cannot hook vLLM 0.33.0" in message and "BaseRouter.set_capture_fn" in message
    assert f"Last tested: vLLM {LAST_TESTED}" in message and "--no-record-steps" in message


def test_a_changed_signature_is_refused() -> None:
    facts = copy.deepcopy(facts_033())
    runner = facts["files"]["v1/worker/gpu_model_runner.py"]["classes"]["GPUModelRunner"]
    runner["methods"]["execute_model"] = ["self", "batch"]
    (problem,) = check_facts(facts)
    assert "GPUModelRunner.execute_model(self, scheduler_output)" in problem
    assert problem.endswith("parameters are (self, batch)")


@pytest.mark.parametrize(
    ("path", "damage"),
    [
        ("v1/core/sched/output.py", lambda f: f["classes"]["SchedulerOutput"]["fields"].remove("num_scheduled_tokens")),
        (ROUTER_PATH, lambda f: f["classes"]["BaseRouter"]["calls"].clear()),
        ("distributed/parallel_state.py", lambda f: f["functions"].pop("get_pp_group")),
        ("model_executor/layers/fused_moe/runner/moe_runner.py", lambda f: f["classes"].pop("MoERunner")),
    ],
)
def test_each_kind_of_requirement_can_fail(path: str, damage: Any) -> None:
    facts = copy.deepcopy(facts_033())
    damage(facts["files"][path])
    problems = check_facts(facts)
    assert problems and all(p.startswith(f"vllm/{path}") for p in problems)


def test_a_missing_file_and_unknown_requirements() -> None:
    facts = copy.deepcopy(facts_033())
    facts["files"]["v1/worker/cpu_model_runner.py"] = None
    assert check_facts(facts) == ["vllm/v1/worker/cpu_model_runner.py: CPUModelRunner.load_model(self): file missing"]
    facts = copy.deepcopy(facts_033())
    facts["requirements"].remove(REQUIREMENTS[0].key)
    assert check_facts(facts) == [f"{REQUIREMENTS[0].key}: not in the facts (re-extract them)"]


def test_the_recorded_facts_are_what_the_release_wheel_holds() -> None:
    wheels = sorted(WHEEL_CACHE.glob("vllm-0.33.0-*.whl"))
    if not wheels:
        if os.environ.get("CAPBENCH_REQUIRE_VLLM_WHEEL") == "1":
            pytest.fail(f"no vllm-0.33.0 wheel in {WHEEL_CACHE} (scripts/fetch_vllm_wheel.sh puts it there)")
        pytest.skip(f"no vllm-0.33.0 wheel in {WHEEL_CACHE}")
    assert extract_facts_from_wheel(wheels[0]) == facts_033()
