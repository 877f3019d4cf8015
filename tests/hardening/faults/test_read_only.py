"""A read-only index directory: every read works, every write fails with one clear line, nothing changes.

The directory is made read-only in two ways, each where this machine allows it, and the real `citeqa`
console script runs against it:

* `chmod -R a-w`. Root ignores permission bits, so as root the commands run in a new user namespace
  (`unshare --user`), where root's uid is not mapped and the kernel checks the bits as for any user.
* a read-only bind mount (`unshare -m`, root only): writes fail with EROFS, as on read-only media.

SQLite cannot create its WAL shared-memory file in a read-only directory. A clean index (no WAL left) is
read as `immutable`; an index whose last commits are still in the WAL (its writer was killed before the
checkpoint) is read with `mode=ro` through the -shm file the writer left, so those commits are not lost.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.index.cli_helpers import (
    CITEQA,
    PYTHON,
    ROOT,
    CliResult,
    check_document,
    check_exit,
    check_whole_index,
    cli_env,
    run_citeqa,
    write_article,
)

pytestmark = pytest.mark.slow

# Articles written for these tests (no third-party text).
ARTICLES = {
    "harbor-bridge": ("Council approves harbor bridge",
                      "The city council approved the new harbor bridge on Tuesday. The bridge will cost 4.2 "
                      "million dollars and open in 2027.\n\nMayor Lena Ortiz said the ferry keeps running "
                      "until the bridge opens."),
    "school-budget": ("School budget passes after long debate",
                      "The school board passed its budget after a four-hour meeting. Teachers will get a raise "
                      "of three percent, and class sizes stay the same."),
}
LATE = ("late-news", "Glacier station reopens",
        "The glacier research station reopened after the storm. Its satellite link cost 900 thousand dollars.")
QUERY = "harbor council budget report"
# Exits before SQLite is closed, so the commit stays in the WAL, as a writer killed after its commit leaves it.
KILLED_AFTER_COMMIT = ("import os, signal, sys\nfrom api.cli import main\ncode = main(sys.argv[1:])\n"
                       "sys.stdout.flush()\nos.kill(os.getpid(), signal.SIGKILL) if code == 0 else sys.exit(code)\n")
MOUNT_READ_ONLY = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'

Runner = Callable[..., CliResult]


def make_read_only(mechanism: str, directory: Path) -> list[str]:
    """Make `directory` read-only as `mechanism` says; return the command prefix under which it is.

    Skips, saying why, where this machine cannot do it.
    """
    if mechanism == "chmod":
        subprocess.run(["chmod", "-R", "a-w", str(directory)], check=True)
        prefix = ["unshare", "--user"] if os.geteuid() == 0 else []
    else:
        if os.geteuid() != 0:
            pytest.skip("a read-only bind mount needs root (unshare -m and mount)")
        prefix = ["unshare", "-m", "sh", "-c", MOUNT_READ_ONLY, str(directory)]
    if prefix and shutil.which("unshare") is None:
        pytest.skip("running as root, and no `unshare` to drop root's write access (util-linux)")
    probe = subprocess.run([*prefix, "sh", "-c", 'touch "$0"/.probe', str(directory)], capture_output=True, text=True)
    if probe.returncode == 0:
        (directory / ".probe").unlink()
        pytest.skip(f"{mechanism}: the directory is still writable here")
    if "touch:" not in probe.stderr:  # unshare itself failed (no user or mount namespaces in this container)
        pytest.skip(f"{' '.join(prefix[:2])} is not allowed here: {probe.stderr.strip()}")
    return prefix


@pytest.fixture
def writable_again(tmp_path: Path) -> Iterator[None]:
    yield
    subprocess.run(["chmod", "-R", "u+w", str(tmp_path)], check=False)  # so pytest can remove tmp_path


def runner(prefix: list[str], index: Path) -> Runner:
    """`run(*args)`: the console script run on `index` as the prefix sees it."""
    def run(*args: str) -> CliResult:
        argv = [*args, "--index", str(index)]
        proc = subprocess.run([*prefix, str(CITEQA), *argv], env=cli_env(), cwd=ROOT, capture_output=True,
                              text=True, timeout=180, stdin=subprocess.DEVNULL)
        return CliResult(tuple(argv), proc.returncode, proc.stdout, proc.stderr)
    return run


def build_index(root: Path, *, killed_after: tuple[str, str, str] | None = None) -> None:
    """An index of ARTICLES at root/index; with `killed_after`, one more article committed by a writer killed
    right after its commit."""
    articles = root / "articles"
    articles.mkdir(parents=True)
    for doc_id, (title, text) in ARTICLES.items():
        write_article(articles / f"{doc_id}.md", doc_id, title, text)
    result = run_citeqa(["ingest", str(articles), "--index", str(root / "index"), "--json"])
    assert result.returncode == 0, result.describe()
    if killed_after is not None:
        doc_id, title, text = killed_after
        write_article(root / f"{doc_id}.md", doc_id, title, text)
        killed = subprocess.run([str(PYTHON), "-c", KILLED_AFTER_COMMIT, "ingest", str(root / f"{doc_id}.md"),
                                 "--index", str(root / "index")], env=cli_env(), cwd=ROOT, capture_output=True,
                                text=True, timeout=180)
        assert killed.returncode == -9 and "created" in killed.stdout, killed


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Index directories to copy from: "clean" (closed normally), "wal" (LATE still in the WAL)."""
    root = tmp_path_factory.mktemp("read-only-templates")
    build_index(root / "clean")
    build_index(root / "wal", killed_after=LATE)
    return {"clean": root / "clean" / "index", "wal": root / "wal" / "index"}


