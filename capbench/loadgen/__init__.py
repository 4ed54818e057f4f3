"""Load generation against OpenAI-compatible servers, timed from the client side.

``run_load`` drives a server (vLLM, SGLang, TGI, the test server in :mod:`capbench.testing.mock_server`...)
with streaming requests under a closed-loop (fixed concurrency) or open-loop (Poisson / gamma / constant
arrivals) pattern, timestamps every streamed read on :func:`capbench.clock.now_ns`, and reports each request
through a callback as it ends. See ``docs/loadgen.md``.

Only the standard library (and ``orjson`` when installed) is imported; ``uvloop`` is used only when asked for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from capbench.loadgen.driver import iter_specs, run_load
from capbench.loadgen.schedule import arrival_offsets_ns, iter_arrival_offsets_ns
from capbench.loadgen.types import HttpRequestSpec, LoadPattern, LoadReport, RequestResult, ServerUnavailable

__all__ = [
    "HttpRequestSpec",
    "LoadPattern",
    "LoadReport",
    "RequestResult",
    "ServerUnavailable",
    "arrival_offsets_ns",
    "event_loop_factory",
    "iter_arrival_offsets_ns",
    "iter_specs",
    "run_blocking",
    "run_load",
    "uvloop_available",
]

T = TypeVar("T")


def uvloop_available() -> bool:
    """Whether ``uvloop`` can be imported."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def event_loop_factory(use_uvloop: bool | None = False) -> Callable[[], asyncio.AbstractEventLoop]:
    """A loop factory: the stdlib loop (``False``), uvloop (``True``, which must be installed) or uvloop when
    installed (``None``)."""
    if use_uvloop is None:
        use_uvloop = uvloop_available()
    if use_uvloop:
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def run_blocking(coro: Coroutine[Any, Any, T], use_uvloop: bool | None = False) -> T:
    """Run ``coro`` (e.g. ``run_load(...)``) to completion on a new event loop (see :func:`event_loop_factory`)."""
    with asyncio.Runner(loop_factory=event_loop_factory(use_uvloop)) as runner:
        return runner.run(coro)
