"""Where capbench keeps its cache (built tiny models, probed hardware profiles).

``$CAPBENCH_CACHE_DIR`` when set, else ``$XDG_CACHE_HOME/capbench``, else ``~/.cache/capbench``. Run records never
go here: every run writes to the one explicit directory it was given.
"""

import os
from pathlib import Path


def cache_dir() -> Path:
    """The capbench cache directory (not created here)."""
    explicit = os.environ.get("CAPBENCH_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "capbench"
