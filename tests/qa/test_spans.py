"""Short-answer spans from small hand-written sentences, through the answerer and the extractor itself."""

import pytest

from qa.extractive import ExtractiveAnswerer
from qa.question import QuestionAnalyzer
from qa.records import RetrievedPassage
from qa.spans import SpanExtractor


def passage(text: str, *, title: str = "Local news", start: int = 100) -> RetrievedPassage:
    return RetrievedPassage(passage_id="doc#0", doc_id="doc", char_start=start, char_end=start + len(text), text=text,
                            title=title, url=None, published=None, score=0.8, rank=1)


@pytest.fixture(scope="module")
def answerer(nlp, minilm) -> ExtractiveAnswerer:
    return ExtractiveAnswerer(nlp=nlp, embedder=minilm, refusal_threshold=0.0)


@pytest.mark.parametrize(("question", "text", "expected"), [
    ("Who chairs the planning committee?",
     "The weather was mild. Jane Morrow chairs the planning committee, which meets monthly.", "Jane Morrow"),
    ("Which firm built the new terminal?",
     "The new terminal was built by Hadley & Sons, a family firm from Leeds.", "Hadley & Sons"),
    ("How many people attended the rally?", "About 2,500 people attended the rally on Sunday.", "About 2,500"),
    ("How much did the stadium cost?", "The stadium cost $1.2 billion and opened in 2019.", "$1.2 billion"),
    ("What percentage of voters backed the plan?", "The plan was backed by 62% of voters in the referendum.", "62%"),
    ("When did the factory close?", "The factory closed in March 2019, after 40 years of production.", "March 2019"),
    ("Where is the crane maker based?", "The crane maker, which is based in Rotterdam, employs 900 people.",
     "Rotterdam"),
    ("Why was the match postponed?", "The match was postponed because the pitch was frozen.", "the pitch was frozen"),
    ("Why did the bank raise rates?", "The bank raised rates due to rising inflation in the eurozone.",
     "rising inflation in the eurozone"),
    ("What caused the outage?", "The outage was caused by a failed transformer, which had not been serviced.",
     "a failed transformer"),
    ("What did the council promise to build?", "The council promised to build 300 new homes by 2028.",
     "300 new homes"),
    ("What is the largest export of Norland?", "The largest export of Norland is timber, which goes mostly to Asia.",
     "timber"),
    ("What were the volunteers handing out?", "Volunteers were handing out food, water and blankets at the hall.",
     "food, water and blankets"),
    ("Which club did Smith leave to join Arsenal?", "Arsenal signed Smith from Everton for £30 million.", "Everton"),
    ("Did the council approve the budget?", "The council approved the budget by nine votes to four.", "yes"),
    ("Was the mayor involved in the deal?", "The mayor, who was not involved in the deal, praised it.", "no"),
])
def test_short_answer(answerer: ExtractiveAnswerer, question: str, text: str, expected: str) -> None:
    answer = answerer.answer(question, [passage(text)])
    assert answer.short_answer == expected
    if expected not in ("yes", "no"):
        assert expected in answer.citations[0].quote


def test_reasons_drop_parentheticals_and_examples(answerer: ExtractiveAnswerer) -> None:
    text = ("Two councillors voted against it because, they said, it relied too heavily on a tax increase of 4.5%, "
            "the largest in a decade.")
    answer = answerer.answer("Why did two councillors vote against it?", [passage(text)])
    assert answer.short_answer == "it relied too heavily on a tax increase of 4.5%"
    text = "The group did better because regular contact helped patients notice warning signs, such as swollen ankles."
    answer = answerer.answer("Why did the group do better?", [passage(text)])
    assert answer.short_answer == "regular contact helped patients notice warning signs"


def test_purpose_of_the_named_subject_answers_why(nlp) -> None:
    # The question's verb ("step down") is not the sentence's ("resigned"), but its subject is.
    analysis = QuestionAnalyzer(nlp=nlp).analyze("Why did Rhea Tamm step down as councillor?")
    doc = nlp("The vote was called after Councillor Rhea Tamm resigned in June, halfway through her term, to undergo "
              "surgery on her knee.")
    assert [c.text for c in SpanExtractor().candidates(doc, analysis)] == ["to undergo surgery on her knee"]
    doc = nlp("The vote was called after Councillor Ian Burke resigned in June to undergo surgery on his knee.")
    assert SpanExtractor().candidates(doc, analysis) == []


