"""Runs a QA pipeline over a gold set and scores every question (the metrics of shared EVAL.md).

Usage:
    evaluator = Evaluator(pipeline=pipeline, passages=StorePassages(store), k=5)
    result = evaluator.run(questions, conversations=(), progress=True)
    result.summary["answer"]["overall"]  # {"n": 88, "em": 87.5, "f1": 88.5}

Every question is asked; one that raises is a *scored failure* (EM = F1 = 0, no relevant passage found, its
error listed in `summary["failures"]`), never a skip. One row per question (`QuestionRow`) holds everything
the summary is computed from, so `summarize(rows)` recomputes it from per_question.jsonl exactly.

What the means are over (each one's n is in the summary):
- EM/F1: every question (overall), the answerable ones (has_ans), the unanswerable ones (no_ans), each type.
- Retrieval: answerable questions with at least one relevant passage in the index (trec_eval drops queries
  without relevant documents); the others are counted as `no_relevant_in_index`.
- Citation recall/precision: answered questions (a refusal cites passages as *not* supporting).
- Answer-in-quote: answered questions with gold answers that are not all "yes"/"no" (a polar answer is not
  a span of the text).
- Latency: questions that did not fail, after one unscored warm-up question.
"""

import logging
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from tqdm import tqdm

from index.errors import DocumentNotFound
from index.records import PassageFilter
from index.store import Store
from qa.gold import GoldConversation, GoldQuestion
from qa.metrics import (
    SweepCase,
    best_threshold,
    citation_scores,
    exact_match,
    f1_score,
    has_answer,
    hit_at_k,
    mrr_at_k,
    ndcg_at_k,
    normalize_answer,
    percentiles,
    recall_at_k,
    refusal_scores,
    sweep_at,
    threshold_sweep,
)
from qa.pipeline import TracedAnswer
from qa.records import Answer

log = logging.getLogger(__name__)

SUPPORT_CHECK = ("qa.support.supports: the cited quotes hold every number and every capitalised word (not "
                 "opening the sentence) of the answer sentence and at least 60% of its content words, compared "
                 "by qa.terms.term_key; a sentence with no content words (\"Yes [1].\") is checked with the "
                 "question's words")
_POLAR = frozenset({"yes", "no"})
_STAGES = ("total", "retrieve", "answer")


class TracingPipeline(Protocol):
    """What the evaluator asks: `qa.pipeline.QAPipeline` is one."""

    def ask_traced(self, question: str, *, k: int | None = None, filters: PassageFilter | None = None
                   ) -> TracedAnswer:
        """The answer and the passages it was made from."""
        ...


class ChatSession(Protocol):
    """One conversation: each call answers a turn in the light of the earlier ones (the seam to qa/chat.py)."""

    def ask(self, question: str) -> TracedAnswer:
        """The turn's answer and the passages it was made from."""
        ...


ChatFactory = Callable[[], ChatSession]


class SessionChats(Protocol):
    """A multi-session chat pipeline (`qa.chat.ChatPipeline` is one)."""

    def start(self) -> str:
        """A new session's id."""
        ...

    def ask_traced(self, session_id: str, question: str, *, k: int | None = None,
                   filters: PassageFilter | None = None) -> TracedAnswer:
        """Answer a turn of the session, resolving follow-ups against its earlier turns."""
        ...


class PipelineChat:
    """A `ChatSession` over one new session of a chat pipeline: each gold conversation gets its own.

    Usage: Evaluator(..., chat=lambda: PipelineChat(chats=chat_pipeline, k=5))
    """

    def __init__(self, *, chats: SessionChats, k: int | None = None) -> None:
        self._chats = chats
        self._session = chats.start()
        self._k = k

    def ask(self, question: str) -> TracedAnswer:
        return self._chats.ask_traced(self._session, question, k=self._k)


