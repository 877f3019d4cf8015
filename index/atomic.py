"""Durable file replacement: a reader sees the old file or the new one, never a mix."""

import contextlib
import os
import tempfile
from pathlib import Path

TEMP_PREFIX = ".tmp-"
# mkstemp creates files 0600; a file written here gets the mode open() would give it (0666 less the umask), so
# another user allowed to read the index can. Read once, at import, before any thread could race the umask.
_UMASK = os.umask(0o022)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` via a temp file, fsync, `os.replace` and a directory fsync."""
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), FILE_MODE)
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
