"""Help text for people: docstrings written in reST become plain text for ``--help``, and a setting's default
is shown once.

``plain(text)``: ``:role:`~a.b.C``` → ``C``, ``:role:`x``` → ``x``, ````x```` → ``x``, ```x``` → ``x``.
"""

from __future__ import annotations

import re
from typing import Any

HARDWARE_OVERRIDE_HELP = (
    "override a hardware-profile figure, e.g. memory_bandwidth_bytes_per_s=3.0e12, "
    "peak_flops_per_s.bf16=9.9e14, or tdp_w=350 (a TDP makes a run without power samples get an energy "
    "estimate for its cost); repeatable"
)
"""One flag, one meaning: ``--hardware-override KEY=VALUE`` (alias ``--set``) in run, score and profiles show."""

_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``")
_INTERPRETED = re.compile(r"`([^`]+)`")


def plain(text: str) -> str:
    """``text`` with reST roles and literal markup removed (a role's ``~`` target keeps its last part)."""

    def role(match: re.Match[str]) -> str:
        target = match.group(1)
        return target.rsplit(".", 1)[-1] if match.group(0).startswith(":") and "`~" in match.group(0) else target

    text = _ROLE.sub(role, text)
    text = _LITERAL.sub(r"\1", text)
    return _INTERPRETED.sub(r"\1", text)


def with_default(description: str, default: Any) -> str:
    """``description`` followed by ``(default: X)``, unless the description already names its default or there
    is none (``None``: the description says what empty means)."""
    if default is None or "default" in description:
        return description
    shown = default if isinstance(default, str) else repr(default)
    return f"{description} (default: {shown})"
