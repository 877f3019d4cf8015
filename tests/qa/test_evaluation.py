"""The evaluator's bookkeeping with a scripted pipeline: failures are scored and listed, n is right."""

import pytest

from qa.evaluation import Evaluator, QuestionRow, summarize
from qa.gold import GoldConversation, GoldQuestion, GoldTurn
from qa.pipeline import TracedAnswer
from qa.records import Answer, Citation, RetrievedPassage

QUOTE = "Mayor Elena Ruiz cut the ribbon on Wednesday."


def passage(pid: str, rank: int) -> RetrievedPassage:
    return RetrievedPassage(passage_id=pid, doc_id="d", char_start=0, char_end=len(QUOTE), text=QUOTE, title=None,
                            url=None, published=None, score=1.0 / rank, rank=rank)


class ScriptedPipeline:
    """Answers from a script; a question mapped to an exception raises it."""

    def __init__(self, script: dict[str, Answer | Exception]) -> None:
        self.script = script
        self.asked: list[str] = []

    def ask_traced(self, question: str, *, k=None, filters=None) -> TracedAnswer:
        self.asked.append(question)
        outcome = self.script[question]
        if isinstance(outcome, Exception):
            raise outcome
        return TracedAnswer(answer=outcome, passages=(passage("p2", 1), passage("p1", 2)))


class Judge:
    def relevant(self, question: GoldQuestion) -> frozenset[str]:
        return frozenset({"p1"}) if question.answerable else frozenset()


def answered(question: str, short: str, confidence: float) -> Answer:
    citation = Citation(n=1, doc_id="d", title=None, url=None, passage_id="p1", char_start=0, char_end=len(QUOTE),
                        quote=QUOTE)
    return Answer(question=question, answer=f"{short} [1].", short_answer=short, refused=False,
                  citations=(citation,), confidence=confidence, timings_ms={"total": 10.0, "retrieve": 4.0,
                                                                           "answer": 6.0})


def refused(question: str, candidate: str | None, confidence: float) -> Answer:
    return Answer(question=question, answer="The indexed articles do not say.", short_answer=None, refused=True,
                  confidence=confidence, candidate=candidate, timings_ms={"total": 20.0})


GOLD = [
    GoldQuestion(id="a", question="Who cut the ribbon?", answers=("Elena Ruiz",), type="person"),
    GoldQuestion(id="b", question="When?", answers=("Wednesday",), type="date"),
    GoldQuestion(id="c", question="Who designed it?", answers=(), type="unanswerable"),
    GoldQuestion(id="d", question="Why?", answers=("because",), type="reason"),
]
SCRIPT: dict[str, Answer | Exception] = {
    "Who cut the ribbon?": answered("Who cut the ribbon?", "Mayor Elena Ruiz", 0.9),
    "When?": refused("When?", "Wednesday", 0.2),
    "Who designed it?": refused("Who designed it?", None, 0.1),
    "Why?": RuntimeError("model crashed"),
}


def test_failures_are_scored_and_listed() -> None:
    pipeline = ScriptedPipeline(SCRIPT)
    result = Evaluator(pipeline=pipeline, passages=Judge(), k=2, refusal_threshold=0.3).run(GOLD)
    assert pipeline.asked[0] == "Who cut the ribbon?" and len(pipeline.asked) == 5  # warm-up + 4
    rows = {r.id: r for r in result.rows}
    assert rows["d"].error == "RuntimeError: model crashed" and rows["d"].f1 == 0.0
    assert rows["d"].hit_at_k == 0.0 and rows["d"].retrieved == ()  # a failure misses every relevant passage
    summary = result.summary
    assert summary["failed"] == 1 and summary["failures"] == [{"id": "d", "error": "RuntimeError: model crashed"}]
    # F1 a: {mayor, elena, ruiz} vs {elena, ruiz} = 0.8; b refused = 0; c refused on unanswerable = 1; d = 0
    assert summary["answer"]["overall"] == {"n": 4, "em": 25.0, "f1": pytest.approx(45.0)}
    assert summary["answer"]["has_ans"]["n"] == 3 and summary["answer"]["no_ans"]["em"] == 100.0
    # retrieval over the 3 answerable questions: p1 at rank 2 for a and b, nothing for the failure
    assert summary["retrieval"]["mrr@k"] == {"n": 3, "value": pytest.approx(100 / 3, abs=1e-3)}
    assert summary["retrieval"]["hit@1"]["value"] == 0.0
    assert summary["citations"]["recall"]["n"] == 1 and summary["latency_ms"]["total"]["n"] == 3
    sweep = summary["abstention"]["sweep"]
    # at 0.3 (shipped): 0.8 + 0 + 1 + 0 = 1.8 / 4; at 0.2, b answers "Wednesday" (F1 1) → 2.8 / 4
    assert sweep["f1_at_shipped"] == pytest.approx(45.0) and sweep["best_f1"] == pytest.approx(70.0)
    # every threshold up to 0.2 gives 70 (c has no candidate to answer with); ties go to the lowest
    assert sweep["best_threshold"] == 0.0 and sweep["answered_at_best"] == 2
    assert summary["abstention"]["refusal_precision"] == {"n": 2, "value": 50.0}


def test_summary_recomputes_from_rows_read_back() -> None:
    result = Evaluator(pipeline=ScriptedPipeline(SCRIPT), passages=Judge(), k=2, refusal_threshold=0.3).run(GOLD)
    rows = [QuestionRow.from_json(r.to_json()) for r in result.rows]
    again = summarize(rows, k=2, refusal_threshold=0.3, info={"k": 2, "refusal_threshold": 0.3})
    assert again == result.summary


def test_conversations_use_one_chat_session_each() -> None:
    sessions: list[list[str]] = []

    class Session:
        def __init__(self) -> None:
            sessions.append([])

        def ask(self, question: str) -> TracedAnswer:
            sessions[-1].append(question)
            return TracedAnswer(answer=answered(question, "Elena Ruiz", 0.9), passages=())

    conversation = GoldConversation(id="c1", turns=(GoldTurn("Who cut the ribbon?", ("Elena Ruiz",)),
                                                    GoldTurn("And who was she?", ("Elena Ruiz",))))
    result = Evaluator(pipeline=ScriptedPipeline(SCRIPT), passages=Judge(), k=2, chat=Session).run(
        [], [conversation, conversation])
    assert sessions == [["Who cut the ribbon?", "And who was she?"]] * 2
    assert [(r.id, r.conversation, r.turn, r.em) for r in result.rows][:2] == [("c1/1", "c1", 1, 1.0),
                                                                               ("c1/2", "c1", 2, 1.0)]


def test_evaluator_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="k must be a positive integer, got 0"):
        Evaluator(pipeline=ScriptedPipeline({}), passages=Judge(), k=0)
    with pytest.raises(ValueError, match="refusal_threshold must be in"):
        Evaluator(pipeline=ScriptedPipeline({}), passages=Judge(), k=1, refusal_threshold=2.0)
    with pytest.raises(ValueError, match="no question"):
        Evaluator(pipeline=ScriptedPipeline({}), passages=Judge(), k=1).run([])
