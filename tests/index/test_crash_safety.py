"""SIGKILL `citeqa ingest` at random moments: what had been committed survives, whole, and stays searchable.

Each round starts the real console script on a new article (every fourth round also on an edited earlier
one, so the kill can land in a replace) and SIGKILLs it at a seeded random moment, in one of four strata
spread over a normal ingest, whose duration and commit time are measured first (and re-measured by every
round that finishes, as the machine's load drifts): before the commit (mostly while it imports), around
the commit, after it up to past the natural exit, and inside the commit, 0-3 ms after its first temp or
snapshot file appears, which lands between the snapshot writes and the SQLite COMMIT.

After every kill the whole index is read back through the CLI (`documents list`, `documents show` of
every document, `search -k 100`) and must hold every ingest that finished and every commit seen before,
with exact text and valid spans; hold the round's own documents all-or-nothing (one commit, new or old
version of a replaced one); and return from FAISS exactly the passages SQLite lists. A commit leaves no
temp file, whatever earlier kills left. A second test does the same with the real model.
"""

import os
import random
import signal
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.index.cli_helpers import (
    MAX_K,
    CliResult,
    CliServer,
    Spawned,
    check_document,
    check_exit,
    cli_env,
    make_article,
    run_citeqa,
    spawn_citeqa,
    temp_files,
    write_article,
)

pytestmark = pytest.mark.slow

QUERY = "harbor council budget report"


@pytest.fixture(scope="module")
def cli():
    with CliServer(preload_model_libraries=True) as server:
        yield server


@dataclass
class Doc:
    doc_id: str
    path: Path
    committed: tuple[str, str] | None = None  # (title, text) the index must hold; None: never committed
    on_disk: tuple[str, str] | None = None  # what the file holds now


@dataclass(frozen=True)
class Kill:
    """SIGKILL `delay` s after the start, or with `watch`, `delay` s after the commit begins writing files."""

    stratum: str
    delay: float
    watch: bool = False


@dataclass
class Stats:
    before_commit: int = 0  # killed, nothing of the round committed
    committed_then_killed: int = 0
    finished: int = 0  # exited 0 before the kill
    temp_left: int = 0  # rounds whose kill left a new .tmp- file behind
    mid_commit: int = 0  # killed inside a commit: its temp or new snapshot files were on disk, SQLite not done
    replace_rounds: int = 0


