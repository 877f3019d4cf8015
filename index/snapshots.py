"""Per-commit snapshot files (the FAISS index, the BM25 index): new name per generation, SHA-256 on read.

A commit writes `<kind>-<generation>.<ext>` with `write_atomic`, and records the name and its SHA-256 in
the same SQLite transaction that changes the rows. A reader trusts a file only when its bytes match the
recorded digest, so a torn, flipped or swapped file is never handed to a parser; the caller rebuilds
the snapshot from SQLite instead.
"""

import contextlib
import hashlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from index.atomic import fsync_dir, write_atomic

log = logging.getLogger(__name__)

SUFFIXES = {"vectors": ".faiss", "lexical": ".npz"}


def snapshot_name(kind: str, generation: int) -> str:
    return f"{kind}-{generation:010d}{SUFFIXES[kind]}"


def write_snapshot(directory: Path, kind: str, generation: int, data: bytes) -> tuple[Path, str]:
    """Durably write one snapshot; return its path and SHA-256."""
    path = directory / snapshot_name(kind, generation)
    try:
        write_atomic(path, data)
    except BaseException:
        # When the directory fsync after the rename fails, the file is already in place; a generation that is
        # not committed is read by no one, so remove it rather than leave it behind.
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    return path, hashlib.sha256(data).hexdigest()


def read_snapshot(directory: Path, kind: str, name: str, sha256: str) -> bytes | None:
    """The snapshot's bytes if the file exists and matches its digest; else None, with a warning saying why."""
    if not _expected_name(kind, name):
        return None
    path = directory / name
    try:
        data = path.read_bytes()
    except OSError as exc:
        log.warning("cannot read %s (%s); rebuilding it from the database", path, exc.strerror or exc)
        return None
    if hashlib.sha256(data).hexdigest() != sha256:
        log.warning("%s fails its checksum; rebuilding it from the database", path)
        return None
    return data


@contextlib.contextmanager
def verified_snapshot(directory: Path, kind: str, name: str, sha256: str) -> Iterator[str | None]:
    """A path to read the snapshot from if it exists and matches its digest, else None (with a warning why).

    For a snapshot too large to hold twice (the FAISS index, possibly memory-mapped): the file is opened once
    and hashed through that descriptor, and the path given names the same open file (/proc/self/fd/N where
    there is one), so a file replaced after the check is never read.
    """
    path = directory / name
    with contextlib.ExitStack() as stack:
        found = None
        try:
            if _expected_name(kind, name):
                handle = stack.enter_context(open(path, "rb"))
                if hashlib.file_digest(handle, "sha256").hexdigest() != sha256:
                    log.warning("%s fails its checksum; rebuilding it from the database", path)
                else:
                    by_descriptor = f"/proc/self/fd/{handle.fileno()}"
                    found = by_descriptor if os.path.exists(by_descriptor) else str(path)
        except OSError as exc:
            log.warning("cannot read %s (%s); rebuilding it from the database", path, exc.strerror or exc)
        yield found


def _expected_name(kind: str, name: str) -> bool:
    """Whether the manifest names a file of this kind in the index directory (an empty name: none yet)."""
    if not name:
        return False
    if "/" in name or "\\" in name or not (name.startswith(f"{kind}-") and name.endswith(SUFFIXES[kind])):
        log.warning("the manifest names an unexpected %s file %r; rebuilding it", kind, name)
        return False
    return True


def remove_stale_snapshots(directory: Path, generation: int) -> None:
    """Keep this generation and the previous one: a reader may still be opening the previous one."""
    keep = {snapshot_name(kind, g) for kind in SUFFIXES for g in (generation, generation - 1)}
    for kind, suffix in SUFFIXES.items():
        for path in directory.glob(f"{kind}-*{suffix}"):
            if path.name not in keep:
                with contextlib.suppress(OSError):
                    path.unlink()
    with contextlib.suppress(OSError):
        fsync_dir(directory)
