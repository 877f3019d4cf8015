"""HTTP overhead and worker scaling: `/v1/search` and `/v1/ask` over loopback against the same calls in process.

What it measures, on the demo articles (examples/articles) indexed with the bundled MiniLM model, with the
questions of examples/gold/demo.jsonl in a fixed order:

* **in-process**: `Retriever.retrieve(q, k=5)` and `QAPipeline.ask(q)` on components built exactly as the
  server builds them (`api.app.build_components`), called from C threads at once (C = concurrency).
* **HTTP**: `GET /v1/search?q=…&k=5` and `POST /v1/ask` against a real `citeqa serve` (uvicorn) on
  127.0.0.1, from C client threads, each with its own keep-alive connection (httpx).
* **workers**: `/v1/ask` at concurrency 4 against `--workers 1` and `--workers 2`, each worker with one torch
  thread (`CITEQA_EMBEDDING__THREADS=1`), so the second worker has a core of its own to use; and, when `wrk`
  is installed, the same driven by wrk with 16 connections, with the CPUs the server processes used (the
  Python client above needs a core of its own, which a 2-core machine does not have to spare).

Every cell first asks every question `--warmup` times (untimed, at the cell's concurrency), so that each
server worker's caches (parsed questions, sentence vectors) are as warm as the in-process components', and
the ratios compare like with like; then it sends `--requests` timed requests; throughput is requests over the wall
time of the cell, latency p50/p95 over each request's own time. The ratio is in-process throughput over HTTP
throughput at the same concurrency (1.0 = HTTP costs nothing; the target is <= 1.2 at concurrency 1).
Two CPU-bound runs cannot share a 2-core machine: a cell during which other processes kept more than 0.2
CPUs busy is flagged (needs psutil).

Usage: .venv/bin/python bench/http_load.py [--requests 200] [--warmup 2] [--concurrency 1,4,16] [--json]
Exit codes: 0 ok, 1 a run failed, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from common import ROOT

sys.path.insert(0, str(ROOT))  # citeqa's packages, also when it is not installed
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

BUSY_CPUS = 0.2


@dataclass(frozen=True)
class Cell:
    mode: str  # "in-process" or "http" or "http-workers-N"
    endpoint: str
    concurrency: int
    requests: int
    seconds: float
    per_second: float
    p50_ms: float
    p95_ms: float
    others_cpu: float | None


def questions() -> list[str]:
    lines = (ROOT / "examples" / "gold" / "demo.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["question"] for line in lines if line.strip()]


def others_cpu_meter() -> Callable[[], float | None]:
    """Returns a function giving the CPUs other processes used on average since the meter was made."""
    try:
        import psutil
    except ImportError:
        return lambda: None
    me = psutil.Process()
    own = {me.pid, *(c.pid for c in me.children(recursive=True))}
    start_total, start_own, started = psutil.cpu_times(), _own_cpu(psutil, own), time.monotonic()

    def read() -> float:
        total, mine = psutil.cpu_times(), _own_cpu(psutil, own)
        busy = (total.user + total.system) - (start_total.user + start_total.system)
        return max(0.0, (busy - (mine - start_own)) / max(time.monotonic() - started, 1e-9))

    return read


def _own_cpu(psutil: Any, pids: set[int]) -> float:
    used = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            used += times.user + times.system + getattr(times, "children_user", 0) + getattr(times,
                                                                                              "children_system", 0)
        except psutil.Error:
            pass
    return used


def run_cell(mode: str, endpoint: str, call: Callable[[str], None], concurrency: int, requests: int,
             warmup: int, qs: list[str], server_pids: set[int] | None = None) -> Cell:
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(call, qs * warmup))
    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def worker() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            started = time.perf_counter()
            call(qs[i % len(qs)])
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)

    meter = others_cpu_meter()
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(worker) for _ in range(concurrency)]:
            future.result()
    seconds = time.perf_counter() - started
    others = meter()
    latencies.sort()
    return Cell(mode=mode, endpoint=endpoint, concurrency=concurrency, requests=requests, seconds=round(seconds, 3),
                per_second=round(requests / seconds, 2), p50_ms=round(statistics.median(latencies) * 1000, 1),
                p95_ms=round(latencies[int(0.95 * (len(latencies) - 1))] * 1000, 1),
                others_cpu=None if others is None else round(others, 2))


def http_calls(base: str, concurrency: int) -> tuple[Callable[[str], None], Callable[[str], None], Callable[[], None]]:
    import httpx

    local = threading.local()

    def client() -> httpx.Client:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=base, timeout=120)
            clients.append(local.client)
        return local.client

    clients: list[httpx.Client] = []

    def search(q: str) -> None:
        client().get("/v1/search", params={"q": q, "k": 5}).raise_for_status()

    def ask(q: str) -> None:
        client().post("/v1/ask", json={"question": q}).raise_for_status()

    def close() -> None:
        for c in clients:
            c.close()

    return search, ask, close


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=2, help="untimed passes over every question per cell")
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        levels = [int(x) for x in args.concurrency.split(",")]
    except ValueError:
        print(f"bench/http_load.py: --concurrency must be numbers joined by commas, got {args.concurrency!r}",
              file=sys.stderr)
        return 2
    if args.requests < 1 or args.warmup < 0 or any(c < 1 for c in levels):
        print("bench/http_load.py: --requests and every concurrency must be at least 1", file=sys.stderr)
        return 2
    for key in [k for k in os.environ if k.startswith("CITEQA_")]:
        del os.environ[key]  # citeqa runs with its defaults here, whatever the caller's environment says
    # … but for the per-client rate limit: every request comes from one address, far faster than a person.
    os.environ["CITEQA_HTTP__RATE_LIMIT"] = "0"

    from api.app import build_components
    from api.settings import Settings
    from index.config import IndexSettings
    from index.embedding import make_embedder
    from tests.api.http_helpers import build_demo_index, running_server

    qs = questions()
    cells: list[Cell] = []
    wrk_cells: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="citeqa-bench-http-") as folder:
        index_dir = Path(folder) / "index"
        settings = Settings(index=IndexSettings(dir=index_dir))

        build_demo_index(index_dir, make_embedder(settings.embedding))
        components = build_components(settings)

        def search_in(q: str) -> None:
            components.retriever.retrieve(q, k=5)

        def ask_in(q: str) -> None:
            components.pipeline.ask(q)

        for endpoint, call in (("search", search_in), ("ask", ask_in)):
            for c in levels:
                cells.append(run_cell("in-process", endpoint, call, c, args.requests, args.warmup, qs))
                _progress(cells[-1])
        components.store.close()

        with running_server(index_dir, model=settings.embedding.model) as base:
            for endpoint in ("search", "ask"):
                for c in levels:
                    search, ask, close = http_calls(base, c)
                    cells.append(run_cell("http", endpoint, search if endpoint == "search" else ask, c,
                                          args.requests, args.warmup, qs))
                    close()
                    _progress(cells[-1])

        for workers in (1, 2):
            with running_server(index_dir, model=settings.embedding.model, workers=workers,
                                env={"CITEQA_EMBEDDING__THREADS": "1"}) as base:
                _, ask, close = http_calls(base, 4)
                cells.append(run_cell(f"http-workers-{workers}", "ask", ask, 4, args.requests, args.warmup, qs))
                close()
                _progress(cells[-1])
                if shutil.which("wrk"):
                    wrk_cells.append(wrk_ask(base, qs, workers=workers))
                    print(f"  wrk workers={workers}: {wrk_cells[-1]}", file=sys.stderr)

    report = summarize(cells, levels)
    if len(wrk_cells) == 2:
        report["wrk_ask"] = wrk_cells
        report["wrk_workers_2_over_1"] = round(wrk_cells[1]["per_second"] / wrk_cells[0]["per_second"], 2)
    if args.json:
        print(json.dumps({"cells": [asdict(c) for c in cells], **report}, indent=2))
    else:
        print_table(cells, report)
    return 0


def wrk_ask(base: str, qs: list[str], *, workers: int, seconds: int = 20, connections: int = 16) -> dict[str, float]:
    """`/v1/ask` driven by wrk (C, a fraction of a core), so the load generator does not eat the cores the
    workers need; 16 connections so that keep-alive spreads them over every worker. Returns requests/s and
    the CPUs the server processes used, after an untimed 15 s warm-up.
    """
    import psutil

    bodies = ",".join("[[" + json.dumps({"question": q}) + "]]" for q in qs)
    script = (f"local bodies = {{{bodies}}}\nlocal i = 0\nrequest = function()\n  i = i + 1\n"
              '  return wrk.format("POST", "/v1/ask", {["Content-Type"] = "application/json"}, '
              "bodies[(i % #bodies) + 1])\nend\n")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    command = ["wrk", "-t2", f"-c{connections}", "-s", handle.name, base]
    subprocess.run([*command[:1], "-d15s", *command[1:]], capture_output=True, check=True)
    port = base.rsplit(":", 1)[1]
    top = next(p for p in psutil.process_iter(["cmdline"])
               if "serve" in (p.info["cmdline"] or []) and port in (p.info["cmdline"] or []))
    servers = [top, *top.children(recursive=True)]
    cpu_before, started = sum(sum(p.cpu_times()[:2]) for p in servers), time.perf_counter()
    out = subprocess.run([*command[:1], f"-d{seconds}s", *command[1:]], capture_output=True, text=True,
                         check=True).stdout
    elapsed = time.perf_counter() - started
    cpus = (sum(sum(p.cpu_times()[:2]) for p in servers) - cpu_before) / elapsed
    os.unlink(handle.name)
    rate = float(next(line for line in out.splitlines() if line.startswith("Requests/sec")).split()[-1])
    return {"workers": workers, "per_second": rate, "server_cpus": round(cpus, 2)}


def summarize(cells: list[Cell], levels: list[int]) -> dict[str, Any]:
    def find(mode: str, endpoint: str, c: int) -> Cell:
        return next(x for x in cells if x.mode == mode and x.endpoint == endpoint and x.concurrency == c)

    ratios = {f"{e}@{c}": round(find("in-process", e, c).per_second / find("http", e, c).per_second, 2)
              for e in ("search", "ask") for c in levels}
    scaling = round(find("http-workers-2", "ask", 4).per_second / find("http-workers-1", "ask", 4).per_second, 2)
    return {"overhead_ratio": ratios, "workers_2_over_1": scaling}


def _progress(cell: Cell) -> None:
    print(f"  {cell.mode:<16} {cell.endpoint:<6} c={cell.concurrency:<3} {cell.per_second:>8.1f}/s "
          f"p50 {cell.p50_ms:>7.1f} ms  p95 {cell.p95_ms:>7.1f} ms", file=sys.stderr)


def print_table(cells: list[Cell], report: dict[str, Any]) -> None:
    print("| mode | endpoint | concurrency | req/s | p50 ms | p95 ms | other processes' CPUs |")
    print("|---|---|---|---|---|---|---|")
    for c in cells:
        flag = "" if c.others_cpu is None else f"{c.others_cpu}" + (" (busy)" if c.others_cpu > BUSY_CPUS else "")
        print(f"| {c.mode} | {c.endpoint} | {c.concurrency} | {c.per_second} | {c.p50_ms} | {c.p95_ms} | {flag} |")
    print()
    print("in-process / HTTP throughput:", ", ".join(f"{k} {v}" for k, v in report["overhead_ratio"].items()))
    print("2 workers / 1 worker (ask, concurrency 4, 1 torch thread each):", report["workers_2_over_1"])
    if "wrk_ask" in report:
        for cell in report["wrk_ask"]:
            print(f"wrk /v1/ask, 16 connections, --workers {cell['workers']}: {cell['per_second']} req/s, "
                  f"server processes used {cell['server_cpus']} CPUs")
        print("wrk: 2 workers / 1 worker:", report["wrk_workers_2_over_1"])
    else:
        print("wrk is not installed (apt-get install wrk): the worker comparison above is bounded by the Python client")


if __name__ == "__main__":
    sys.exit(main())
