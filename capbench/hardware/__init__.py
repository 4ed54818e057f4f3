"""Hardware profiles: peak memory bandwidth and dense peak FLOP/s per dtype, with a source for every figure.

Shipped data lives in ``hardware_profiles/<id>.yaml`` (mounted as ``capbench.hardware_profiles``); users may
load their own YAML file, override any figure, or measure this machine with
:func:`capbench.hardware.probe.probe` (not re-exported here, so that ``capbench.hardware.probe`` stays the
module) or :func:`cached_probe_profile`. Importing this package is light: torch is imported only inside the
probe functions. See docs/hardware.md.
"""

from capbench.hardware.dtypes import DTYPE_KEYS, canonical_dtype
from capbench.hardware.overrides import OVERRIDE_KEYS, apply_overrides, overridden_keys, parse_overrides
from capbench.hardware.probe import cached_probe_profile, default_cache_dir
from capbench.hardware.profile import HardwareProfile
from capbench.hardware.registry import (
    get_profile,
    list_profiles,
    load_profile_file,
    match_gpu_name,
    normalize_device_name,
    resolve_profile,
    save_profile_file,
)
from capbench.hardware.schema import profile_from_dict, profile_to_yaml

__all__ = [
    "DTYPE_KEYS",
    "OVERRIDE_KEYS",
    "HardwareProfile",
    "apply_overrides",
    "cached_probe_profile",
    "canonical_dtype",
    "default_cache_dir",
    "get_profile",
    "list_profiles",
    "load_profile_file",
    "match_gpu_name",
    "normalize_device_name",
    "overridden_keys",
    "parse_overrides",
    "profile_from_dict",
    "profile_to_yaml",
    "resolve_profile",
    "save_profile_file",
]
