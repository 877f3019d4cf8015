"""A full disk or a failing disk during `citeqa ingest`: a clean error, and the index keeps its last commit.

The fault shim (faultshim.c, LD_PRELOAD) fails the Nth write, sync or truncate of a file under the index
directory with ENOSPC or EIO: only that one (`once`) or that one and every later one (`persist`). It reaches
SQLite's writes, made from C, as well as the snapshot files Python writes. For N = 1, 2, … a series ingests
a new version of one article into the same index under the shim, until N passes the ingest's last write
(no fault fires). After every ingest:

* it exited 2 with exactly one line on stderr saying that the index could not be written and why, or 0;
* after a failure, `documents list` and `search` print exactly what they printed before it, `ask` still
  answers from the index (checked after the first failure in each file: it loads spaCy, ~2 s a run), and
  the index directory holds the same files as before: no temp file, no snapshot of the aborted commit;
* after a success, the whole index (every document's text and spans, search over every passage) holds the
  new version, and the next N runs on that state.

Each ingest runs in a fresh process: the real `citeqa` console script for the N that, in an ingest with no
fault, are the first snapshot write, the commit's WAL sync and the first checkpoint write; the others through
`CliServer`, which forks a fresh child of a process that imported citeqa with the shim loaded (tens of ms
instead of ~3 s each).
"""

from __future__ import annotations

import errno
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from tests.hardening.faults.conftest import Write, read_log, shim_env
from tests.index.cli_helpers import (
    CliResult,
    CliServer,
    check_exit,
    check_whole_index,
    cli_env,
    run_citeqa,
    temp_files,
    write_article,
)

pytestmark = pytest.mark.slow

# Articles written for these tests (no third-party text); QUESTION is answered from the first one.
ARTICLES = {
    "harbor-bridge": ("Council approves harbor bridge",
                      "The city council approved the new harbor bridge on Tuesday. The bridge will cost 4.2 "
                      "million dollars and open in 2027.\n\nMayor Lena Ortiz said the ferry keeps running "
                      "until the bridge opens."),
    "school-budget": ("School budget passes after long debate",
                      "The school board passed its budget after a four-hour meeting. Teachers will get a raise "
                      "of three percent, and class sizes stay the same."),
}
QUESTION = "How much will the harbor bridge cost?"
QUERY = "harbor council budget report"
FAULT_DOC = "orchard-report"
SQLITE_OWN = {"index.sqlite-wal", "index.sqlite-shm"}  # SQLite's journal files, not leftovers of ours
ERROR_WORDS = {  # SQLite reports a failed fsync or shared-memory write as "disk I/O error", whatever the errno
    errno.ENOSPC: ("No space left on device", "database or disk is full", "disk I/O error"),
    errno.EIO: ("Input/output error", "disk I/O error"),
}


def fault_article(version: int) -> tuple[str, str]:
    """(title, text) of version N of the article the series ingests; every version has the same length."""
    return (f"Orchard report {version:03d}",
            f"Version {version:03d}: the orchard festival drew {31 * version + 10007:05d} visitors. The "
            "vineyard owners said the glacier water lasted all summer.")


def written_file(write: Write) -> str:
    """The file a write went to: "index.sqlite-wal", ".tmp-" (a snapshot's temp file), "directory"."""
    return ".tmp-" if write.name.startswith(".tmp-") else "directory" if Path(write.path).is_dir() else write.name


def write_kind(write: Write) -> str:
    """E.g. "fdatasync index.sqlite-wal", "write .tmp-", "fsync directory"."""
    return f"{write.call} {written_file(write)}"


def console_script_points(writes: list[Write]) -> set[int]:
    """In an ingest with no fault: the first snapshot write, the commit's WAL sync, the first checkpoint write."""
    snapshot = next(w.number for w in writes if w.name.startswith(".tmp-"))
    checkpoint = next(w for w in writes if w.name == "index.sqlite")
    # The commit syncs the WAL; then the store syncs the directory (old snapshots removed); then the checkpoint.
    directory = str(Path(checkpoint.path).parent)
    directory_sync = max(w.number for w in writes if w.path == directory and w.number < checkpoint.number)
    commit = max(w.number for w in writes if w.name == "index.sqlite-wal" and w.call in ("fsync", "fdatasync")
                 and w.number < directory_sync)
    return {snapshot, commit, checkpoint.number}


