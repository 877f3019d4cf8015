"""POST /v1/chat/completions and GET /v1/models: the OpenAI chat API, so its clients and chat front-ends work.

The last user message is the question; the messages before it are the conversation, which a follow-up is
resolved against when chat sessions are available. The reply's `content` is the answer with its `[n]`
markers; the citations travel in the extra fields `citations` and `citeqa` (the whole answer object), which
OpenAI clients keep (`completion.model_extra`) and plain front-ends ignore. `stream: true` sends
`chat.completion.chunk` events and ends with `data: [DONE]`.
"""

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from api.commands import answer_json
from api.errors import ApiError, error_body, mapping_for
from api.routes import streaming
from api.routes.chat import answer_with_history
from api.routes.deps import Components, check_text, components, require_read
from qa.records import Answer

router = APIRouter(tags=["openai"])

MODEL_ID = "citeqa"


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    type: str
    text: str | None = None


class Message(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "\n".join(p.text or "" for p in self.content if p.type == "text")
        return self.content or ""


class CompletionRequest(BaseModel):
    """OpenAI's request; sampling options (temperature, max_tokens, …) are accepted and have no effect."""

    model_config = ConfigDict(extra="allow", strict=True, json_schema_extra={"examples": [
        {"model": "citeqa", "messages": [{"role": "user", "content": "Who manages Redmarsh United?"}]}]})

    model: str = MODEL_ID
    messages: list[Message] = Field(min_length=1, max_length=200)
    stream: bool = False


@router.get("/v1/models", dependencies=[Depends(require_read)])
async def models() -> dict:
    """The one model this server offers."""
    return {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "citeqa"}]}


@router.post("/v1/chat/completions", dependencies=[Depends(require_read)],
             responses={200: {"content": {"text/event-stream": {}}}})
async def chat_completions(body: CompletionRequest, c: Annotated[Components, Depends(components)]) -> Any:
    """An OpenAI chat completion whose content is the cited answer; citations in the extra field `citations`."""
    users = [i for i, m in enumerate(body.messages) if m.role == "user"]
    if not users or users[-1] != len(body.messages) - 1:
        raise ApiError(422, "invalid_request", "messages: the last message must be the user's question")
    question = check_text("messages", body.messages[-1].text())
    history = [(m.role, check_text(f"messages[{i}]", m.text())) for i, m in enumerate(body.messages[:-1])
               if m.role in ("user", "assistant")]
    completion_id = "chatcmpl-" + uuid.uuid4().hex
    created = int(time.time())
    model = body.model or MODEL_ID

    def run(on_passages: streaming.OnPassages | None = None) -> Answer:
        return answer_with_history(c, question, history, on_passages=on_passages)

    if not body.stream:
        answer = await run_in_threadpool(run)
        return {"id": completion_id, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": answer.answer}}],
                "citations": [asdict(x) for x in answer.citations], "citeqa": answer_json(answer)}

    _, task = await streaming.start(run)

    def chunk(delta: dict, finish: str | None = None, **extra: Any) -> ServerSentEvent:
        return ServerSentEvent(json.dumps({
            "id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}, ensure_ascii=False))

    async def events() -> AsyncIterator[ServerSentEvent]:
        yield chunk({"role": "assistant", "content": ""})
        try:
            answer = await task
        except Exception as exc:
            mapping = mapping_for(exc)
            body = error_body(mapping.code, str(exc)) if mapping else error_body("internal_error", "internal error")
            yield ServerSentEvent(json.dumps(body))
            yield ServerSentEvent("[DONE]")
            return
        for piece in streaming.deltas(answer.answer):
            yield chunk({"content": piece})
        yield chunk({}, "stop", citations=[asdict(x) for x in answer.citations], citeqa=answer_json(answer))
        yield ServerSentEvent("[DONE]")

    return EventSourceResponse(events(), ping=15)