class Harness:
    """One index, its article files, and what the index must hold."""

    def __init__(self, root: Path, cli: CliServer, *, model: str | None, seed: int) -> None:
        self.index = root / "index"
        self.articles = root / "articles"
        self.articles.mkdir(parents=True)
        self.logs = root / "logs"
        self.cli = cli
        self.env = cli_env(model=model)
        self.rng = random.Random(seed)
        self.docs: dict[str, Doc] = {}
        self.stats = Stats()
        self.last_started_wall = self.last_duration = 0.0
        self.generation = 0  # commits so far: the store names its FAISS files vectors-<generation>.faiss
        self.timings: list[tuple[float, float]] = []  # (duration, FAISS snapshot written at) of normal ingests

    def new_doc(self, doc_id: str) -> Doc:
        doc = Doc(doc_id, self.articles / f"{doc_id}.txt")
        self.write(doc)
        self.docs[doc_id] = doc
        return doc

    def write(self, doc: Doc) -> None:
        title, text = make_article(self.rng, doc.doc_id, paragraphs=(1, 3))
        write_article(doc.path, doc.doc_id, title, text, noisy=self.rng.random() < 0.3)
        doc.on_disk = (title, text)

    def cmd(self, *args: str) -> CliResult:
        return self.cli.run([*args, "--index", str(self.index)], env=self.env)

    # ----- one ingest, killed or not --------------------------------------------------------------

    def ingest_round(self, docs: list[Doc], kill: Kill | None) -> CliResult:
        """Ingest `docs` (already written), SIGKILLed as `kill` says (None: let it finish); then verify."""
        pending = {d.doc_id: d.on_disk for d in docs}
        earlier_leftovers = set(temp_files(self.index)) | set(self.next_generation_files())
        self.last_started_wall = time.time()
        started = time.monotonic()
        spawned = spawn_citeqa(["ingest", *[str(d.path) for d in docs], "--index", str(self.index), "--json"],
                               env=self.env, log_dir=self.logs)
        if kill is not None:
            if kill.watch:
                self.wait_for_commit_files(spawned, ignore=earlier_leftovers, deadline=started + 120)
            time.sleep(kill.delay)
            spawned.kill()
        result = spawned.wait()
        self.last_duration = time.monotonic() - started
        finished = result.returncode == 0
        assert finished or (kill is not None and result.returncode == -signal.SIGKILL), result.describe()
        if finished:
            statuses = {d["doc_id"]: d["status"] for d in result.json()["documents"]}
            assert statuses == {d.doc_id: "created" if d.committed is None else "replaced" for d in docs}, \
                result.describe()
            snapshot = self.index / f"vectors-{self.generation + 1:010d}.faiss"
            self.timings.append((self.last_duration, snapshot.stat().st_mtime - self.last_started_wall))
        left_behind = set(temp_files(self.index)) - earlier_leftovers
        mid_commit = not finished and bool(left_behind or set(self.next_generation_files()) - earlier_leftovers)
        committed_now = self.verify(pending, finished=finished, context=result)
        if committed_now:
            self.generation += 1
            # A commit first deletes what killed writers left, and renames all it writes before committing.
            assert temp_files(self.index) == [], f"temp files after a commit: {temp_files(self.index)}"
        if finished:
            self.stats.finished += 1
        elif committed_now:
            self.stats.committed_then_killed += 1
        else:
            self.stats.before_commit += 1
            self.stats.mid_commit += mid_commit
        self.stats.temp_left += bool(left_behind)
        return result

    def next_generation_files(self) -> list[str]:
        """Snapshot files a commit writes before its SQLite transaction commits."""
        if not self.index.exists():
            return []
        return [n for n in os.listdir(self.index) if n.startswith(("vectors-", "lexical-"))
                and f"-{self.generation + 1:010d}." in n]

    def wait_for_commit_files(self, spawned: Spawned, *, ignore: set[str], deadline: float) -> None:
        """Return as soon as the ingest starts writing its commit (a temp file or a new snapshot appears)."""
        while spawned.proc.poll() is None:
            if (set(temp_files(self.index)) | set(self.next_generation_files())) - ignore:
                return
            assert time.monotonic() < deadline, "the ingest never reached its commit"
            time.sleep(0.0002)

    # ----- the index against what it must hold ----------------------------------------------------

    def verify(self, pending: dict[str, tuple[str, str] | None], *, finished: bool, context: CliResult) -> bool:
        """Check the whole index; return whether this round's documents are committed."""
        where = f"\n(after: {context.describe()})"
        listing = self.cmd("documents", "list", "--json")
        ever_committed = any(d.committed is not None for d in self.docs.values())
        if listing.returncode == 2 and not ever_committed and not finished:
            assert not check_exit(listing), check_exit(listing)
            assert "no index" in listing.stderr, listing.describe() + where
            return False
        assert listing.returncode == 0, listing.describe() + where
        assert "Traceback" not in listing.stderr
        listed = {d["doc_id"]: d for d in listing.json()["documents"]}
        assert set(listed) <= set(self.docs), f"unknown documents {set(listed) - set(self.docs)}{where}"
        missing = [i for i, d in self.docs.items() if d.committed is not None and i not in listed]
        assert not missing, f"committed documents lost: {missing}{where}"

        all_passages: dict[str, tuple[str, int, int]] = {}  # passage_id -> (doc_id, start, end)
        texts: dict[str, str] = {}
        round_versions = set()
        for doc_id, summary in sorted(listed.items()):
            shown = self.cmd("documents", "show", doc_id, "--json")
            assert shown.returncode == 0, shown.describe() + where
            record = shown.json()
            doc = self.docs[doc_id]
            held = (record["title"], record["text"])
            if doc_id in pending:
                assert held in (doc.committed, pending[doc_id]), f"{doc_id}: neither old nor new version{where}"
                round_versions.add(held == pending[doc_id])
            else:
                assert held == doc.committed, f"{doc_id}: content changed{where}"
            assert not check_document(record, doc_id, held[1]), check_document(record, doc_id, held[1])
            assert (summary["title"], summary["chars"], summary["passages"]) == \
                (held[0], len(held[1]), len(record["passages"])), f"{doc_id}: list and show disagree{where}"
            texts[doc_id] = record["text"]
            for p in record["passages"]:
                all_passages[p["passage_id"]] = (doc_id, p["char_start"], p["char_end"])

        # The round's documents were one commit: all of them are new, or none is.
        absent_new = [i for i in pending if i not in listed]
        if absent_new:
            round_versions.add(False)
        assert len(round_versions) <= 1, f"half of a commit is visible: {round_versions}{where}"
        committed_now = round_versions == {True}
        assert committed_now or not finished or not pending, f"an ingest that exited 0 is not in the index{where}"

        total = sum(s["passages"] for s in listed.values())
        assert total <= MAX_K, f"{total} passages: too many for search to return them all; use smaller articles"
        found = self.cmd("search", QUERY, "-k", str(MAX_K), "--json")
        assert found.returncode == 0, found.describe() + where
        results = found.json()["results"]
        ids = [r["passage_id"] for r in results]
        assert len(ids) == len(set(ids)), f"search returned a passage twice{where}"
        assert set(ids) == set(all_passages), (f"FAISS and SQLite disagree: only in search "
                                               f"{set(ids) - set(all_passages)}, never found "
                                               f"{set(all_passages) - set(ids)}{where}")
        assert len(ids) == total
        assert [r["rank"] for r in results] == list(range(1, len(results) + 1))
        for r in results:
            doc_id, start, end = all_passages[r["passage_id"]]
            assert (r["doc_id"], r["char_start"], r["char_end"]) == (doc_id, start, end)
            assert r["text"] == texts[doc_id][start:end]

        if committed_now:
            for doc_id, version in pending.items():
                self.docs[doc_id].committed = version
        return committed_now

    def recover_and_cross_check(self, *, console_script: bool = True) -> None:
        """A final ingest of every file (as a user would re-run it) restores the files' state exactly."""
        fresh = self.new_doc(f"final-{self.rng.randrange(10**6)}")
        args = ["ingest", str(self.articles), "--index", str(self.index), "--json"]
        result = run_citeqa(args, env=self.env) if console_script else self.cli.run(args, env=self.env)
        assert result.returncode == 0, result.describe()
        statuses = {d["doc_id"]: d["status"] for d in result.json()["documents"]}
        for doc in self.docs.values():
            expected = ("created" if doc.committed is None else
                        "unchanged" if doc.committed == doc.on_disk else "replaced")
            assert statuses.get(doc.doc_id) == expected, (doc.doc_id, result.describe())
            doc.committed = doc.on_disk
        assert fresh.doc_id in statuses
        assert temp_files(self.index) == [], temp_files(self.index)
        vector_files = sorted(p.name for p in self.index.glob("vectors-*.faiss"))
        assert 1 <= len(vector_files) <= 2, vector_files
        self.verify({}, finished=True, context=result)
        if console_script:  # the fork server and the console script print the same (test_tamper: a list)
            args = ["search", QUERY, "-k", str(MAX_K), "--json"]
            binary = run_citeqa([*args, "--index", str(self.index)], env=self.env)
            assert binary.returncode == 0 and binary.stdout == self.cmd(*args).stdout, binary.describe()


