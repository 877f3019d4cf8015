"""Follow-up rewriting: every demo chat follow-up and held-out follow-ups get the entity they need; questions
that stand alone are never rewritten; the LLM rewriter is gated and falls back to the rules."""

import json
from pathlib import Path

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from spacy.language import Language

from qa.followups import HistoryTurn, LLMRewriter, RuleRewriter
from qa.question import QuestionAnalyzer
from tests.conftest import ROOT
from tests.qa.followup_cases import HELDOUT_CHATS

DEMO_CHATS = [json.loads(line) for line in (ROOT / "examples" / "gold" / "demo_chat.jsonl").read_text().splitlines()
              if line.strip()]
DEMO_QUESTIONS = [json.loads(line)["question"] for line in
                  (ROOT / "examples" / "gold" / "demo.jsonl").read_text().splitlines() if line.strip()]
# The entity each demo follow-up (turns 2 and 3) must carry once rewritten.
DEMO_NEEDS = {
    "c01": ["Elena Ruiz", "Harbor Bridge"], "c02": ["Margaret Oyelaran", "Margaret Oyelaran"],
    "c03": ["Lumenfield", "Daniel Achterberg"], "c04": ["Hannah Lindqvist", "St. Aldric's"],
    "c05": ["Marcus Delaney", "Marcus Delaney"], "c06": ["Tiago Almeida", "Tiago Almeida"],
    "c07": ["Amara Kessling", "Amara Kessling"], "c08": ["Lena Varga", "Saltmere"],
    "c09": ["Roland Pike", "Roland Pike"], "c10": ["Tarrant & Vell Construction", "Harbor Bridge"],
}


@pytest.fixture(scope="module")
def rewriter(nlp: Language) -> RuleRewriter:
    return RuleRewriter(nlp=nlp)


@pytest.fixture(scope="module")
def analyzer(nlp: Language) -> QuestionAnalyzer:
    return QuestionAnalyzer(nlp=nlp)


def replay(rewriter: RuleRewriter, analyzer: QuestionAnalyzer, turns: list[dict]) -> list[str]:
    """Rewrite a conversation turn by turn; the history holds the gold answers, typed as the answerer would."""
    history: list[HistoryTurn] = []
    out = []
    for turn in turns:
        standalone = rewriter.rewrite(turn["question"], history)
        out.append(standalone)
        history.append(HistoryTurn(question=turn["question"], standalone_question=standalone,
                                   short_answer=(turn["answers"] or [None])[0],
                                   answer_type=analyzer.analyze(standalone).answer_type.value))
    return out


@pytest.mark.parametrize("chat", DEMO_CHATS, ids=lambda c: c["id"])
def test_demo_follow_ups_get_the_entity_they_need(rewriter, analyzer, chat: dict) -> None:
    rewritten = replay(rewriter, analyzer, chat["turns"])
    assert rewritten[0] == chat["turns"][0]["question"]
    for turn, standalone, needed in zip(chat["turns"][1:], rewritten[1:], DEMO_NEEDS[chat["id"]], strict=True):
        assert standalone != turn["question"], turn["question"]
        assert needed.lower() in standalone.lower(), (turn["question"], standalone)
        assert standalone.endswith("?") and standalone[0].isupper()


@pytest.mark.parametrize("chat", HELDOUT_CHATS, ids=lambda c: c["id"])
def test_held_out_follow_ups_get_the_entity_they_need(rewriter, analyzer, chat: dict) -> None:
    rewritten = replay(rewriter, analyzer, chat["turns"])
    assert rewritten[0] == chat["turns"][0]["question"]
    for turn, standalone in zip(chat["turns"][1:], rewritten[1:], strict=True):
        for needed in turn["needs"]:
            assert needed.lower() in standalone.lower(), (turn["question"], standalone)


def test_standalone_questions_are_never_rewritten(rewriter) -> None:
    history = [HistoryTurn(question="Who won the Northmoor governor race?",
                           standalone_question="Who won the Northmoor governor race?", short_answer="Amara Kessling",
                           answer_type="person")]
    standalone = DEMO_QUESTIONS + [c["turns"][0]["question"] for c in DEMO_CHATS] + [
        t["standalone"] for c in DEMO_CHATS + HELDOUT_CHATS for t in c["turns"] if "standalone" in t]
    assert len(standalone) > 100
    for question in standalone:
        assert not rewriter.needs_context(question), question
        assert rewriter.rewrite(question, history) == question