class HistorylessChat:
    """A `ChatSession` that asks every turn as written, without the earlier turns: the floor a chat pipeline
    that resolves follow-ups must beat (and the stand-in while no chat pipeline is wired)."""

    def __init__(self, *, pipeline: TracingPipeline, k: int | None = None) -> None:
        self._pipeline = pipeline
        self._k = k

    def ask(self, question: str) -> TracedAnswer:
        return self._pipeline.ask_traced(question, k=self._k)


class PassageJudge(Protocol):
    """Which passages of the index are relevant to a gold question (the retrieval metrics' judgments)."""

    def relevant(self, question: GoldQuestion) -> frozenset[str]:
        """The passage ids relevant to the question; empty for an unanswerable one."""
        ...


class StorePassages:
    """Relevance judgments over a citeqa store (shared EVAL.md), cached per document.

    A passage is relevant to an answerable question when it lies in the gold `doc_id` and holds a gold
    answer (`qa.metrics.has_answer`); without a `doc_id`, any passage holding a gold answer. Gold answers
    "yes"/"no" are not looked for (a yes/no question has no relevant passage by this rule). When the gold
    names `supporting_doc_ids` (multi-hop, HotpotQA), every passage of those documents is relevant, since
    the bridge paragraph does not hold the answer yet is needed to find it.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._documents: dict[str, list[tuple[str, str]] | None] = {}
        self._all: list[str] | None = None

    def _passages(self, doc_id: str) -> list[tuple[str, str]]:
        """(passage id, normalized text) of each passage of a document; [] when it is not indexed."""
        if doc_id not in self._documents:
            try:
                doc = self._store.get_document(doc_id)
            except DocumentNotFound:  # the gold names an article that is not in the index: nothing relevant
                self._documents[doc_id] = None
            else:
                self._documents[doc_id] = [(p.passage_id, f" {normalize_answer(doc.text[p.char_start:p.char_end])} ")
                                           for p in doc.passages]
        return self._documents[doc_id] or []

    def relevant(self, question: GoldQuestion) -> frozenset[str]:
        if not question.answerable:
            return frozenset()
        if question.supporting_doc_ids:
            return frozenset(pid for d in question.supporting_doc_ids for pid, _ in self._passages(d))
        if question.doc_id is not None:
            doc_ids: Iterable[str] = [question.doc_id]
        else:
            if self._all is None:
                self._all = [d.doc_id for d in self._store.list_documents()]
            doc_ids = self._all
        # "yes"/"no" is not a span of the text: a passage holding the word "no" is no evidence.
        needles = [f" {n} " for n in (normalize_answer(a) for a in question.answers) if n and n not in _POLAR]
        return frozenset(pid for d in doc_ids for pid, text in self._passages(d) if any(n in text for n in needles))


@dataclass(frozen=True)
class QuestionRow:
    """Everything measured for one question: one line of per_question.jsonl."""

    id: str
    question: str
    answers: tuple[str, ...]
    answerable: bool
    type: str | None
    doc_id: str | None
    conversation: str | None = None
    turn: int | None = None
    standalone_question: str | None = None  # chat turns: the follow-up as the chat pipeline rewrote it
    error: str | None = None
    answer: str | None = None
    short_answer: str | None = None
    refused: bool = False
    confidence: float | None = None
    candidate: str | None = None
    citations: tuple[Mapping[str, Any], ...] = ()
    retrieved: tuple[Mapping[str, Any], ...] = ()  # {"rank", "passage_id", "doc_id", "relevant"}
    relevant_in_index: int = 0
    em: float = 0.0
    f1: float = 0.0
    hit_at_1: float | None = None
    hit_at_k: float | None = None
    recall_at_k: float | None = None
    mrr_at_k: float | None = None
    ndcg_at_k: float | None = None
    citation_recall: float | None = None
    citation_precision: float | None = None
    answer_in_quote: bool | None = None
    timings_ms: Mapping[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        row = asdict(self)
        row["answers"] = list(self.answers)
        return row

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> "QuestionRow":
        """A row read back from per_question.jsonl."""
        known = {name: row[name] for name in cls.__dataclass_fields__ if name in row}
        known["answers"] = tuple(known.get("answers", ()))
        known["citations"] = tuple(known.get("citations", ()))
        known["retrieved"] = tuple(known.get("retrieved", ()))
        return cls(**known)


@dataclass(frozen=True)
class EvalResult:
    """Per-question rows and the summary computed from them."""

    rows: tuple[QuestionRow, ...]
    summary: dict[str, Any]


class Evaluator:
    """Asks every gold question through a pipeline and scores it.

    Args:
        pipeline: answers questions and shows the passages it read (`QAPipeline`).
        passages: relevance judgments for the retrieval metrics (`StorePassages(store)`).
        k: passages retrieved per question, the k of the retrieval metrics.
        refusal_threshold: the answerer's shipped threshold, for the sweep (None: the answerer has none).
        chat: starts a conversation for chat gold sets (`PipelineChat` over `qa.chat.ChatPipeline`; default
            `HistorylessChat`, which asks each turn as written).
        info: extra facts recorded in the summary (gold file, index, generator, baseline …).
    """

    def __init__(self, *, pipeline: TracingPipeline, passages: PassageJudge, k: int,
                 refusal_threshold: float | None = None, chat: ChatFactory | None = None,
                 info: Mapping[str, Any] | None = None) -> None:
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if refusal_threshold is not None and not 0.0 <= refusal_threshold <= 1.0:
            raise ValueError(f"refusal_threshold must be in [0, 1], got {refusal_threshold!r}")
        self._pipeline = pipeline
        self._passages = passages
        self._k = k
        self._threshold = refusal_threshold
        self._chat = chat or (lambda: HistorylessChat(pipeline=pipeline, k=k))
        self._info = dict(info or {})

    def run(self, questions: Sequence[GoldQuestion], conversations: Sequence[GoldConversation] = (), *,
            progress: bool = False) -> EvalResult:
        """Ask every question, then every conversation's turns in order; score them all."""
        total = len(questions) + sum(len(c.turns) for c in conversations)
        if total == 0:
            raise ValueError("there is no question to evaluate")
        self._warm_up(questions, conversations)
        rows: list[QuestionRow] = []
        with tqdm(total=total, unit="question", desc="evaluating", file=sys.stderr,
                  disable=not progress or None) as bar:
            for gold in questions:
                rows.append(self._score(gold, self._ask))
                bar.update()
            for conversation in conversations:
                session = self._chat()
                for number, gold in enumerate(conversation.turn_questions(), start=1):
                    rows.append(self._score(gold, session.ask, conversation=conversation.id, turn=number))
                    bar.update()
        info = {**self._info, "k": self._k, "refusal_threshold": self._threshold}
        return EvalResult(rows=tuple(rows), summary=summarize(rows, k=self._k, refusal_threshold=self._threshold,
                                                              info=info))

    def _warm_up(self, questions: Sequence[GoldQuestion], conversations: Sequence[GoldConversation]) -> None:
        # The first question pays for lazy model loads and cold caches; latency is measured after it.
        first = questions[0].question if questions else conversations[0].turns[0].question
        try:
            self._pipeline.ask_traced(first, k=self._k)
        except Exception as exc:  # the scored run reports it; the warm-up only warms
            log.debug("warm-up question failed: %s", exc)

    def _ask(self, question: str) -> TracedAnswer:
        return self._pipeline.ask_traced(question, k=self._k)

    def _score(self, gold: GoldQuestion, ask: Callable[[str], TracedAnswer], *, conversation: str | None = None,
               turn: int | None = None) -> QuestionRow:
        base = QuestionRow(id=gold.id, question=gold.question, answers=gold.answers, answerable=gold.answerable,
                           type=gold.type, doc_id=gold.doc_id, conversation=conversation, turn=turn)
        relevant = self._passages.relevant(gold)
        try:
            traced = ask(gold.question)
        except Exception as exc:  # a scored failure: it stays in every mean it belongs to, with score 0
            log.warning("question %s failed: %s: %s", gold.id, type(exc).__name__, exc)
            return _with_retrieval(_replace(base, error=f"{type(exc).__name__}: {exc}"), (), relevant, self._k)
        return _with_retrieval(_scored(base, traced.answer, gold), traced.passages, relevant, self._k)


