"""What several modules share about files: finding the course folder, and writing a file whole or
not at all."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def find_up(start: Path | str, *markers: Path | str, parents: bool = True) -> Path | None:
    """The first folder at ``start`` or above it (only ``start`` itself without ``parents``) that holds
    every one of ``markers`` (paths relative to it), or None."""
    start = Path(start).resolve()
    for folder in (start, *start.parents) if parents else (start,):
        if all((folder / marker).exists() for marker in markers):
            return folder
    return None


def write_atomic(path: Path | str, data: bytes | str) -> None:
    """Write ``data`` (text as UTF-8) to a temporary file beside ``path``, then rename it into place:
    readers, and a run killed half way, see the old file or the new one, never half of one."""
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