def copy_index(template: Path, tmp_path: Path) -> Path:
    index = tmp_path / "index"
    shutil.copytree(template, index)  # no process has these files open: a plain copy is a consistent index
    return index


def fingerprint(directory: Path) -> dict[str, str]:
    """Every file's name and SHA-256."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def check_refused(result: CliResult, index: Path) -> list[str]:
    """Problems with how a write to the read-only index was refused."""
    problems = check_exit(result)
    if result.returncode != 2:
        return [*problems, f"exit {result.returncode}, not 2\n{result.describe()}"]
    lines = result.stderr.strip().splitlines()
    if len(lines) != 1 or not lines[0].startswith(f"citeqa: error: cannot write to {index}") or not any(
            why in lines[0] for why in ("Permission denied", "Read-only file system")):
        problems.append(f"not one line saying that {index} cannot be written and why\n{result.describe()}")
    return problems


def check_answers(run: Runner) -> None:
    asked = run("ask", "How much will the harbor bridge cost?", "--json")
    assert asked.returncode == 0 and asked.stderr == "", asked.describe()
    answer = asked.json()
    assert not answer["refused"] and "4.2 million" in answer["answer"], answer
    assert answer["citations"][0]["doc_id"] == "harbor-bridge", answer


@pytest.mark.parametrize("mechanism", ["chmod", "mount"])
def test_reads_work_and_writes_fail_cleanly(tmp_path: Path, templates: dict[str, Path], mechanism: str,
                                            writable_again: None) -> None:
    index = copy_index(templates["clean"], tmp_path)
    expected = dict(ARTICLES)
    assert not (index / "index.sqlite-wal").exists()  # a clean close checkpoints and removes the WAL
    new = tmp_path / "new.md"
    write_article(new, LATE[0], LATE[1], LATE[2])
    run = runner(make_read_only(mechanism, index), index)
    before = fingerprint(index)

    problems = check_whole_index(run, expected, QUERY)
    assert not problems, "\n".join(problems)
    check_answers(run)
    for result in (run("ingest", str(new), "--json"), run("documents", "delete", "harbor-bridge")):
        problems = check_refused(result, index)
        assert not problems, "\n".join(problems)
    assert fingerprint(index) == before


@pytest.mark.parametrize("mechanism", ["chmod", "mount"])
def test_commits_left_in_the_wal_are_read(tmp_path: Path, templates: dict[str, Path], mechanism: str,
                                          writable_again: None) -> None:
    index = copy_index(templates["wal"], tmp_path)
    expected = {**ARTICLES, LATE[0]: (LATE[1], LATE[2])}
    assert (index / "index.sqlite-wal").stat().st_size > 0 and (index / "index.sqlite-shm").exists()
    run = runner(make_read_only(mechanism, index), index)
    before = fingerprint(index)

    listing = run("documents", "list", "--json")
    assert listing.returncode == 0 and listing.stderr == "", listing.describe()
    assert sorted(d["doc_id"] for d in listing.json()["documents"]) == sorted(expected)
    shown = run("documents", "show", LATE[0], "--json")
    assert shown.returncode == 0, shown.describe()
    assert not check_document(shown.json(), LATE[0], LATE[2])
    found = run("search", "glacier station satellite link", "-k", "100", "--json")
    assert found.returncode == 0 and found.stderr == "", found.describe()
    assert {r["doc_id"] for r in found.json()["results"]} == set(expected)
    check_answers(run)
    assert fingerprint(index) == before


def test_wal_without_its_shared_memory_file_is_a_clear_error(tmp_path: Path, templates: dict[str, Path],
                                                             writable_again: None) -> None:
    """A WAL whose -shm file is gone cannot be read read-only; say so instead of serving an older state."""
    index = copy_index(templates["wal"], tmp_path)
    (index / "index.sqlite-shm").unlink()
    run = runner(make_read_only("chmod", index), index)
    result = run("documents", "list", "--json")
    assert not check_exit(result), check_exit(result)
    assert result.returncode == 2, result.describe()
    assert "index.sqlite-wal holds commits" in result.stderr and "write access" in result.stderr, result.describe()