def _replace(row: QuestionRow, **changes: Any) -> QuestionRow:
    return QuestionRow(**{**row.__dict__, **changes})


def _scored(row: QuestionRow, answer: Answer, gold: GoldQuestion) -> QuestionRow:
    prediction = "" if answer.refused else (answer.short_answer or "")
    citations = tuple({"n": c.n, "doc_id": c.doc_id, "passage_id": c.passage_id, "char_start": c.char_start,
                       "char_end": c.char_end, "quote": c.quote, "supports": c.supports} for c in answer.citations)
    changes: dict[str, Any] = {
        "answer": answer.answer, "short_answer": answer.short_answer, "refused": answer.refused,
        "confidence": answer.confidence, "candidate": answer.candidate, "citations": citations,
        "standalone_question": getattr(answer, "standalone_question", None),
        "em": exact_match(prediction, gold.answers), "f1": f1_score(prediction, gold.answers),
        "timings_ms": dict(answer.timings_ms),
    }
    if not answer.refused:
        scores = citation_scores(answer.answer, {c.n: c.quote for c in answer.citations}, question=gold.question)
        changes["citation_recall"] = scores.recall
        changes["citation_precision"] = scores.precision
        if gold.answerable and not all(normalize_answer(a) in _POLAR for a in gold.answers):
            changes["answer_in_quote"] = has_answer(" ".join(c.quote for c in answer.citations), gold.answers)
    return _replace(row, **changes)


