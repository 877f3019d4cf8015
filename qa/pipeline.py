"""Question → retrieved passages → cited answer, with per-stage timings."""

import time
from dataclasses import dataclass, replace
from typing import Protocol

from index.records import PassageFilter
from qa.errors import BadQuestion
from qa.records import Answer, RetrievedPassage
from qa.retriever import Retriever


class Answerer(Protocol):
    """Turns a question and its passages into a cited answer."""

    def answer(self, question: str, passages: list[RetrievedPassage]) -> Answer:
        """The answer object; `citations` quote the passages exactly."""
        ...


@dataclass(frozen=True)
class TracedAnswer:
    """An answer with the retrieved passages it was made from, best first."""

    answer: Answer
    passages: tuple[RetrievedPassage, ...]


class QAPipeline:
    """Usage: QAPipeline(retriever=r, answerer=a).ask("Who is the Kremlin spokesman?")"""

    def __init__(self, *, retriever: Retriever, answerer: Answerer, max_question_chars: int = 1000) -> None:
        if max_question_chars < 1:
            raise ValueError(f"max_question_chars must be positive, got {max_question_chars}")
        self.retriever = retriever
        self.answerer = answerer
        self._max_chars = max_question_chars

    def ask(self, question: str, *, k: int | None = None, filters: PassageFilter | None = None) -> Answer:
        """Answer one standalone question from the index."""
        return self.ask_traced(question, k=k, filters=filters).answer

    def ask_traced(self, question: str, *, k: int | None = None, filters: PassageFilter | None = None
                   ) -> TracedAnswer:
        """`ask`, also returning the passages the answerer read (what `citeqa eval` scores retrieval on)."""
        question = " ".join(question.split())
        if not question:
            raise BadQuestion("the question is empty")
        if len(question) > self._max_chars:
            raise BadQuestion(f"the question is longer than {self._max_chars} characters")
        if any("\ud800" <= ch <= "\udfff" for ch in question):  # a lone "\ud800" escape in a JSON body
            raise BadQuestion("the question is not valid Unicode (unpaired surrogate)")
        start = time.perf_counter()
        passages = self.retriever.retrieve(question, k=k, filters=filters)
        retrieved = time.perf_counter()
        answer = self.answerer.answer(question, passages)
        done = time.perf_counter()
        timings = {**answer.timings_ms, "retrieve": _ms(retrieved - start), "answer": _ms(done - retrieved),
                   "total": _ms(done - start)}
        return TracedAnswer(answer=replace(answer, timings_ms=timings), passages=tuple(passages))


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)
