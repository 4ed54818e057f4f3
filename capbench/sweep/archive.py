"""A run directory as one archive (how a Ray worker hands a point's run back to the driver), unpacked strictly.

:func:`pack_run_dir` writes a gzip-compressed tar whose members lie under :data:`ARCHIVE_ROOT`.
:func:`extract_run_archive` accepts only files and folders under that root (no absolute or foreign names, no
``..``, no links, devices or fifos), unpacks beside the destination and renames it into place: the run
directory appears whole or not at all.
"""

from __future__ import annotations

import io
import posixpath
import shutil
import tarfile
import tempfile
from pathlib import Path

from capbench.errors import CapbenchError, one_line
from capbench.sweep.point import ERROR_TAIL_CHARS

ARCHIVE_ROOT = "run"
"""The folder every member of a run archive lies under."""


def pack_run_dir(run_dir: Path) -> bytes:
    """``run_dir`` as a gzip-compressed tar, its members under :data:`ARCHIVE_ROOT` (a link is refused on unpacking)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as tar:
        tar.add(run_dir, arcname=ARCHIVE_ROOT, recursive=True)
    return buffer.getvalue()


def _inside(name: str) -> bool:
    """Whether the normalized archive path ``name`` is :data:`ARCHIVE_ROOT` or lies under it."""
    return name == ARCHIVE_ROOT or name.startswith(ARCHIVE_ROOT + "/")


def _check_member(member: tarfile.TarInfo) -> None:
    name = member.name
    if name.startswith("/") or (len(name) > 1 and name[1] == ":") or "\\" in name:
        raise CapbenchError(f"refusing to unpack a run archive: member {name!r} has an absolute or foreign path")
    parts = name.split("/")
    if ".." in parts:
        raise CapbenchError(f"refusing to unpack a run archive: member {name!r} climbs out with '..'")
    normal = posixpath.normpath(name)
    if not _inside(normal):
        raise CapbenchError(f"refusing to unpack a run archive: member {name!r} is not under {ARCHIVE_ROOT}/")
    if member.issym() or member.islnk():  # a run directory holds none; a link could reach outside it
        raise CapbenchError(f"refusing to unpack a run archive: member {name!r} is a link ({member.linkname!r})")
    if not (member.isfile() or member.isdir()):
        raise CapbenchError(f"refusing to unpack a run archive: member {name!r} is not a file or folder")


def extract_run_archive(data: bytes, dest: Path) -> None:
    """Unpack a run archive (:func:`pack_run_dir`) into ``dest``, which must not exist; all or nothing.

    Raises :class:`CapbenchError` when ``dest`` exists, the archive is unreadable, or any member is unsafe (an
    absolute name, ``..``, a name outside ``run/``, a link, a device or fifo); then nothing is left behind.
    """
    if dest.exists() or dest.is_symlink():
        raise CapbenchError(f"refusing to unpack a run into {dest}: it already exists")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".unpack", dir=dest.parent))
    try:
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
                members = tar.getmembers()
                for member in members:
                    _check_member(member)
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(staging, members=members, filter="data")
                else:  # Python < 3.11.4: the checks above are the guard
                    tar.extractall(staging, members=members)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise CapbenchError(
                f"cannot unpack the run archive into {dest}: {one_line(exc, ERROR_TAIL_CHARS)}"
            ) from exc
        unpacked = staging / ARCHIVE_ROOT
        if not unpacked.is_dir() or unpacked.is_symlink():
            raise CapbenchError(f"the run archive for {dest} holds no {ARCHIVE_ROOT}/ folder")
        if dest.exists() or dest.is_symlink():
            raise CapbenchError(f"refusing to unpack a run into {dest}: it already exists")
        unpacked.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