@pytest.fixture(scope="module")
def cli(fault_shim: Path):
    """A fork server whose children run with the shim loaded; the shim does nothing without FAULTSHIM_DIR."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LD_PRELOAD", str(fault_shim))  # cli_env() copies os.environ into the server's environment
        server = CliServer()
    with server:
        yield server


class Series:
    """One index ingested into under the shim, N = 1, 2, …, and what it must hold."""

    def __init__(self, root: Path, cli: CliServer, shim: Path, *, fault: int, persist: bool) -> None:
        self.index = root / "index"
        self.articles = root / "articles"
        self.articles.mkdir(parents=True)
        self.log = root / "shim.log"
        self.cli, self.shim, self.fault, self.persist = cli, shim, fault, persist
        self.env = cli_env()
        self.expected: dict[str, tuple[str, str]] = {}
        self.reads: tuple[str, str] = ("", "")  # what `documents list` and `search` print for the last commit

    def run(self, *args: str) -> CliResult:
        return self.cli.run([*args, "--index", str(self.index)], env=self.env)

    def write(self, doc_id: str, title: str, text: str) -> Path:
        path = self.articles / f"{doc_id}.md"
        write_article(path, doc_id, title, text)
        return path

    def setup(self) -> None:
        paths = [self.write(doc_id, *article) for doc_id, article in ARTICLES.items()]
        result = self.run("ingest", *map(str, paths), "--json")
        assert result.returncode == 0, result.describe()
        self.expected.update(ARTICLES)
        self.check_committed()
        self.check_answers()

    def ingest(self, path: Path, at: int, *, console_script: bool) -> tuple[CliResult, list[Write]]:
        env = shim_env(self.env, self.index, self.log, at=at, errno=self.fault, persist=self.persist)
        args = ["ingest", str(path), "--index", str(self.index), "--json"]
        result = (run_citeqa(args, env={**env, "LD_PRELOAD": str(self.shim)}, timeout=120) if console_script
                  else self.cli.run(args, env=env, timeout=120))
        return result, read_log(self.log)

    def count_writes(self) -> list[Write]:
        """The writes of an ingest like the series' first, with no fault, into a copy of the index."""
        scratch = self.index.parent / "counting"
        shutil.copytree(self.index, scratch / "index")
        path = scratch / f"{FAULT_DOC}.md"
        write_article(path, FAULT_DOC, *fault_article(0))
        env = shim_env(self.env, scratch / "index", self.log)
        result = self.cli.run(["ingest", str(path), "--index", str(scratch / "index"), "--json"], env=env)
        assert result.returncode == 0, result.describe()
        writes = read_log(self.log)
        shutil.rmtree(scratch)
        return writes

    # ----- what the index must hold -----------------------------------------------------------------

    def current_reads(self) -> tuple[str, str]:
        listing = self.run("documents", "list", "--json")
        found = self.run("search", QUERY, "-k", "100", "--json")
        for result in (listing, found):
            assert result.returncode == 0 and result.stderr == "", result.describe()
        return listing.stdout, found.stdout

    def check_committed(self) -> None:
        """The whole index holds exactly the expected documents; remember what the reads print."""
        problems = check_whole_index(self.run, self.expected, QUERY)
        assert not problems, "\n".join(problems)
        assert temp_files(self.index) == [], temp_files(self.index)
        self.reads = self.current_reads()

    def check_answers(self) -> None:
        """`ask` answers QUESTION from the index, quoting the article's sentence."""
        asked = self.run("ask", QUESTION, "--json")
        assert asked.returncode == 0 and asked.stderr == "", asked.describe()
        answer = asked.json()
        assert not answer["refused"] and "4.2 million" in answer["answer"], answer
        citation = answer["citations"][0]
        text = self.expected[citation["doc_id"]][1]
        assert citation["doc_id"] == "harbor-bridge" and "4.2 million" in citation["quote"], answer
        assert text[citation["char_start"]:citation["char_end"]] == citation["quote"], answer

    def index_files(self) -> set[str]:
        return {p.name for p in self.index.iterdir()} - SQLITE_OWN