def _with_retrieval(row: QuestionRow, passages: Sequence[Any], relevant: frozenset[str], k: int) -> QuestionRow:
    retrieved = tuple({"rank": p.rank, "passage_id": p.passage_id, "doc_id": p.doc_id,
                       "relevant": p.passage_id in relevant} for p in passages)
    changes: dict[str, Any] = {"retrieved": retrieved, "relevant_in_index": len(relevant)}
    if relevant:
        grades = [int(r["relevant"]) for r in retrieved][:k]
        grades += [0] * (k - len(grades))  # fewer passages than k (or a failure): the missing ranks are misses
        changes.update(hit_at_1=hit_at_k(grades, 1), hit_at_k=hit_at_k(grades, k),
                       recall_at_k=recall_at_k(grades, k, len(relevant)), mrr_at_k=mrr_at_k(grades, k),
                       ndcg_at_k=ndcg_at_k(grades, k, len(relevant)))
    return _replace(row, **changes)


# --- the summary -----------------------------------------------------------------------------------------

def _mean(values: Sequence[float]) -> dict[str, Any]:
    """100 × the mean, with its n (value None when n is 0)."""
    return {"n": len(values), "value": round(100 * sum(values) / len(values), 4) if values else None}


def _answer_group(rows: Sequence[QuestionRow]) -> dict[str, Any]:
    n = len(rows)
    return {"n": n, "em": round(100 * sum(r.em for r in rows) / n, 4) if n else None,
            "f1": round(100 * sum(r.f1 for r in rows) / n, 4) if n else None}


def sweep_cases(rows: Sequence[QuestionRow]) -> list[SweepCase]:
    """Each question that ran, as the threshold sweep sees it (a failed question scores 0 at every threshold)."""
    cases = []
    for r in rows:
        if r.error is not None:
            continue
        candidate = r.candidate if r.refused else r.short_answer
        cases.append(SweepCase(
            confidence=r.confidence if r.confidence is not None else 0.0,
            f1_answered=None if candidate is None else f1_score(candidate, r.answers),
            em_answered=None if candidate is None else exact_match(candidate, r.answers),
            f1_refused=f1_score("", r.answers), em_refused=exact_match("", r.answers)))
    return cases


