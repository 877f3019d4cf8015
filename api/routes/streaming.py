"""Answers as server-sent events: `sources` (the passages read), `delta`s, `citation`s, then `done`.

The answer runs in the thread pool; the route waits until the passages are known before it starts the
response, so a bad question still gets its 4xx JSON error instead of a 200 stream that fails.
"""

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from typing import Any

from sse_starlette import ServerSentEvent
from starlette.concurrency import run_in_threadpool

from api.commands import answer_json
from api.errors import error_body, mapping_for
from qa.records import Answer, RetrievedPassage

log = logging.getLogger("citeqa.http")

OnPassages = Callable[[list[RetrievedPassage]], None]
_PIECES = re.compile(r"\S+\s*|\s+")
_MARKERS = re.compile(r"\s*\[\d+\]")


class PassageTap:
    """An answerer that reports the passages it is given before the wrapped answerer reads them."""

    def __init__(self, inner: object, on_passages: OnPassages) -> None:
        self._inner = inner
        self._on_passages = on_passages

    def answer(self, question: str, passages: list[RetrievedPassage]) -> Answer:
        self._on_passages(passages)
        return self._inner.answer(question, passages)  # type: ignore[attr-defined, no-any-return]


async def start(run: Callable[[OnPassages], Answer]) -> tuple[list[RetrievedPassage], "asyncio.Task[Answer]"]:
    """Run `run(on_passages)` off the event loop; return once it has passages, raising its error if it fails first."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[list[RetrievedPassage]] = loop.create_future()

    def deliver(passages: list[RetrievedPassage]) -> None:
        if not ready.done():
            ready.set_result(passages)

    def on_passages(passages: list[RetrievedPassage]) -> None:
        loop.call_soon_threadsafe(deliver, list(passages))

    task: asyncio.Task[Answer] = asyncio.ensure_future(run_in_threadpool(run, on_passages))
    waiting: set[asyncio.Future[Any]] = {task, ready}
    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    if ready.done():
        return ready.result(), task
    task.result()  # the run failed before retrieving: raise its error while a JSON response is still possible
    return [], task


def deltas(text: str) -> list[str]:
    """The answer in word-sized pieces whose concatenation is exactly `text`."""
    return _PIECES.findall(text)


def strip_markers(text: str) -> str:
    """An answer's text without its `[n]` markers and final full stop: what a later turn may refer back to."""
    return _MARKERS.sub("", text).strip().rstrip(".").strip()


def passage_json(p: RetrievedPassage) -> dict:
    return {"rank": p.rank, "score": round(p.score, 6), "doc_id": p.doc_id, "passage_id": p.passage_id,
            "title": p.title, "url": p.url, "published": p.published, "char_start": p.char_start,
            "char_end": p.char_end, "text": p.text}


def _event(name: str, data: object) -> ServerSentEvent:
    return ServerSentEvent(json.dumps(data, ensure_ascii=False), event=name)


async def answer_events(passages: list[RetrievedPassage], task: "asyncio.Task[Answer]",
                        extra: Callable[[Answer], dict] | None = None) -> AsyncIterator[ServerSentEvent]:
    """`sources`, then `delta`s, `citation`s and `done` (the answer object); an `error` event if it fails."""
    yield _event("sources", {"passages": [passage_json(p) for p in passages]})
    try:
        answer = await task
    except Exception as exc:
        mapping = mapping_for(exc)
        if mapping is None:
            log.exception("streamed answer failed")
            yield _event("error", error_body("internal_error", "internal error; the server log has the details"))
        else:
            yield _event("error", error_body(mapping.code, str(exc)))
        return
    for piece in deltas(answer.answer):
        yield _event("delta", {"text": piece})
    for citation in answer.citations:
        yield _event("citation", asdict(citation))
    done = answer_json(answer)
    if extra is not None:
        done.update(extra(answer))
    yield _event("done", done)