@pytest.mark.parametrize(("question", "expected"), [
    ("How long did it take to repair the bridge?", False),  # pleonastic "it"
    ("Is there a toll on the bridge?", False),  # expletive "there"
    ("What did the company say about its shares?", False),  # antecedent in the question
    ("Why did the mayor say she resigned?", False),
    ("What did they say the plan was?", True),
    ("When was that?", True),
    ("Who was in charge then?", True),
    ("What about the finance director?", True),
    ("And the defence minister?", True),
    ("And how much did the work cost?", True),
])
def test_cues(rewriter, question: str, expected: bool) -> None:
    assert rewriter.needs_context(question) is expected


def test_rules_cover_then_there_and_what_about(rewriter) -> None:
    def turn(q: str, a: str, t: str) -> HistoryTurn:
        return HistoryTurn(question=q, standalone_question=q, short_answer=a, answer_type=t)

    assert rewriter.rewrite("Who was governor then?", [turn("When was the previous election?", "2022", "date")]) \
        == "Who was governor in 2022?"
    assert rewriter.rewrite("Who spoke there?", [turn("Where did the union rally?", "outside Gate 4", "place")]) \
        == "Who spoke outside Gate 4?"
    assert rewriter.rewrite("What about Howard Blythe?", [
        turn("Why did Priya Natarajan vote against the budget?", "the tax rise", "reason")]) \
        == "Why did Howard Blythe vote against the budget?"
    assert rewriter.rewrite("How much did it cost?", [
        turn("Which company built the Kessel Tunnel?", "Orrin Works", "organization")]) \
        == "How much did the Kessel Tunnel cost?"


def test_no_history_or_no_referent_leaves_the_question_alone(rewriter) -> None:
    assert rewriter.rewrite("What did she say?", []) == "What did she say?"
    only_numbers = [HistoryTurn(question="How many?", standalone_question="How many jobs were cut?",
                                short_answer="1,200", answer_type="number")]
    assert rewriter.rewrite("What did she say?", only_numbers) == "What did she say?"


def test_bad_arguments_fail_at_construction(nlp) -> None:
    with pytest.raises(ValueError, match="context_turns must be at least 1, got 0"):
        RuleRewriter(nlp=nlp, context_turns=0)
    with pytest.raises(TypeError, match="nlp must be a spaCy Language, got str"):
        RuleRewriter(nlp="en_core_web_sm")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="chat_model must be a LangChain chat model"):
        LLMRewriter(chat_model=object(), rules=RuleRewriter(nlp=nlp))


HISTORY = [HistoryTurn(question="Who won the Northmoor governor race?",
                       standalone_question="Who won the Northmoor governor race?", short_answer="Amara Kessling",
                       answer_type="person")]


def test_llm_rewriter_uses_a_good_reply(rewriter) -> None:
    model = FakeListChatModel(responses=["When will Amara Kessling be sworn in as governor?"])
    llm = LLMRewriter(chat_model=model, rules=rewriter)
    assert llm.rewrite("When will she be sworn in?", HISTORY) == "When will Amara Kessling be sworn in as governor?"


@pytest.mark.parametrize("reply", ["", "   ", "Sure! Here you go.", "I cannot help with that"])
def test_llm_rewriter_falls_back_to_the_rules_on_a_bad_reply(rewriter, reply: str) -> None:
    llm = LLMRewriter(chat_model=FakeListChatModel(responses=[reply]), rules=rewriter)
    assert llm.rewrite("When will she be sworn in?", HISTORY) == "When will Amara Kessling be sworn in?"


def test_llm_rewriter_never_calls_the_model_for_a_standalone_question(rewriter) -> None:
    class Exploding(FakeListChatModel):
        def invoke(self, *args, **kwargs):  # type: ignore[override]
            raise AssertionError("the model must not be called")

    llm = LLMRewriter(chat_model=Exploding(responses=["x"]), rules=rewriter)
    assert llm.rewrite("Who manages Redmarsh United?", HISTORY) == "Who manages Redmarsh United?"


def test_llm_rewriter_survives_a_model_error(rewriter) -> None:
    class Failing(FakeListChatModel):
        def invoke(self, *args, **kwargs):  # type: ignore[override]
            raise ConnectionError("server down")

    llm = LLMRewriter(chat_model=Failing(responses=["x"]), rules=rewriter)
    assert llm.rewrite("When will she be sworn in?", HISTORY) == "When will Amara Kessling be sworn in?"


def test_held_out_articles_are_not_demo_articles() -> None:
    from tests.qa.followup_cases import HELDOUT_ARTICLES

    demo = " ".join(p.read_text() for p in Path(ROOT / "examples" / "articles").iterdir())
    assert all(name.split("-")[0].capitalize() not in demo for name in HELDOUT_ARTICLES)
