"""A bounded load test: 50 concurrent clients for 2 minutes against `citeqa serve --workers 2` on loopback.

The server runs the bundled all-MiniLM-L6-v2 model on the demo articles, one torch thread per worker (two
workers on two cores). Each client is an asyncio task with its own keep-alive connection (httpx) that sends
one request after another: 45% `POST /v1/ask` (one in five of them as a server-sent event stream), 45%
`GET /v1/search`, 10% small `POST /v1/documents` ingests (one in four as a multipart file upload), each a new
document with a word of its own.

It passes on correctness only: no request failed (no connection error, no timeout, no 4xx or 5xx, every
body well formed); every acknowledged ingest is listed, has exactly its text and is found by a search for its
word, on every worker; the index files agree (SQLite rows, the manifest, the FAISS ids, the BM25 size; one
commit per ingest); the server log holds no traceback, error or snapshot rebuild for disagreeing counts.
Throughput and latency are measured, never asserted: they are printed and written as JSON to
`$CITEQA_LOAD_REPORT` (when set) and to the test's temp folder.

Two limits that judge by time or rate, not correctness, are switched off. The per-client rate limit
(CITEQA_HTTP__RATE_LIMIT=0): all 50 clients share one address, 127.0.0.1, so the limit, meant for one person's
client, would turn this load into 429s. The request time limit (CITEQA_HTTP__REQUEST_TIMEOUT_S=0): ingests
queue for the one writer lock, and on a busy 2-core machine one of them waited past the default 60 s and got a
504 (its document was committed all the same, as RequestTimeout says); whether that happens depends on the
machine, not on the code. Requests slower than 60 s are counted in the report instead (`over_60s`).

`CITEQA_SOAK_SECONDS=N` runs the same load for N seconds instead of 120 (a soak test; opt-in).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from index.config import DEFAULT_MODEL
from tests.api.http_helpers import build_demo_index, parse_sse, running_server
from tests.conftest import ROOT
from tests.hardening.audit import audit_index, small_article, token_for

pytestmark = pytest.mark.slow

CLIENTS = 50
WORKERS = 2
SECONDS = float(os.environ.get("CITEQA_SOAK_SECONDS", "120"))
INGEST_SHARE, ASK_SHARE = 0.10, 0.45  # the rest are searches
CLIENT_TIMEOUT = 180.0  # longer than the server's own 60 s request timeout, so a slow request shows as its 504
# Log lines that mean a request failed or a snapshot disagreed with SQLite. A snapshot file that a reader could
# not open because two newer commits had already replaced it ("cannot read …") is a legitimate fallback: counted.
BAD_LOG_LINES = ("Traceback", "ERROR", "fails its checksum", "snapshot holds", "unreadable", "names an unexpected")


@dataclass
class Outcome:
    kind: str
    seconds: float
    status: int | None  # None: no response (connection error or timeout)
    problem: str | None


@dataclass
class Run:
    outcomes: list[Outcome] = field(default_factory=list)
    acknowledged: dict[str, str] = field(default_factory=dict)  # doc_id -> the text sent
    seconds: float = 0.0


def questions() -> list[str]:
    lines = (ROOT / "examples" / "gold" / "demo.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["question"] for line in lines if line.strip()]


async def ask(client: httpx.AsyncClient, question: str, stream: bool) -> tuple[int, str | None]:
    if not stream:
        response = await client.post("/v1/ask", json={"question": question})
        if response.status_code != 200:
            return response.status_code, response.text[:300]
        return 200, answer_problem(response.json())
    async with client.stream("POST", "/v1/ask", json={"question": question},
                             headers={"Accept": "text/event-stream"}) as response:
        body = (await response.aread()).decode("utf-8", errors="replace")
    if response.status_code != 200:
        return response.status_code, body[:300]
    events = parse_sse(body)
    if not events or events[-1][0] != "done":
        return 200, f"the stream did not end with 'done': {[name for name, _ in events][-3:]}"
    return 200, answer_problem(json.loads(events[-1][1]))


def answer_problem(answer: dict[str, Any]) -> str | None:
    if not isinstance(answer.get("answer"), str) or not isinstance(answer.get("citations"), list):
        return f"not an answer object: {str(answer)[:300]}"
    return None


async def search(client: httpx.AsyncClient, query: str) -> tuple[int, str | None]:
    response = await client.get("/v1/search", params={"q": query, "k": 5})
    if response.status_code != 200:
        return response.status_code, response.text[:300]
    results = response.json().get("results")
    return 200, None if isinstance(results, list) and results else f"no results: {response.text[:300]}"


async def ingest(client: httpx.AsyncClient, doc_id: str, title: str, text: str, upload: bool,
                 run: Run) -> tuple[int, str | None]:
    if upload:
        body = f"---\ntitle: {title}\ndoc_id: {doc_id}\n---\n\n{text}\n".encode()
        response = await client.post("/v1/documents", files={"file": (f"{doc_id}.txt", body, "text/plain")})
    else:
        response = await client.post("/v1/documents", json={"text": text, "title": title, "doc_id": doc_id})
    if response.status_code != 201:
        return response.status_code, response.text[:300]
    reply = response.json()
    if (reply.get("doc_id"), reply.get("status")) != (doc_id, "created") or not reply.get("passages"):
        return 201, f"unexpected reply: {reply}"
    run.acknowledged[doc_id] = text
    return 201, None


async def user(n: int, base: str, deadline: float, qs: list[str], run: Run) -> None:
    """One client: requests back to back on its own connection until the deadline."""
    rng = random.Random(n)
    async with httpx.AsyncClient(base_url=base, timeout=CLIENT_TIMEOUT,
                                 limits=httpx.Limits(max_connections=1)) as client:
        sent = 0
        while time.monotonic() < deadline:
            roll = rng.random()
            started = time.perf_counter()
            try:
                if roll < INGEST_SHARE:
                    kind, doc_id = "ingest", f"load_u{n:02d}_n{sent:05d}"
                    title, text = small_article(rng, doc_id)
                    status, problem = await ingest(client, doc_id, title, text, upload=sent % 4 == 3, run=run)
                elif roll < INGEST_SHARE + ASK_SHARE:
                    kind = "ask"
                    status, problem = await ask(client, rng.choice(qs), stream=rng.random() < 0.2)
                else:
                    kind = "search"
                    status, problem = await search(client, rng.choice(qs))
            except httpx.HTTPError as exc:
                status, problem = None, f"{type(exc).__name__}: {exc}"
            run.outcomes.append(Outcome(kind, time.perf_counter() - started, status, problem))
            sent += 1


async def drive(base: str, seconds: float) -> Run:
    run, qs = Run(), questions()
    started = time.perf_counter()
    deadline = time.monotonic() + seconds
    await asyncio.gather(*(user(n, base, deadline, qs, run) for n in range(CLIENTS)))
    run.seconds = time.perf_counter() - started
    return run


def figures(run: Run) -> dict[str, Any]:
    """Requests, throughput and latency (p50, p95, max) per kind of request and overall."""
    def summary(times: list[float]) -> dict[str, float]:
        times = sorted(times)
        return {"requests": len(times), "per_second": round(len(times) / run.seconds, 2),
                "p50_ms": round(statistics.median(times) * 1000, 1),
                "p95_ms": round(times[int(0.95 * (len(times) - 1))] * 1000, 1), "max_ms": round(times[-1] * 1000, 1)}

    kinds = sorted({o.kind for o in run.outcomes})
    return {"overall": summary([o.seconds for o in run.outcomes]),
            **{kind: summary([o.seconds for o in run.outcomes if o.kind == kind]) for kind in kinds}}


class CpuMeter:
    """The CPUs that processes other than this test and its server used on average (psutil)."""

    def __init__(self) -> None:
        self.started, self.total, self.own = time.monotonic(), self._busy(), self._own()

    @staticmethod
    def _busy() -> float:
        times = psutil.cpu_times()
        return times.user + times.system

    @staticmethod
    def _own() -> float:
        me = psutil.Process()
        used = 0.0
        for proc in [me, *me.children(recursive=True)]:
            try:
                t = proc.cpu_times()
                used += t.user + t.system
            except psutil.Error:
                pass
        return used

    def others(self) -> float:
        elapsed = time.monotonic() - self.started
        return round(max(0.0, (self._busy() - self.total) - (self._own() - self.own)) / elapsed, 2)


def worker_states(base: str) -> dict[int, dict[str, Any]]:
    """/readyz of each worker: new connections until both workers have answered (the kernel spreads them)."""
    states: dict[int, dict[str, Any]] = {}
    for _ in range(200):
        with httpx.Client(base_url=base, timeout=60) as fresh:
            state = fresh.get("/readyz").json()
        states[state["worker"]] = state
        if len(states) == WORKERS:
            break
    return states


def check_acknowledged(base: str, acknowledged: dict[str, str], demo: set[str]) -> list[str]:
    """Every acknowledged document is listed, holds its text and is found by a search for its word."""
    problems = []
    with httpx.Client(base_url=base, timeout=60) as client:
        listed = {d["doc_id"] for d in client.get("/v1/documents").json()["documents"]}
        if listed != demo | set(acknowledged):
            problems.append(f"listing: missing {sorted(demo | set(acknowledged) - listed)[:10]}, "
                            f"unexpected {sorted(listed - demo - set(acknowledged))[:10]}")
        for doc_id, text in acknowledged.items():
            shown = client.get(f"/v1/documents/{doc_id}")
            if shown.status_code != 200 or shown.json()["text"] != text:
                problems.append(f"{doc_id}: GET gives {shown.status_code}, text differs from what was sent")
            found = client.get("/v1/search", params={"q": token_for(doc_id), "k": 5}).json()["results"]
            if doc_id not in {r["doc_id"] for r in found}:
                problems.append(f"{doc_id}: a search for its own word does not find it")
    return problems


def test_fifty_clients_for_two_minutes_against_two_workers(tmp_path: Path, minilm) -> None:
    index_dir = build_demo_index(tmp_path / "index", minilm)
    before, _ = audit_index(index_dir)
    env = {"CITEQA_HTTP__RATE_LIMIT": "0", "CITEQA_HTTP__REQUEST_TIMEOUT_S": "0", "CITEQA_EMBEDDING__THREADS": "1"}
    with running_server(index_dir, model=DEFAULT_MODEL, workers=WORKERS, env=env) as base:
        demo = {d["doc_id"] for d in httpx.get(base + "/v1/documents", timeout=60).json()["documents"]}
        load_before = os.getloadavg()
        meter = CpuMeter()
        run = asyncio.run(drive(base, SECONDS))
        others = meter.others()
        load_after = os.getloadavg()
        retrieval_problems = check_acknowledged(base, run.acknowledged, demo)
        states = worker_states(base)
    log = next(tmp_path.glob("server-*.log")).read_text(errors="replace")
    counts, index_problems = audit_index(index_dir)

    failed = [o for o in run.outcomes if o.problem is not None]
    statuses = Counter(o.status for o in run.outcomes)
    report = {
        "clients": CLIENTS, "workers": WORKERS, "model": DEFAULT_MODEL, "seconds": round(run.seconds, 1),
        "mix": {"ask": ASK_SHARE, "search": round(1 - ASK_SHARE - INGEST_SHARE, 2), "ingest": INGEST_SHARE},
        "latency": figures(run), "statuses": {str(k): v for k, v in sorted(statuses.items(), key=str)},
        "errors": len(failed), "status_5xx": sum(v for k, v in statuses.items() if k is not None and k >= 500),
        "status_429": statuses.get(429, 0), "over_60s": sum(o.seconds > 60 for o in run.outcomes),
        "failures": [f"{o.kind} -> {o.status}: {o.problem}" for o in failed[:20]],
        "ingests_acknowledged": len(run.acknowledged),
        "index": asdict(counts), "snapshot_fallbacks_in_log": log.count("cannot read"),
        "machine": {"cpus": os.cpu_count(), "loadavg_before": [round(x, 2) for x in load_before],
                    "loadavg_after": [round(x, 2) for x in load_after], "other_processes_cpus": others},
    }
    text = json.dumps(report, indent=2)
    (tmp_path / "load-report.json").write_text(text)
    if os.environ.get("CITEQA_LOAD_REPORT"):
        Path(os.environ["CITEQA_LOAD_REPORT"]).write_text(text)
    print(f"\nload report ({tmp_path / 'load-report.json'}):\n{text}", file=sys.stderr)

    assert not failed, f"{len(failed)} requests failed, e.g. " + "; ".join(
        f"{o.kind} -> {o.status}: {o.problem}" for o in failed[:5])
    assert not retrieval_problems, "\n".join(retrieval_problems[:20])
    assert not index_problems, "\n".join(index_problems)
    bad = [line for line in log.splitlines() if any(marker in line for marker in BAD_LOG_LINES)]
    assert not bad, "\n".join(bad[:20])
    assert run.acknowledged and statuses[None] == 0
    assert counts.documents == len(demo) + len(run.acknowledged)
    # One commit per acknowledged ingest: none lost, none merged with another.
    assert counts.generation == before.generation + len(run.acknowledged)
    assert {s["documents"] for s in states.values()} == {counts.documents} and len(states) == WORKERS, states
    assert {(s["passages"], s["generation"]) for s in states.values()} == {(counts.passages, counts.generation)}