def calibrate(harness: Harness, root: Path, runs: int) -> None:
    """Time normal ingests in a scratch index; each finished round of the test adds its own timing too."""
    scratch = Harness(root / "calibration", harness.cli, model="hash", seed=harness.rng.randrange(10**6))
    for i in range(runs):
        scratch.ingest_round([scratch.new_doc(f"calibration-{i}")], None)
    harness.timings.extend(scratch.timings)


def plan(harness: Harness, stratum: str) -> Kill:
    """A kill in `stratum`, timed by the median of the ingests timed so far (the machine's load drifts):
    before the commit, around it (±0.25 s), after it up to past the exit, or `inside`: 0-3 ms after the
    commit's first file appears (seen by polling the directory; a commit writes for a few ms)."""
    duration = statistics.median(t[0] for t in harness.timings)
    commit = statistics.median(t[1] for t in harness.timings)
    windows = {"before": (0.02, max(0.05, commit - 0.25)), "commit": (max(0.02, commit - 0.25), commit + 0.25),
               "after": (commit + 0.25, duration + 0.3), "inside": (0.0, 0.003)}
    return Kill(stratum, harness.rng.uniform(*windows[stratum]), watch=stratum == "inside")


def test_sigkill_at_random_moments_never_loses_a_finished_ingest(tmp_path: Path, cli: CliServer) -> None:
    harness = Harness(tmp_path, cli, model="hash", seed=20260312)
    calibrate(harness, tmp_path, runs=2)
    strata = ["before"] * 4 + ["commit"] * 6 + ["inside"] * 5 + ["after"] * 5
    harness.rng.shuffle(strata)
    for number, stratum in enumerate(strata):
        docs = [harness.new_doc(f"crash-{number:02d}")]
        committed = [d for d in harness.docs.values() if d.committed is not None]
        if number % 4 == 3 and committed:
            edited = harness.rng.choice(committed)
            harness.write(edited)
            docs.append(edited)
            harness.stats.replace_rounds += 1
        harness.ingest_round(docs, plan(harness, stratum))
    harness.recover_and_cross_check()

    stats = harness.stats
    duration, commit = (statistics.median(t[i] for t in harness.timings) for i in (0, 1))
    print(f"\nnormal ingest {duration:.2f} s, FAISS snapshot written at {commit:.2f} s; {len(strata)} kills: "
          f"{stats.before_commit} before the commit ({stats.mid_commit} of them inside it, with its files on disk), "
          f"{stats.committed_then_killed} after it, {stats.finished} after the exit; {stats.temp_left} left temp "
          f"files; {stats.replace_rounds} rounds also replaced a document")
    assert stats.before_commit + stats.committed_then_killed + stats.finished == len(strata)
    # The spread did what it is for: kills landed before, inside and after commits.
    assert stats.before_commit >= 2 and stats.committed_then_killed + stats.finished >= 2, stats
    assert stats.mid_commit >= 1, stats


def test_sigkill_with_the_real_model(tmp_path: Path, cli: CliServer) -> None:
    harness = Harness(tmp_path, cli, model=None, seed=7)
    first = harness.new_doc("model-00")
    harness.ingest_round([first], None)  # also times a normal ingest with this model
    for number, stratum in enumerate(["commit", "inside"], start=1):
        docs = [harness.new_doc(f"model-{number:02d}")]
        if number == 2:  # the kill lands in a replace
            harness.write(first)
            docs.append(first)
        harness.ingest_round(docs, plan(harness, stratum))
    # The next ingest (through the fork server: the console script would load the model for 5 s more).
    harness.recover_and_cross_check(console_script=False)
