"""Reading a user's data file (prompts, a trace): its bytes and UTF-8 text, or one error naming the file."""

from __future__ import annotations

from pathlib import Path

from capbench.errors import ConfigError


def read_utf8(path: str | Path, what: str) -> tuple[bytes, str]:
    """``(bytes, text)`` of ``path``; a :class:`ConfigError` ``"cannot read <what> <path>: ..."`` when it cannot be
    read, or naming the line and byte of the first sequence that is not UTF-8."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        return data, data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{what} {path} is not UTF-8 text (line {line}, byte {exc.start}: {exc.reason}); save it as UTF-8"
        ) from None
