"""Several `citeqa ingest` processes on one index, and readers while they commit.

Writers are the real console script, started together on an index directory that does not exist yet (so
they also race to create it), each with its own documents and a commit per document
(CITEQA_INDEX__COMMIT_EVERY=1), so their commits interleave under the writer lock. Readers are citeqa
commands run back to back while the writers commit; each must succeed and see whole commits only.
"""

import random
import threading
import time
from pathlib import Path

import pytest

from tests.index.cli_helpers import (
    MAX_K,
    CliResult,
    CliServer,
    check_exit,
    check_whole_index,
    cli_env,
    make_article,
    spawn_citeqa,
    temp_files,
    write_article,
)

pytestmark = pytest.mark.slow

QUERY = "harbor council budget report"
ENV = cli_env(model="hash", INDEX__COMMIT_EVERY="1")


@pytest.fixture(scope="module")
def servers():
    with CliServer() as first, CliServer() as second:
        yield first, second


@pytest.fixture(scope="module")
def cli(servers):
    return servers[0]


def write_batch(folder: Path, prefix: str, count: int, rng: random.Random) -> dict[str, tuple[str, str]]:
    folder.mkdir(parents=True)
    docs = {}
    for n in range(count):
        doc_id = f"{prefix}-{n:02d}"
        title, text = make_article(rng, doc_id, paragraphs=(2, 4))
        write_article(folder / f"{doc_id}.txt", doc_id, title, text, noisy=n % 3 == 0)
        docs[doc_id] = (title, text)
    return docs


def run_writers(tmp_path: Path, index: Path, batches: list[dict[str, tuple[str, str]]]) -> list[CliResult]:
    spawned = [spawn_citeqa(["ingest", str(tmp_path / f"writer-{i}"), "--index", str(index), "--json"], env=ENV,
                            log_dir=tmp_path / "logs") for i in range(len(batches))]
    return [s.wait(timeout=300) for s in spawned]


def check_writers(results: list[CliResult], batches: list[dict[str, tuple[str, str]]]) -> None:
    for result, batch in zip(results, batches, strict=True):
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.describe()
        report = result.json()
        assert {d["doc_id"]: d["status"] for d in report["documents"]} == dict.fromkeys(batch, "created")
        assert report["skipped"] == []


def check_generations(index: Path, commits: int) -> None:
    """One FAISS snapshot per commit, numbered in order: no two writers ever committed the same generation."""
    names = sorted(p.name for p in index.glob("vectors-*.faiss"))
    assert names and names[-1] == f"vectors-{commits:010d}.faiss", names
    assert len(names) <= 2, names
    assert temp_files(index) == []


@pytest.mark.parametrize("writers", [2, 4])
def test_concurrent_writers_on_a_fresh_index(writers: int, tmp_path: Path, cli: CliServer) -> None:
    rng = random.Random(writers)
    per_writer = 5 if writers == 2 else 3
    batches = [write_batch(tmp_path / f"writer-{i}", f"w{i}", per_writer, rng) for i in range(writers)]
    index = tmp_path / "index"
    results = run_writers(tmp_path, index, batches)
    check_writers(results, batches)

    expected = {doc_id: doc for batch in batches for doc_id, doc in batch.items()}
    problems = check_whole_index(lambda *args: cli.run([*args, "--index", str(index)]), expected, QUERY)
    assert not problems, "\n".join(problems)
    check_generations(index, commits=len(expected))


def test_readers_never_fail_while_writers_commit(tmp_path: Path, servers: tuple[CliServer, CliServer],
                                                 cli: CliServer) -> None:
    rng = random.Random(99)
    first = write_batch(tmp_path / "first", "seed", 1, rng)
    index = tmp_path / "index"
    seeded = cli.run(["ingest", str(tmp_path / "first"), "--index", str(index), "--json"], env=ENV)
    assert seeded.returncode == 0, seeded.describe()
    batches = [write_batch(tmp_path / f"writer-{i}", f"w{i}", 10, rng) for i in range(2)]

    reads: dict[str, list[CliResult]] = {"list": [], "search": []}
    errors: list[BaseException] = []
    done = threading.Event()

    def read_loop(server: CliServer, kind: str, args: list[str]) -> None:
        """Read back to back once a writer has committed; slowly before, so the writers import faster."""
        committing = False
        try:
            while not done.is_set():
                committing = committing or (index / "vectors-0000000002.faiss").exists()
                if not committing:
                    time.sleep(0.05)
                reads[kind].append(server.run([*args, "--index", str(index)], env=ENV))
        except BaseException as exc:  # re-raised below: a thread's exception would pass unseen
            errors.append(exc)

    readers = [threading.Thread(target=read_loop, args=(servers[0], "list", ["documents", "list", "--json"])),
               threading.Thread(target=read_loop, args=(servers[1], "search", ["search", QUERY, "-k", str(MAX_K),
                                                                                   "--json"]))]
    for reader in readers:
        reader.start()
    try:
        results = run_writers(tmp_path, index, batches)
    finally:
        done.set()
        for reader in readers:
            reader.join()
    assert not errors, errors
    check_writers(results, batches)
    expected = {**first, **{doc_id: doc for batch in batches for doc_id, doc in batch.items()}}
    problems = check_whole_index(lambda *args: cli.run([*args, "--index", str(index)]), expected, QUERY)
    assert not problems, "\n".join(problems)
    check_generations(index, commits=len(expected))

    # Every read succeeded and saw whole documents: a document is visible with all its passages or not at all.
    final = {d["doc_id"]: d["passages"] for d in cli.run(
        ["documents", "list", "--json", "--index", str(index)]).json()["documents"]}
    seen_counts = []
    for kind, results_of_kind in reads.items():
        previous: set[str] = set()
        for result in results_of_kind:
            assert result.returncode == 0 and not check_exit(result), result.describe()
            if kind == "list":
                counts = {d["doc_id"]: d["passages"] for d in result.json()["documents"]}
            else:
                counts = {}
                for hit in result.json()["results"]:
                    counts[hit["doc_id"]] = counts.get(hit["doc_id"], 0) + 1
                assert len({h["passage_id"] for h in result.json()["results"]}) == len(result.json()["results"])
            assert all(final.get(doc_id) == n for doc_id, n in counts.items()), \
                f"{kind} saw part of a document: {counts} (finally {final})"
            assert previous <= set(counts), f"{kind}: a later read lost documents {previous - set(counts)}"
            previous = set(counts)
            seen_counts.append(len(counts))
    middle = [n for n in seen_counts if 1 < n < len(expected)]
    print(f"\n{len(reads['list'])} lists and {len(reads['search'])} searches while 2 writers made "
          f"{len(expected) - 1} commits; {len(middle)} reads saw a state between the first and the last commit")
    assert len(reads["list"]) >= 5 and len(reads["search"]) >= 5
    assert middle, "no read landed while the writers were committing; the test did not test concurrency"
