"""The layer order of capbench's packages, enforced: no module imports one above it (docs/design.md).

Every ``import capbench...`` in the package (module level or inside a function; type-only imports under
``TYPE_CHECKING`` excepted) must go to a lower layer, or stay inside its own package at its own layer. The layers,
bottom to top, are :data:`LAYERS`; a module belongs to the layer of its longest listed prefix.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.paths import REPO

ROOT = REPO

LAYERS: tuple[tuple[str, ...], ...] = (
    ("capbench", "capbench.errors", "capbench.clock", "capbench.paths"),
    ("capbench.records", "capbench.arch", "capbench.run.versions", "capbench.settings_files"),
    (
        "capbench.runners",
        "capbench.runners.traits",
        "capbench.runners.hf.config",
        "capbench.runners.openai.config",
        "capbench.runners.vllm.config",
        "capbench.runners.vllm.engine_args",
    ),
    ("capbench.config",),
    (
        "capbench.metrics",
        "capbench.hardware",
        "capbench.hardware_profiles",
        "capbench.telemetry",
        "capbench.loadgen",
        "capbench.workload",
        "capbench.models",
    ),
    ("capbench.runners.hf", "capbench.runners.openai", "capbench.runners.vllm", "capbench.tasks", "capbench.testing"),
    ("capbench.summary",),
    ("capbench.run",),
    ("capbench.sweep", "capbench.leaderboard"),
    ("capbench.capacity",),
    ("capbench.cli",),
    ("capbench.__main__",),
)
"""Bottom to top: ground; records and model facts; the runner registry and light runner configuration; the run
configuration; pure metrics, hardware, telemetry, load generation, workloads, model builders; runners, tasks and
test doubles; the summary; running; sweeps and the leaderboard; capacity searches (probes are sweep points);
the CLI; ``python -m capbench``. Inside one layer,
a module may import its own package (``capbench.runners.vllm.runner`` uses ``capbench.runners.openai``), never
another package of the layer."""

SOURCES: tuple[tuple[str, str], ...] = (
    ("capbench", "capbench"),
    ("metrics", "capbench.metrics"),
    ("leaderboard", "capbench.leaderboard"),
)
"""Source folders and the module names they are imported as (``metrics/`` is ``capbench.metrics``)."""


def layer_of(module: str) -> tuple[int, str]:
    """``(layer index, the prefix that placed it)`` for a module name; longest prefix wins."""
    best: tuple[int, str] | None = None
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > len(best[1])):
                best = (index, prefix)
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best


def modules() -> dict[str, Path]:
    out = {}
    for folder, name in SOURCES:
        base = ROOT / folder
        for path in base.rglob("*.py"):
            rel = path.relative_to(base).with_suffix("").parts
            if folder == "capbench" and rel[0] in ("metrics", "leaderboard", "hardware_profiles"):
                continue  # the symlinked folders are read from their real place
            parts = [p for p in rel if p != "__init__"]
            out[".".join([name, *parts])] = path
    return out


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every capbench import in ``path`` outside ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _type_checking(node):
            skip.update(id(child) for child in ast.walk(node))
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.startswith("capbench"):
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, a.name) for a in node.names if a.name.startswith("capbench"))
    return found


def package(module: str) -> str:
    """``capbench.X``: the top-level package a module belongs to."""
    return ".".join(module.split(".")[:2])


def upward_imports(sources: dict[str, Path] | None = None) -> list[str]:
    problems = []
    for module, path in sorted((sources if sources is not None else modules()).items()):
        level, prefix = layer_of(module)
        for line, target in imports(path):
            target_level, target_prefix = layer_of(target)
            if target_level < level or (target_level == level and package(target) == package(module)):
                continue
            where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
            problems.append(
                f"{where}:{line}: {module} (layer {level}, {prefix}) imports {target} "
                f"(layer {target_level}, {target_prefix})"
            )
    return problems


def test_no_module_imports_one_above_it() -> None:
    assert upward_imports() == []


def test_every_module_is_in_a_layer() -> None:
    found = modules()
    assert len(found) > 100 and "capbench.runners.vllm.routing" in found and "capbench.metrics.score" in found
    placed = {module: layer_of(module)[0] for module in found}
    assert placed["capbench.errors"] == 0 and placed["capbench.cli.run"] == len(LAYERS) - 2


def test_the_check_catches_an_upward_and_a_sideways_import(tmp_path: Path) -> None:
    """The rule is not vacuous: a metrics module importing the CLI (upward) or the telemetry package (another
    package of its own layer) is reported; importing the records (below) is not."""
    leak = tmp_path / "leak.py"
    leak.write_text("from capbench.records import RunWriter\nfrom capbench.cli import main\n")
    side = tmp_path / "side.py"
    side.write_text("def f():\n    from capbench.telemetry import NullSensor\n")
    typed = tmp_path / "typed.py"
    typed.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from capbench.cli import main\n")
    found = upward_imports({"capbench.metrics.leak": leak, "capbench.metrics.side": side, "capbench.metrics.t": typed})
    assert len(found) == 2
    assert "leak.py:2: capbench.metrics.leak" in found[0] and "imports capbench.cli" in found[0]
    assert "side.py:2" in found[1] and "imports capbench.telemetry" in found[1]