def summarize(rows: Sequence[QuestionRow], *, k: int, refusal_threshold: float | None,
              info: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The summary object of `citeqa eval --json` (every mean is 100 × mean over its n questions)."""
    rows = list(rows)
    ran = [r for r in rows if r.error is None]
    answered = [r for r in ran if not r.refused]
    by_type: dict[str, list[QuestionRow]] = {}
    for r in rows:
        by_type.setdefault(r.type or ("answerable" if r.answerable else "unanswerable"), []).append(r)
    judged = [r for r in rows if r.relevant_in_index > 0]
    refusals = refusal_scores((r.refused, not r.answerable) for r in rows)
    cases = sweep_cases(rows)
    best = best_threshold(cases, n=len(rows))
    shipped = sweep_at(cases, refusal_threshold, n=len(rows)) if refusal_threshold is not None else None
    return {
        **dict(info or {}),
        "questions": len(rows),
        "failed": len(rows) - len(ran),
        "answer": {"overall": _answer_group(rows), "has_ans": _answer_group([r for r in rows if r.answerable]),
                   "no_ans": _answer_group([r for r in rows if not r.answerable])},
        "by_type": {name: _answer_group(group) for name, group in sorted(by_type.items())},
        "abstention": {
            "refused": refusals.refused, "unanswerable": refusals.unanswerable,
            "refused_unanswerable": refusals.refused_unanswerable,
            "refusal_precision": {"n": refusals.refused, "value": _pct(refusals.precision)},
            "refusal_recall": {"n": refusals.unanswerable, "value": _pct(refusals.recall)},
            "sweep": {"n": len(rows), "shipped_threshold": refusal_threshold,
                      "f1_at_shipped": _pct(shipped.f1) if shipped else None,
                      "em_at_shipped": _pct(shipped.em) if shipped else None,
                      "best_threshold": best.threshold if best.threshold <= 1.0 else None,
                      "best_f1": _pct(best.f1), "em_at_best": _pct(best.em), "answered_at_best": best.answered,
                      "curve": [{"threshold": p.threshold, "f1": _pct(p.f1), "em": _pct(p.em),
                                 "answered": p.answered} for p in threshold_sweep(cases, steps=50, n=len(rows))]},
        },
        "retrieval": {
            "k": k, "answerable": sum(r.answerable for r in rows), "n": len(judged),
            "no_relevant_in_index": sum(r.answerable and r.relevant_in_index == 0 for r in rows),
            "hit@1": _mean([r.hit_at_1 for r in judged if r.hit_at_1 is not None]),
            "hit@k": _mean([r.hit_at_k for r in judged if r.hit_at_k is not None]),
            "recall@k": _mean([r.recall_at_k for r in judged if r.recall_at_k is not None]),
            "mrr@k": _mean([r.mrr_at_k for r in judged if r.mrr_at_k is not None]),
            "ndcg@k": _mean([r.ndcg_at_k for r in judged if r.ndcg_at_k is not None]),
        },
        "citations": {
            "support_check": SUPPORT_CHECK,
            "recall": _mean([r.citation_recall for r in answered if r.citation_recall is not None]),
            "precision": _mean([r.citation_precision for r in answered if r.citation_precision is not None]),
            "answer_in_quote": _mean([float(r.answer_in_quote) for r in answered if r.answer_in_quote is not None]),
        },
        "latency_ms": {stage: asdict(percentiles([r.timings_ms[stage] for r in ran if stage in r.timings_ms]))
                       for stage in _STAGES},
        "failures": [{"id": r.id, "error": r.error} for r in rows if r.error is not None],
    }


def _pct(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 4)
