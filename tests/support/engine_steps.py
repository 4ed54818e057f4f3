"""Reading a shared launched vLLM engine's step records: its plugin appends to ``<engine run dir>/passes.jsonl``
from a writer thread, which may lag the last response by a few milliseconds."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from capbench.records.pass_codec import expand_pass


def line_count(path: Path) -> int:
    """Lines in ``path`` now (0 when it does not exist yet): a mark before a drive."""
    return len(path.read_text().splitlines()) if path.exists() else 0


def records_after(path: Path, mark: int, settle_s: float = 1.0) -> list[dict[str, Any]]:
    """The records appended after line ``mark``, once the file has stopped growing for ``settle_s``, in the
    runners' form (the integer lists of schema 3 decoded)."""

    def lines() -> list[str]:
        return path.read_text().splitlines() if path.exists() else []

    seen, stable_since = lines(), time.monotonic()
    while time.monotonic() - stable_since < settle_s:
        time.sleep(0.1)
        now = lines()
        if len(now) != len(seen):
            seen, stable_since = now, time.monotonic()
    return [expand_pass(json.loads(line)) for line in seen[mark:] if line.strip()]
