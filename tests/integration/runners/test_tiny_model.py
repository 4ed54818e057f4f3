"""The embedded tiny MoE is built offline, deterministically from its seed, and cached."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from capbench.models.tiny import TinyMoESpec, build_tiny_moe

pytestmark = pytest.mark.integration


def _digest(model_dir: Path) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(model_dir.iterdir())}


def test_same_seed_same_bytes_other_seed_other_weights(tmp_path: Path) -> None:
    a = build_tiny_moe(TinyMoESpec(seed=0), root=tmp_path / "a")
    b = build_tiny_moe(TinyMoESpec(seed=0), root=tmp_path / "b")
    c = build_tiny_moe(TinyMoESpec(seed=1), root=tmp_path / "c")
    assert _digest(a) == _digest(b)
    assert _digest(a)["model.safetensors"] != _digest(c)["model.safetensors"]
    assert _digest(a)["tokenizer.json"] == _digest(c)["tokenizer.json"]  # tokenizer does not depend on the seed
    size = sum(f.stat().st_size for f in a.iterdir())
    assert size < 10 * 2**20


def test_cache_is_reused(tmp_path: Path) -> None:
    first = build_tiny_moe(root=tmp_path)
    mtime = (first / "model.safetensors").stat().st_mtime_ns
    again = build_tiny_moe(root=tmp_path)
    assert again == first and (again / "model.safetensors").stat().st_mtime_ns == mtime
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no leftover temporary build directory
