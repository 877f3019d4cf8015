"""Durable file replacement: content, mode and no temp file left."""

import stat
from pathlib import Path

import pytest

from index.atomic import FILE_MODE, TEMP_PREFIX, write_atomic


def test_replaces_the_file_with_the_mode_open_would_give(tmp_path: Path) -> None:
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    # mkstemp's 0600 would lock out other users allowed to read the index.
    assert stat.S_IMODE(target.stat().st_mode) == FILE_MODE
    assert not list(tmp_path.glob(f"{TEMP_PREFIX}*"))


def test_a_failed_write_leaves_no_temp_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    with pytest.raises(IsADirectoryError):  # os.replace cannot put a file over a directory
        write_atomic(tmp_path / "sub", b"x")
    assert not list(tmp_path.glob(f"{TEMP_PREFIX}*"))