def check_error(result: CliResult, index: Path, fault: int) -> list[str]:
    """Problems with how a failed ingest reported the failure."""
    lines = result.stderr.strip().splitlines()
    if len(lines) != 1:
        return [f"not exactly one line on stderr\n{result.describe()}"]
    if not (lines[0].startswith("citeqa: error: cannot write") and str(index) in lines[0]
            and any(word in lines[0] for word in ERROR_WORDS[fault])):
        return [f"the error does not say that {index} could not be written and why: {lines[0]!r}"]
    return []


@pytest.mark.parametrize("persist", [False, True], ids=["once", "persist"])
@pytest.mark.parametrize("fault", [errno.ENOSPC, errno.EIO], ids=["ENOSPC", "EIO"])
def test_failing_writes_leave_the_last_commit(tmp_path: Path, cli: CliServer, fault_shim: Path, fault: int,
                                              persist: bool) -> None:
    series = Series(tmp_path, cli, fault_shim, fault=fault, persist=persist)
    series.setup()
    counted = series.count_writes()
    assert not any(w.failed for w in counted)
    assert {w.name for w in counted} >= {"index.sqlite", "index.sqlite-wal"}, "the shim misses SQLite's writes"
    console_points = console_script_points(counted)

    failed_at: list[int] = []
    succeeded_at: list[int] = []
    failed_first: Counter[str] = Counter()  # the first failed write of each failed ingest, by kind
    console_runs: list[tuple[int, str, int]] = []  # (N, its first failed write, exit code)
    at = 0
    while True:
        at += 1
        assert at <= 3 * len(counted), f"no end to the writes at N={at}"
        title, text = fault_article(at)
        path = series.write(FAULT_DOC, title, text)
        files_before = series.index_files()
        result, writes = series.ingest(path, at, console_script=at in console_points)
        fired = [w for w in writes if w.failed]
        kind = write_kind(fired[0]) if fired else "-"
        if at in console_points:
            console_runs.append((at, kind, result.returncode))
        where = f"\n(N={at}, failed writes: {[(w.number, w.call, w.name) for w in fired][:3]})"
        problems = check_exit(result)
        assert not problems, "\n".join(problems) + where
        if result.returncode == 0:
            statuses = {d["doc_id"]: d["status"] for d in result.json()["documents"]}
            assert statuses == {FAULT_DOC: "replaced" if FAULT_DOC in series.expected else "created"}, \
                result.describe() + where
            assert result.stderr == "", result.describe() + where
            series.expected[FAULT_DOC] = (title, text)
            series.check_committed()
            if not succeeded_at:
                series.check_answers()
            succeeded_at.append(at)
        else:
            assert fired, f"the ingest failed although no write failed{where}\n{result.describe()}"
            problems = check_error(result, series.index, fault)
            assert not problems, "\n".join(problems) + where
            assert series.current_reads() == series.reads, f"the index changed after a failed ingest{where}"
            if not any(k.endswith(" " + written_file(fired[0])) for k in failed_first):
                series.check_answers()
            assert series.index_files() == files_before, \
                f"files left behind: {sorted(series.index_files() ^ files_before)}{where}"
            failed_at.append(at)
            failed_first[kind] += 1
        if not fired:
            break  # N is past the ingest's last write: each of its writes has failed in one of the runs
    series.check_answers()

    name = f"{errno.errorcode[fault]} {'persist' if persist else 'once'}"
    print(f"\n{name}: {len(counted)} writes in an ingest with no fault; N=1..{at}: {len(failed_at)} clean "
          f"failures, {len(succeeded_at)} commits (N={_ranges(succeeded_at)}); first failed write of the failures: "
          f"{json.dumps(dict(sorted(failed_first.items())))}; console script (N, first failed write, exit): "
          f"{console_runs}")
    assert failed_at and succeeded_at
    # The console script behaved like the fork server where a Python write and where a SQLite write failed.
    assert any(kind == "write .tmp-" and code == 2 for _, kind, code in console_runs), console_runs
    assert any(kind.endswith("index.sqlite-wal") and code == 2 for _, kind, code in console_runs), console_runs


def _ranges(numbers: list[int]) -> str:
    spans: list[list[int]] = []
    for n in numbers:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in spans)
