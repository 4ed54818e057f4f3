"""A run read back in many slices scores as in one: the scorer's bounded-memory read changes no figure (issue #18).

The scale benchmark's generator writes a run of 3,000 requests and passes (1 Hz power, so the energy split by
phase exists); it is scored with the store's slice size as it ships (one slice: the whole-array figures) and at
257 passes (twelve slices). Counts, distributions (step latency, per-pass S-MBU and S-MFU: exact columns) and
every non-float value must be equal; sums may differ only by float association (1e-12 relative).
"""

from __future__ import annotations

import math
import tempfile
import warnings
from pathlib import Path
from typing import Any

import pytest

from capbench.metrics import feature_store
from capbench.summary import pass_worker
from capbench.summary.score import score_run_dir
from tests.support.paths import REPO
from tests.support.scripts import load_script

EXACT_KEYS = {"step_latency_s", "s_mbu_p50", "s_mbu_p90", "s_mfu_p50", "s_mfu_p90", "passes", "tokens"}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    module = load_script(REPO / "benchmarks" / "score_run_scale.py", "score_run_scale")
    run_dir = tmp_path_factory.mktemp("pass-slices") / "run"
    module.generate_run(run_dir, 3000, seed=11)
    return run_dir


def _score(run_dir: Path) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return score_run_dir(run_dir, write=False)


def _compare(a: Any, b: Any, path: str, exact: bool) -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        for key in a:
            _compare(a[key], b[key], f"{path}.{key}", exact or key in EXACT_KEYS)
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _compare(x, y, f"{path}[{i}]", exact)
    elif isinstance(a, float) and not exact:
        assert isinstance(b, float) and math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12), (path, a, b)
    else:
        assert type(a) is type(b) and a == b, (path, a, b)


def test_many_slices_score_as_one(generated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    one = _score(generated)
    slices: list[int] = []
    original = feature_store.FeatureStore.slices

    def counted(self: feature_store.FeatureStore, max_passes: int | None = None) -> Any:
        for part in original(self, max_passes):
            slices.append(part.num_passes)
            yield part

    monkeypatch.setattr(feature_store, "SLICE_PASSES", 257)
    monkeypatch.setattr(feature_store.FeatureStore, "slices", counted)
    many = _score(generated)
    assert max(slices) == 257 and len(slices) >= 2 * 11  # really read in slices (figures, then energy)
    assert one["phases"]["decode"]["passes"] > 257 and one["energy"]["phase_energy_j"] is not None
    one.pop("capbench_version")
    many.pop("capbench_version")
    _compare(one, many, "summary", exact=False)


def test_the_child_leaves_no_feature_file_behind(
    generated: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Scored with the pass reader in a child process, the summary is the same and the temporary directory
    holding the child's feature file is gone afterwards."""
    in_process = _score(generated)
    monkeypatch.setattr(pass_worker, "SEGMENT_MIN_BYTES", 1)
    monkeypatch.setattr(pass_worker, "MAX_SEGMENTS", 1)
    monkeypatch.setattr(pass_worker, "usable_cores", lambda: 2)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    made: list[str] = []
    original = tempfile.mkdtemp

    def spy(*args: Any, **kwargs: Any) -> str:
        made.append(original(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(pass_worker.tempfile, "mkdtemp", spy)
    in_child = _score(generated)
    assert made and all(not Path(d).exists() for d in made)
    assert list(tmp_path.iterdir()) == []
    in_process.pop("capbench_version")
    in_child.pop("capbench_version")
    assert in_child == in_process
