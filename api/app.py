"""The HTTP API and the web chat page. Usage: `citeqa serve`, or `uvicorn api.app:app_from_env --factory`.

`create_app(settings)` builds a FastAPI app; its lifespan builds the components once (the embedding model,
the store, the QA pipeline, the indexer), and every request shares them. CPU-bound work runs in the thread
pool, never on the event loop; writes go through the store's writer lock, so several workers (processes)
can serve one index on disk, and each picks up the others' commits on its next read.
"""

import copy
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from api import errors
from api.middleware import BodyLimit, RateLimit, RequestLog, RequestTimeout
from api.routes import ask, chat, documents, openai, search
from api.routes.deps import Components
from api.settings import Settings
from api.wiring import make_answerer, make_retriever, open_or_create_store
from index.chunking import Chunker
from index.embedding import make_embedder
from index.ingest import Indexer
from qa.pipeline import QAPipeline

log = logging.getLogger("citeqa.http")

STATIC = Path(__file__).resolve().parent / "static"


def build_components(settings: Settings) -> Components:
    """Everything a request needs, built once. A missing index is created empty, so a fresh server can be fed."""
    embedder = make_embedder(settings.embedding)
    store = open_or_create_store(settings, embedder)
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
    app.add_middleware(RequestTimeout, seconds=settings.http.request_timeout_s)
    app.add_middleware(RateLimit, per_minute=settings.http.rate_limit)
    app.add_middleware(BodyLimit, max_bytes=settings.http.max_body_bytes)
    app.add_middleware(RequestLog)
    return app


def app_from_env() -> FastAPI:
    """The app with settings from the environment (uvicorn's `--factory` entry, one per worker)."""
    return create_app(Settings())


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
