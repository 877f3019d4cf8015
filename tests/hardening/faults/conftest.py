"""The disk-fault shim: built from faultshim.c into a temp dir, loaded into citeqa with LD_PRELOAD."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

SHIM_SOURCE = Path(__file__).with_name("faultshim.c")


@pytest.fixture(scope="session")
def fault_shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The compiled shim (a shared library); skips where it cannot work."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the fault shim wraps glibc calls and reads /proc/self/fd: Linux only")
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        pytest.skip("no C compiler (gcc or cc) to build the LD_PRELOAD fault shim tests/hardening/faults/faultshim.c")
    library = tmp_path_factory.mktemp("faultshim") / "faultshim.so"
    built = subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-Wall", "-o", str(library), str(SHIM_SOURCE),
                            "-ldl"], capture_output=True, text=True)
    assert built.returncode == 0, f"the fault shim does not compile:\n{built.stderr}"
    return library


def shim_env(env: dict[str, str], directory: Path, log: Path, *, at: int = 0, errno: int = 0,
             persist: bool = False) -> dict[str, str]:
    """`env` plus the shim's settings: fail the `at`-th write under `directory` (0: only count writes)."""
    return {**env, "FAULTSHIM_DIR": str(directory.resolve()), "FAULTSHIM_AT": str(at),
            "FAULTSHIM_ERRNO": str(errno), "FAULTSHIM_PERSIST": "1" if persist else "0", "FAULTSHIM_LOG": str(log)}


@dataclass(frozen=True)
class Write:
    """One write the shim counted: its number, the libc call, the file, and whether the shim failed it."""

    number: int
    call: str
    path: str
    failed: bool

    @property
    def name(self) -> str:
        return os.path.basename(self.path)


def read_log(log: Path) -> list[Write]:
    """The writes of the last run (the log is removed after reading, ready for the next run)."""
    if not log.exists():
        return []
    writes = []
    for line in log.read_text().splitlines():
        number, call, rest = line.split(" ", 2)
        path, outcome = rest.rsplit(" ", 1)
        writes.append(Write(int(number), call, path, outcome == "fail"))
    log.unlink()
    return writes
