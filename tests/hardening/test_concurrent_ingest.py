"""Twenty ingests at once, ten through `citeqa serve --workers 2` and ten through the `citeqa ingest` console script.

tests/index/test_concurrency.py races CLI writers against each other; this adds the server's workers, which
hold the index open and serve reads while writers of other processes commit. To make all twenty truly wait
at once, the test holds the index's writer lock while it starts them: the CLI processes start, open the index
and reach the lock; the HTTP ingests (JSON bodies and multipart uploads, spread over both workers) reach it in
the worker threads. While they wait, both workers must go on answering reads, and nothing may be committed.
Then the lock is released and the twenty commit in whatever order the lock gives them, while a reader lists
the documents over and over.

Afterwards every document is present once with its exact text, title and valid spans (`check_whole_index`,
read through the CLI), each through its own commit (generation + 20), found by a search for its own word on
both workers, and the index files agree (SQLite rows, the manifest, FAISS ids, the BM25 size).

A second test shares one real embedder among threads that chunk and embed at once, as a worker's do.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest
from filelock import FileLock

from tests.api.http_helpers import build_demo_index, running_server
from tests.hardening.audit import audit_index, small_article, token_for
from tests.index.cli_helpers import (
    CliResult,
    CliServer,
    Spawned,
    check_whole_index,
    cli_env,
    spawn_citeqa,
    write_article,
)

pytestmark = pytest.mark.slow

EACH = 10  # ingests through HTTP, and as many through the CLI
ENV = cli_env(model="hash")
QUERY = "harbor council budget report"


@pytest.fixture(scope="module")
def cli():
    with CliServer() as server:
        yield server


def fresh_get(base: str, path: str, **params: str | int) -> httpx.Response:
    """A GET on a new connection, which the kernel may hand to either worker."""
    with httpx.Client(base_url=base, timeout=60) as client:
        return client.get(path, params=params)


def post_document(base: str, doc_id: str, title: str, text: str, upload: bytes | None) -> httpx.Response:
    with httpx.Client(base_url=base, timeout=300) as client:
        if upload is not None:
            return client.post("/v1/documents", files={"file": (f"{doc_id}.txt", upload, "text/plain")})
        return client.post("/v1/documents", json={"text": text, "title": title, "doc_id": doc_id})


def wait_until_indexes_open(spawned: list[Spawned], index: Path, timeout: float = 300) -> None:
    """Until every CLI writer has opened the index (the next thing it does is reach the writer lock) or exited."""
    database = str(index / "index.sqlite")
    deadline = time.monotonic() + timeout
    pending = list(spawned)
    while pending and time.monotonic() < deadline:
        still = []
        for s in pending:
            try:
                if s.proc.poll() is None and database not in {f.path for f in psutil.Process(s.proc.pid).open_files()}:
                    still.append(s)
            except psutil.NoSuchProcess:
                pass
        pending = still
        time.sleep(0.2)
    assert not pending, f"{len(pending)} CLI writers never opened the index"


def test_twenty_ingests_at_once_over_http_and_the_cli(tmp_path: Path, cli: CliServer) -> None:
    index = build_demo_index(tmp_path / "index")
    run = lambda *args: cli.run([*args, "--index", str(index)], env=ENV)  # noqa: E731
    expected = {}
    for doc in run("documents", "list", "--json").json()["documents"]:
        shown = run("documents", "show", doc["doc_id"], "--json").json()
        expected[doc["doc_id"]] = (shown["title"], shown["text"])
    before, _ = audit_index(index)

    rng = random.Random(20)
    cli_docs, http_docs = {}, {}
    for n in range(EACH):
        doc_id = f"cli_{n:02d}"
        cli_docs[doc_id] = small_article(rng, doc_id)
        (tmp_path / "cli" / doc_id).mkdir(parents=True)
        write_article(tmp_path / "cli" / doc_id / f"{doc_id}.txt", doc_id, *cli_docs[doc_id], noisy=n % 2 == 0)
        http_docs[f"http_{n:02d}"] = small_article(rng, f"http_{n:02d}")
    uploads: dict[str, bytes | None] = {}
    for n, (doc_id, (title, text)) in enumerate(http_docs.items()):
        uploads[doc_id] = None
        if n % 2:  # a multipart upload of a file that needs cleaning, as the CLI's noisy files do
            write_article(tmp_path / f"{doc_id}.txt", doc_id, title, text, noisy=True)
            uploads[doc_id] = (tmp_path / f"{doc_id}.txt").read_bytes()

    # No request time limit: the HTTP ingests wait for the lock as long as the CLI writers take to start (a 504
    # would not stop the worker's ingest, which commits once it has the lock).
    env = {"CITEQA_HTTP__RATE_LIMIT": "0", "CITEQA_HTTP__REQUEST_TIMEOUT_S": "0"}
    with running_server(index, workers=2, env=env) as base, ThreadPoolExecutor(EACH + 1) as pool:
        lock = FileLock(index / "write.lock")
        lock.acquire()
        try:
            spawned = [spawn_citeqa(["ingest", str(tmp_path / "cli" / doc_id), "--index", str(index), "--json"],
                                    env=ENV, log_dir=tmp_path / "logs") for doc_id in cli_docs]
            posted: dict[str, Future[httpx.Response]] = {
                doc_id: pool.submit(post_document, base, doc_id, title, text, uploads[doc_id])
                for doc_id, (title, text) in http_docs.items()}
            wait_until_indexes_open(spawned, index)
            time.sleep(1.0)  # not a check: the CLI writers' few ms from opening the index to the lock
            # Writers wait in both workers; reads must not wait for them, on either worker.
            workers = set()
            for _ in range(40):
                ready = fresh_get(base, "/readyz")
                assert ready.status_code == 200, ready.text
                workers.add(ready.json()["worker"])
                found = fresh_get(base, "/v1/search", q=QUERY, k=3)
                assert found.status_code == 200 and found.json()["results"], found.text
                if len(workers) == 2:
                    break
            assert len(workers) == 2, "every connection went to one worker"
            finished = {doc_id: f.result() for doc_id, f in posted.items() if f.done()}
            assert not finished, f"HTTP ingests did not wait: { {k: r.text for k, r in finished.items()} }"
            assert all(s.proc.poll() is None for s in spawned), \
                f"a CLI writer did not wait: {[s.wait().describe() for s in spawned if s.proc.poll() is not None]}"
            listed = fresh_get(base, "/v1/documents").json()["documents"]
            assert {d["doc_id"] for d in listed} == set(expected), "something was committed under the lock"
        finally:
            lock.release()

        seen: list[set[str]] = []
        done = threading.Event()

        def read_loop() -> None:
            """Lists until the writers are done, and once more after."""
            while True:
                last = done.is_set()
                response = fresh_get(base, "/v1/documents")
                assert response.status_code == 200, response.text
                seen.append({d["doc_id"] for d in response.json()["documents"]})
                if last:
                    return

        reader = pool.submit(read_loop)
        results: list[CliResult] = [s.wait(timeout=300) for s in spawned]
        responses = {doc_id: f.result() for doc_id, f in posted.items()}
        done.set()
        reader.result()

        for result, doc_id in zip(results, cli_docs, strict=True):
            assert result.returncode == 0 and "Traceback" not in result.stderr, result.describe()
            assert [(d["doc_id"], d["status"]) for d in result.json()["documents"]] == [(doc_id, "created")]
        for doc_id, response in responses.items():
            assert response.status_code == 201, response.text
            assert (response.json()["doc_id"], response.json()["status"]) == (doc_id, "created")
        assert all(a <= b for a, b in zip(seen, seen[1:], strict=False)), "a later read lost documents"
        assert seen[-1] == set(expected) | set(cli_docs) | set(http_docs)

        every = {**cli_docs, **http_docs}
        for doc_id in every:
            for _ in range(2):  # two fresh connections: usually both workers
                hits = fresh_get(base, "/v1/search", q=token_for(doc_id), k=5).json()["results"]
                assert doc_id in {h["doc_id"] for h in hits}, f"{doc_id} is not found by its own word"

    problems = check_whole_index(run, {**expected, **every}, QUERY)
    assert not problems, "\n".join(problems)
    counts, problems = audit_index(index)
    assert not problems, "\n".join(problems)
    assert counts.documents == len(expected) + 2 * EACH
    assert counts.generation == before.generation + 2 * EACH, "the twenty ingests did not commit once each"
    log = next(tmp_path.glob("server-*.log")).read_text(errors="replace")
    assert "Traceback" not in log and "ERROR" not in log, log[-3000:]


def test_one_embedder_shared_by_ingest_and_question_threads(minilm) -> None:
    """A server worker's threads share one model: chunking (token spans, no padding) while another thread embeds
    a padded batch must not change that batch (it raised "Unable to create tensor" under the load test)."""
    batches = [[("harbor council budget " * (2 + (n + i) % 40)).strip() + f" {n}" for i in range(12)]
               for n in range(60)]
    alone = [minilm.embed(batch) for batch in batches[:3]]
    errors: list[BaseException] = []
    results: dict[int, np.ndarray] = {}

    def spans() -> None:
        try:
            for n in range(300):
                minilm.token_spans(["A short one.", "A longer sentence about the harbor bridge repairs. " * (n % 5)])
        except BaseException as exc:  # re-raised below: a thread's exception would pass unseen
            errors.append(exc)

    def embed(offset: int) -> None:
        try:
            for n in range(offset, len(batches), 2):
                results[n] = minilm.embed(batches[n])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=spans) for _ in range(2)] + \
              [threading.Thread(target=embed, args=(offset,)) for offset in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]
    assert sorted(results) == list(range(len(batches)))
    for n, vectors in enumerate(alone):
        assert np.allclose(results[n], vectors, atol=1e-5)
