"""POST /v1/ask: one question, one cited answer, as JSON or as server-sent events."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from api.commands import answer_json
from api.routes import streaming
from api.routes.deps import Components, check_text, check_top_k, components, require_read
from index.records import PassageFilter
from qa.pipeline import QAPipeline
from qa.records import Answer

router = APIRouter(tags=["answers"])


class Filters(BaseModel):
    """Which passages may be read; every given condition must hold."""

    model_config = ConfigDict(extra="forbid", strict=True)

    # The caps keep the store's SQL within SQLite's expression depth (1000 `sources` made it fail).
    doc_ids: list[str] | None = Field(default=None, max_length=100)
    published_from: str | None = Field(default=None, description="inclusive ISO 8601 date")
    published_to: str | None = Field(default=None, description="inclusive ISO 8601 date")
    sources: list[str] | None = Field(default=None, max_length=100)

    def to_filter(self) -> PassageFilter | None:
        found = PassageFilter(doc_ids=self.doc_ids, published_from=self.published_from,
                              published_to=self.published_to, sources=self.sources)
        return None if found.is_empty else found


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={
        "examples": [{"question": "How much did the Harbor Bridge repairs cost?"}]})

    question: str = Field(description="The question; at most CITEQA_ANSWER__MAX_QUESTION_CHARS characters.")
    top_k: int | None = Field(default=None, description="Passages read (default: CITEQA_RETRIEVAL__K).")
    filters: Filters | None = None


def wants_stream(request: Request) -> bool:
    return "text/event-stream" in request.headers.get("accept", "")


@router.post("/v1/ask", dependencies=[Depends(require_read)],
             responses={200: {"description": "The answer object, or with `Accept: text/event-stream` the events "
                                             "`sources`, `delta`, `citation`, `done`.",
                              "content": {"text/event-stream": {}}}})
async def ask(body: AskRequest, request: Request, c: Annotated[Components, Depends(components)]) -> Any:
    """Answer one standalone question from the index, citing the exact sentences."""
    question = check_text("question", body.question)
    k = check_top_k(c.settings, body.top_k)
    filters = body.filters.to_filter() if body.filters else None
    if not wants_stream(request):
        answer = await run_in_threadpool(c.pipeline.ask, question, k=k, filters=filters)
        return answer_json(answer)

    def run(on_passages: streaming.OnPassages) -> Answer:
        tapped = QAPipeline(retriever=c.pipeline.retriever,
                            answerer=streaming.PassageTap(c.pipeline.answerer, on_passages),
                            max_question_chars=c.settings.answer.max_question_chars)
        return tapped.ask(question, k=k, filters=filters)

    passages, task = await streaming.start(run)
    return EventSourceResponse(streaming.answer_events(passages, task), ping=15)
