"""GET /v1/search: ranked passages (dense + BM25, fused) with each ranker's rank and score."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from api.errors import ApiError
from api.routes.deps import Components, check_text, check_top_k, components, require_read
from api.routes.streaming import passage_json

router = APIRouter(tags=["search"])


@router.get("/v1/search", dependencies=[Depends(require_read)])
async def search(c: Annotated[Components, Depends(components)],
                 q: Annotated[str, Query(description="the query")],
                 k: Annotated[int, Query(description="how many passages")] = 5) -> dict:
    """The same shape as `citeqa search --json`."""
    query = " ".join(check_text("q", q).split())
    if not query:
        raise ApiError(422, "invalid_request", "q: the query is empty")
    if len(query) > c.settings.answer.max_question_chars:
        raise ApiError(422, "invalid_request",
                       f"q: the query is longer than {c.settings.answer.max_question_chars} characters")
    check_top_k(c.settings, k, name="k")
    passages = await run_in_threadpool(c.retriever.retrieve, query, k=k)
    return {"query": query, "results": [{**passage_json(p), **p.signals} for p in passages]}
