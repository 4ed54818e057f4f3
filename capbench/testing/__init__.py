"""Test and demo helpers shipped with capbench: the mock OpenAI-compatible streaming server.

Imported lazily, so ``python -m capbench.testing.mock_server`` does not import the module twice.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MockServer", "MockServerProcess", "MockSettings", "SentRecord"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from capbench.testing import mock_server

        return getattr(mock_server, name)
    raise AttributeError(f"module 'capbench.testing' has no attribute {name!r}")
