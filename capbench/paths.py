"""Where capbench keeps its cache, and the one way it replaces a file (standard library only).

Cache: ``$CAPBENCH_CACHE_DIR`` when set, else ``$XDG_CACHE_HOME/capbench``, else ``~/.cache/capbench`` (built tiny
models, probed hardware profiles, compile caches). Run records never go there: every run writes to the one explicit
directory it was given.

:func:`replace_file` is every atomic write in capbench (``run.json``, ``summary.json``, rewritten records, task
data, a sweep's files, the vLLM plugin's engine file, the leaderboard's downloads, an environment's lock stamp).
"""

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def cache_dir() -> Path:
    """The capbench cache directory (not created here)."""
    explicit = os.environ.get("CAPBENCH_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "capbench"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def replace_file(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Replace ``path`` with what ``write`` writes: into a sibling temporary file, synced, then renamed over
    ``path``, so a reader (or a crash) sees the old file or the new one, never half of one. The new file gets the
    permissions a plain ``open`` would give it (the umask's)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would make the result owner-only
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def replace_text(path: Path, text: str) -> None:
    """:func:`replace_file` with UTF-8 text."""
    data = text.encode("utf-8")
    replace_file(path, lambda f: f.write(data))
