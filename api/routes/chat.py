"""Chat sessions over HTTP: /v1/chat/sessions. Follow-ups are resolved against the session by qa/chat.py.

Each message answers like /v1/ask (JSON, or server-sent events with `Accept: text/event-stream`) and adds
`standalone_question`, the follow-up as it was rewritten to stand alone. The session keeps every turn with
its citations, so a page that reloads gets the whole conversation back.
"""

from collections.abc import Sequence
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict
from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from api.commands import answer_json
from api.routes import streaming
from api.routes.ask import AskRequest, wants_stream
from api.routes.deps import Components, check_text, check_top_k, components, require_read
from api.settings import Settings
from api.wiring import make_chat_store, make_rewriter
from qa.chat import ChatPipeline, ChatTurn
from qa.followups import HistoryTurn
from qa.pipeline import QAPipeline
from qa.records import Answer

router = APIRouter(tags=["chat"], dependencies=[Depends(require_read)])


class NewSession(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def make_sessions(settings: Settings, pipeline: QAPipeline) -> ChatPipeline:
    """The chat pipeline over the app's own QA pipeline (one model in memory, not two)."""
    return ChatPipeline(pipeline=pipeline, rewriter=make_rewriter(settings), store=make_chat_store(settings),
                        context_turns=settings.chat.context_turns,
                        max_question_chars=settings.answer.max_question_chars)


def _tapped(c: Components, on_passages: streaming.OnPassages | None) -> QAPipeline:
    if on_passages is None:
        return c.pipeline
    return QAPipeline(retriever=c.pipeline.retriever, answerer=streaming.PassageTap(c.pipeline.answerer, on_passages),
                      max_question_chars=c.settings.answer.max_question_chars)


def _chat(c: Components, on_passages: streaming.OnPassages | None) -> ChatPipeline:
    sessions: ChatPipeline = c.chat
    if on_passages is None:
        return sessions
    return ChatPipeline(pipeline=_tapped(c, on_passages), rewriter=sessions.rewriter, store=sessions.store,
                        context_turns=c.settings.chat.context_turns,
                        max_question_chars=c.settings.answer.max_question_chars)


def answer_with_history(c: Components, question: str, history: Sequence[tuple[str, str]], *,
                        on_passages: streaming.OnPassages | None = None) -> Answer:
    """Answer `question` after (role, text) `history` that the client keeps (the OpenAI way), storing nothing."""
    turns, pending = [], None
    for role, text in history:
        if role == "user":
            pending = text
        elif pending is not None:
            reply = streaming.strip_markers(text)
            turns.append(HistoryTurn(question=pending, standalone_question=pending, short_answer=reply or None,
                                     quotes=(reply,) if reply else ()))
            pending = None
    sessions: ChatPipeline = c.chat
    typed = " ".join(question.split())
    standalone = " ".join(sessions.rewriter.rewrite(typed, turns).split()) if turns and typed else typed
    if len(standalone) > c.settings.answer.max_question_chars:
        standalone = typed  # a rewrite must never turn a valid question into bad input
    answer = _tapped(c, on_passages).ask(standalone or typed)
    if standalone == typed:
        return answer
    return replace(answer, question=typed, standalone_question=answer.question)


def turn_json(turn: ChatTurn) -> dict:
    """A stored turn: the answer object (question as typed) with its number and time."""
    return {"n": turn.n, "created_at": turn.created_at, **answer_json(turn.answer),
            "question": turn.question, "standalone_question": turn.standalone_question}


@router.post("/v1/chat/sessions", status_code=201)
async def create_session(c: Annotated[Components, Depends(components)], body: NewSession | None = None) -> dict:
    """A new, empty conversation."""
    session_id = await run_in_threadpool(c.chat.start)
    return {"session_id": session_id}


@router.get("/v1/chat/sessions/{session_id}")
async def get_session(session_id: str, c: Annotated[Components, Depends(components)]) -> dict:
    """Every turn of the conversation, oldest first, each with its citations."""
    turns = await run_in_threadpool(c.chat.turns, session_id)
    return {"session_id": session_id, "turns": [turn_json(t) for t in turns]}


@router.delete("/v1/chat/sessions/{session_id}")
async def delete_session(session_id: str, c: Annotated[Components, Depends(components)]) -> dict:
    """Forget the conversation."""
    await run_in_threadpool(c.chat.store.delete, session_id)
    return {"deleted": session_id}


@router.post("/v1/chat/sessions/{session_id}/messages",
             responses={200: {"description": "The answer object with `standalone_question`, or SSE events "
                                             "`sources`, `delta`, `citation`, `done`.",
                              "content": {"text/event-stream": {}}}})
async def add_message(session_id: str, body: AskRequest, request: Request, response: Response,
                      c: Annotated[Components, Depends(components)]) -> Any:
    """Ask the next question of a conversation; a follow-up ("when did she…") is resolved against it."""
    question = check_text("question", body.question)
    k = check_top_k(c.settings, body.top_k)
    filters = body.filters.to_filter() if body.filters else None
    if not wants_stream(request):
        answer = await run_in_threadpool(c.chat.ask, session_id, question, k=k, filters=filters)
        return answer_json(answer)

    def run(on_passages: streaming.OnPassages) -> Answer:
        return _chat(c, on_passages).ask(session_id, question, k=k, filters=filters)

    passages, task = await streaming.start(run)
    return EventSourceResponse(streaming.answer_events(passages, task), ping=15)
