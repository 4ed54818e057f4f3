"""Assemble a Hugging Face Space folder for the leaderboard (``capbench leaderboard --build-space DIR``).

A Space installs ``requirements.txt`` before the repository's files are in place, so it cannot install capbench
from a wheel that sits in the Space, and capbench is not fetched from anywhere. Instead the Space carries the
``capbench`` package itself next to ``app.py`` (Python finds it first on the script's path) and
``requirements.txt`` installs what the package needs plus its ``leaderboard`` extra, pinned. The folder:

    README.md         front matter (sdk: gradio, sdk_version = the gradio pin, app_file: app.py)
    app.py            this package's app module, run as a script
    requirements.txt  capbench's own dependencies and its leaderboard extra
    capbench/         the package source (symbolic links resolved; no caches, no demo-model weights)
    results.csv ...   the CSVs to show (``results.csv`` for one, ``results-<n>.csv`` for several)
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import capbench
from capbench.errors import CapbenchError

SPACE_FILES: tuple[str, ...] = ("README.md", "requirements.txt", "app.py")
"""Files of this folder that the Space needs as they are."""

_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "demo_moe", ".*")


def build_space(out: Path, csvs: Sequence[Path]) -> list[Path]:
    """Write the Space folder ``out`` (new or empty) showing ``csvs``; returns the CSV paths written into it."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CapbenchError(f"{out} exists and is not an empty directory; choose a new folder for the Space")
    missing = [str(p) for p in csvs if not Path(p).is_file()]
    if missing:
        raise CapbenchError(f"CSV not found: {', '.join(missing)}")
    here = Path(__file__).resolve().parent
    package = Path(capbench.__file__).parent  # in a checkout its metrics/, leaderboard/ ... are links: copied as files
    out.mkdir(parents=True, exist_ok=True)
    for name in SPACE_FILES:
        shutil.copyfile(here / name, out / name)
    shutil.copytree(package, out / "capbench", symlinks=False, ignore=_SKIP)
    written: list[Path] = []
    for i, csv in enumerate(csvs, 1):
        target = out / ("results.csv" if len(csvs) == 1 else f"results-{i}.csv")
        shutil.copyfile(csv, target)
        written.append(target)
    return written
