"""Helpers of the HTTP tests: a demo index in a folder, and a real `citeqa serve` on a free loopback port."""

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from index.embedding import HashEmbedder
from tests.conftest import ARTICLES, ROOT, make_indexer


def build_demo_index(directory: Path, embedder=None) -> Path:
    """The demo articles indexed in `directory` (the hash embedder unless one is given)."""
    indexer = make_indexer(directory, embedder or HashEmbedder())
    report = indexer.ingest_paths([ARTICLES])
    assert report.documents and not report.skipped, report
    return directory


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_server(index_dir: Path, *, model: str = "hash", workers: int = 1, env: dict[str, str] | None = None,
                   timeout: float = 180.0) -> Iterator[str]:
    """`citeqa serve` in a subprocess; yields its base url once /readyz answers 200, and stops it after."""
    port = free_port()
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                   "CITEQA_EMBEDDING__MODEL": model, **(env or {})}
    log = open(index_dir.parent / f"server-{port}.log", "wb")  # noqa: SIM115 - closed below, after the process
    proc = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--workers",
                             str(workers), "--index", str(index_dir)], cwd=ROOT, env=environment,
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}: {_tail(log.name)}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready after {timeout} s: {_tail(log.name)}")
            time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _tail(path: str) -> str:
    return Path(path).read_text(errors="replace")[-2000:]


def parse_sse(text: str) -> list[tuple[str, str]]:
    """(event name, data) of every event in an SSE body; comments (pings) are dropped."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
        if data:
            events.append((name, "\n".join(data)))
    return events
