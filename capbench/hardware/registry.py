"""The shipped hardware profiles (``capbench.hardware_profiles/*.yaml``), user profile files, and name matching.

Matching rule: a device name matches a profile when, after case-folding and collapsing runs of whitespace, it
equals one of the profile's ``aliases`` exactly. There is no substring or prefix matching: "NVIDIA H100 NVL"
must not become an H100 PCIe, nor "NVIDIA A100-SXM4-40GB" the 80 GB profile. No match returns ``None``.
"""

from __future__ import annotations

import functools
import re
import tempfile
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

import yaml

from capbench.errors import CapbenchError
from capbench.hardware.profile import HardwareProfile
from capbench.hardware.schema import profile_from_dict, profile_to_yaml

PACKAGE = "capbench.hardware_profiles"
_HOW_TO_ADD = (
    "To add a profile, write a YAML file in the same schema (see docs/hardware.md and any file in "
    "hardware_profiles/) and pass its path instead of an id, or add it to hardware_profiles/<id>.yaml."
)


def normalize_device_name(name: str) -> str:
    """Case-fold and collapse whitespace: ``"  nvidia  H100 80GB HBM3 "`` -> ``"nvidia h100 80gb hbm3"``."""
    return re.sub(r"\s+", " ", name).strip().casefold()


def _parse_yaml(text: str, origin: str) -> HardwareProfile:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CapbenchError(f"hardware profile {origin}: not valid YAML: {exc}") from None
    return profile_from_dict(data, origin)


def load_profile_file(path: str | Path) -> HardwareProfile:
    """Load and validate one profile YAML file (a user's own, or a shipped one)."""
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise CapbenchError(f"cannot read hardware profile file {str(file)!r}: {exc.strerror or exc}") from None
    return _parse_yaml(text, str(file))


def save_profile_file(profile: HardwareProfile, path: str | Path) -> Path:
    """Write ``profile`` as YAML to ``path`` (atomically: a temporary file, then a rename); return the path."""
    file = Path(path).expanduser()
    text = profile_to_yaml(profile)
    temporary: Path | None = None
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=file.parent, prefix=f".{file.name}.", suffix=".tmp", delete=False
        ) as handle:
            temporary = Path(handle.name)
            handle.write(text)
        temporary.replace(file)
    except OSError as exc:
        if temporary is not None:
            temporary.unlink(missing_ok=True)
        raise CapbenchError(f"cannot write hardware profile file {str(file)!r}: {exc.strerror or exc}") from None
    return file


@functools.cache
def _shipped() -> dict[str, HardwareProfile]:
    profiles: dict[str, HardwareProfile] = {}
    owners: dict[str, str] = {}
    for entry in sorted(resources.files(PACKAGE).iterdir(), key=lambda e: e.name):
        if not entry.name.endswith((".yaml", ".yml")):
            continue
        origin = f"{PACKAGE}/{entry.name}"
        profile = _parse_yaml(entry.read_text(encoding="utf-8"), origin)
        stem = entry.name.rsplit(".", 1)[0]
        if profile.id != stem:
            raise CapbenchError(f"hardware profile {origin}: id {profile.id!r} must equal the file name {stem!r}")
        for alias in profile.aliases:
            other = owners.setdefault(normalize_device_name(alias), profile.id)
            if other != profile.id:
                raise CapbenchError(f"alias {alias!r} is claimed by both {other!r} and {profile.id!r}")
        profiles[profile.id] = profile
    return profiles


def list_profiles() -> list[HardwareProfile]:
    """Every shipped profile, sorted by id."""
    return [profile for _, profile in sorted(_shipped().items())]


def get_profile(profile_id: str) -> HardwareProfile:
    """The shipped profile ``profile_id``; an unknown id lists the valid ones and how to add a profile."""
    profile = _shipped().get(profile_id.strip().lower())
    if profile is None:
        valid = ", ".join(sorted(_shipped()))
        raise CapbenchError(f"unknown hardware profile {profile_id!r}; valid ids: {valid}. {_HOW_TO_ADD}")
    return profile


def resolve_profile(spec: str | Path) -> HardwareProfile:
    """``spec`` is a shipped id (``"h100-sxm"``) or a path to a YAML profile file."""
    text = str(spec)
    if isinstance(spec, Path) or text.endswith((".yaml", ".yml")) or "/" in text or "\\" in text:
        return load_profile_file(spec)
    return get_profile(text)


def match_gpu_name(nvml_name: str, profiles: Iterable[HardwareProfile] | None = None) -> HardwareProfile | None:
    """The profile with an alias equal to ``nvml_name`` (normalized), or ``None``; never a loose match."""
    wanted = normalize_device_name(nvml_name)
    if not wanted:
        return None
    for profile in list_profiles() if profiles is None else profiles:
        if any(normalize_device_name(alias) == wanted for alias in profile.aliases):
            return profile
    return None
