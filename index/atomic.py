"""Durable file replacement: a reader sees the old file or the new one, never a mix."""

import contextlib
import os
import tempfile
from pathlib import Path

TEMP_PREFIX = ".tmp-"


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` via a temp file, fsync, `os.replace` and a directory fsync."""
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in `directory` survive a power cut."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_temp_files(directory: Path) -> None:
    """Delete temp files a killed writer left behind (call only while holding the writer lock)."""
    for leftover in directory.glob(f"{TEMP_PREFIX}*"):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
