"""Test and demo helpers shipped with capbench: the mock OpenAI-compatible streaming server.

Imported lazily: importing capbench.testing starts nothing and imports no server code.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MockServer", "MockServerProcess", "MockSettings", "SentRecord"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from capbench.testing import mock_server

        return getattr(mock_server, name)
    raise AttributeError(f"module 'capbench.testing' has no attribute {name!r}")