def test_grounds_given_by_the_named_person_answer_why_they_think(nlp) -> None:
    analysis = QuestionAnalyzer(nlp=nlp).analyze("Why does Tomas Reyes think the bridge should stay shut?")
    doc = nlp("Tomas Reyes, an engineer with the county, pointed out that the deck is still cracked.")
    assert "the deck is still cracked" in [c.text for c in SpanExtractor().candidates(doc, analysis)]
    # Someone else's words are not Reyes's grounds.
    doc = nlp("Ana Lopez, an engineer with the county, pointed out that the deck is still cracked.")
    assert SpanExtractor().candidates(doc, analysis) == []


def test_a_future_question_prefers_a_future_date(nlp) -> None:
    analysis = QuestionAnalyzer(nlp=nlp).analyze("When will the porters strike again?")
    doc = nlp("It is the first strike since 2019, and the porters will strike again on June 4 without a deal.")
    fits = {c.text: c.fit for c in SpanExtractor().candidates(doc, analysis)}
    assert fits["June 4"] > fits["2019"]
    analysis = QuestionAnalyzer(nlp=nlp).analyze("When did the porters last strike?")
    assert {c.text: c.fit for c in SpanExtractor().candidates(doc, analysis)}["2019"] == 1.0


def test_a_number_the_question_states_is_no_answer(nlp) -> None:
    analysis = QuestionAnalyzer(nlp=nlp).analyze("How much did one-bedroom rents rise?")
    doc = nlp("Rents for one-bedroom flats rose by 11 percent.")
    assert "one" not in [c.text for c in SpanExtractor().candidates(doc, analysis)]


def test_extractor_skips_what_the_question_says(nlp) -> None:
    analysis = QuestionAnalyzer(nlp=nlp).analyze("Who manages Redmarsh United?")
    doc = nlp("Redmarsh United are managed by Gareth Linwood.")
    texts = [c.text for c in SpanExtractor().candidates(doc, analysis)]
    assert "Gareth Linwood" in texts and "Redmarsh United" not in texts


def test_extractor_keeps_the_currency_sign(nlp) -> None:
    analysis = QuestionAnalyzer(nlp=nlp).analyze("How much is the toll?")
    doc = nlp("A new toll of $2.50 for cars starts in May.")
    assert "$2.50" in [c.text for c in SpanExtractor().candidates(doc, analysis)]


def test_candidate_offsets_index_the_sentence(nlp) -> None:
    analysis = QuestionAnalyzer(nlp=nlp).analyze("When does the new toll start?")
    doc = nlp("A new toll of $2.50 for cars will take effect on May 1.")
    candidates = SpanExtractor().candidates(doc, analysis)
    assert candidates and all(doc.text[c.start:c.end] == c.text for c in candidates)
    assert all(0.0 <= c.fit <= 1.0 and 0.0 <= c.closeness <= 1.0 for c in candidates)


@pytest.mark.parametrize(("question", "text", "kept", "dropped"), [
    ("Which player was named the best of the finals?",
     "Vera Holm, a 29-year-old guard from Oslo, was named the best player of the finals.", None, "the best player"),
    ("In which city did the architect die?", "The architect died at her home on Saturday.", None, "her home"),
    ("Which tribes settled the valley?", "The valley was settled by the Mongol and Turkic tribes.",
     "Mongol and Turkic tribes", None),
])
def test_a_person_place_or_organisation_must_be_named(nlp, question, text, kept, dropped) -> None:
    texts = [c.text for c in SpanExtractor().candidates(nlp(text), QuestionAnalyzer(nlp=nlp).analyze(question))]
    if kept is not None:
        assert kept in texts
    if dropped is not None:
        assert dropped not in texts


def test_on_what_date_prefers_a_calendar_day_to_a_weekday(nlp) -> None:
    analysis = QuestionAnalyzer(nlp=nlp).analyze("On what date will the new mayor take office?")
    fits = {c.text: c.fit for c in SpanExtractor().candidates(
        nlp("The mayor, elected on Tuesday, will take office on January 5."), analysis)}
    assert fits["January 5"] > fits["Tuesday"]
