"""The HTTP API and the web chat page. Usage: `citeqa serve`, or `uvicorn api.app:app_from_env --factory`.

`create_app(settings)` builds a FastAPI app; its lifespan builds the components once (the embedding model,
the store, the QA pipeline, the indexer), and every request shares them. CPU-bound work runs in the thread
pool, never on the event loop; writes go through the store's writer lock, so several workers (processes)
can serve one index on disk, and each picks up the others' commits on its next read.
"""

import copy
import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import errors
from api.routes import ask, chat, documents, openai, search
from api.routes.deps import Components
from api.settings import Settings
from api.wiring import make_answerer, make_retriever
from index.chunking import Chunker
from index.embedding import make_embedder
from index.ingest import Indexer
from index.store import Store
from qa.pipeline import QAPipeline

log = logging.getLogger("citeqa.http")

STATIC = Path(__file__).resolve().parent / "static"
_REQUEST_ID_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def build_components(settings: Settings) -> Components:
    """Everything a request needs, built once. A missing index is created empty, so a fresh server can be fed."""
    embedder = make_embedder(settings.embedding)
    store = Store.open_or_create(settings.index.dir, model=embedder.name, dimension=embedder.dimension,
                                 lock_timeout=settings.index.lock_timeout)
    retriever = make_retriever(settings, store, embedder)
    pipeline = QAPipeline(retriever=retriever, answerer=make_answerer(settings, embedder),
                          max_question_chars=settings.answer.max_question_chars)
    chunker = Chunker(max_tokens=settings.chunk.max_tokens, overlap_tokens=settings.chunk.overlap_tokens,
                      token_spans=embedder.token_spans)
    indexer = Indexer(store=store, embedder=embedder, chunker=chunker, commit_every=settings.index.commit_every)
    return Components(settings=settings, embedder=embedder, store=store, retriever=retriever, pipeline=pipeline,
                      indexer=indexer, chat=chat.make_sessions(settings, pipeline))


def create_app(settings: Settings) -> FastAPI:
    """The citeqa HTTP API with the web page at `/`; components are built when the app starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        started = time.perf_counter()
        app.state.components = await run_in_threadpool(build_components, settings)
        log.info("ready in %.1f s: index %s", time.perf_counter() - started, settings.index.dir)
        try:
            yield
        finally:
            found: Components | None = app.state.components
            app.state.components = None
            if found is not None:
                found.store.close()

    app = FastAPI(title="citeqa", version="0.1.0", lifespan=lifespan,
                  description="Answers questions from your indexed articles and cites the exact sentences.")
    app.state.settings = settings
    app.state.components = None
    errors.install(app)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz(request: Request) -> Response:
        """Readiness: the index is loaded and readable."""
        found: Components | None = request.app.state.components
        if found is None:
            return errors.error_response(503, "not_ready", "the server is still starting")
        info = await run_in_threadpool(found.store.info)
        return JSONResponse({"status": "ready", "worker": os.getpid(), "index": str(settings.index.dir),
                             "model": info.model,
                             "documents": info.documents, "passages": info.passages, "generation": info.generation})

    for module in (ask, search, documents, chat, openai):
        app.include_router(module.router)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(RateLimit, per_minute=settings.http.rate_limit)
    app.add_middleware(BodyLimit, max_bytes=settings.http.max_body_bytes)
    app.add_middleware(RequestLog)
    return app


def app_from_env() -> FastAPI:
    """The app with settings from the environment (uvicorn's `--factory` entry, one per worker)."""
    return create_app(Settings())


class RequestLog:
    """An `X-Request-ID` on every response (the client's own if it sent a sane one) and one log line per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if 0 < len(given) <= 64 and set(given) <= _REQUEST_ID_OK else uuid.uuid4().hex
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            log.info("request_id=%s method=%s path=%s status=%d ms=%.1f", request_id, scope["method"],
                     scope["path"], status, (time.perf_counter() - started) * 1000)


class BodyLimit:
    """413 for a body over the limit, whether it declares its length or streams it in chunks."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            response = errors.error_response(413, "request_too_large",
                                             f"the request body is larger than {self.max_bytes} bytes")
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise errors.ApiError(413, "request_too_large",
                                          f"the request body is larger than {self.max_bytes} bytes")
            return message

        await self.app(scope, counted, send)


class RateLimit:
    """At most `per_minute` requests per client address to /v1 in any 60 s window (429 with Retry-After)."""

    def __init__(self, app: ASGIApp, *, per_minute: int) -> None:
        self.app = app
        self.per_minute = per_minute
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.per_minute or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("unknown", 0))[0]
        now = time.monotonic()
        with self._lock:
            times = self._seen.setdefault(client, deque())
            while times and now - times[0] >= 60:
                times.popleft()
            wait = 60 - (now - times[0]) if len(times) >= self.per_minute else 0.0
            if not wait:
                times.append(now)
            if len(self._seen) > 10_000:  # forget idle clients so the table cannot grow without bound
                for key in [k for k, v in self._seen.items() if not v or now - v[-1] >= 60]:
                    del self._seen[key]
        if wait:
            response = errors.error_response(429, "rate_limited", f"more than {self.per_minute} requests a minute",
                                             headers={"Retry-After": str(max(1, round(wait)))})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def serve(settings: Settings, *, host: str, port: int, workers: int) -> None:
    """Run the API with uvicorn; each of `workers` processes builds its own components from the environment."""
    import uvicorn

    # Workers are fresh processes: they read their settings from the environment, so the CLI's --index goes there.
    os.environ["CITEQA_INDEX__DIR"] = str(settings.index.dir)
    # uvicorn applies this config in every worker: its own start-up lines, and one line per request from
    # RequestLog (in place of uvicorn's access log, which has no request id or timing).
    log_config: dict[str, Any] = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    log_config["loggers"]["citeqa"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    uvicorn.run("api.app:app_from_env", factory=True, host=host, port=port, workers=workers, log_level="info",
                log_config=log_config, access_log=False, proxy_headers=False)
