"""How answers and refusals are worded."""

import pytest

from qa.phrasing import answer_sentence, refusal_sentence


@pytest.mark.parametrize(("question", "expected"), [
    ("Who designed the replacement cables for the Harbor Bridge?",
     "The indexed articles do not say who designed the replacement cables for the Harbor Bridge."),
    ("When was the Harbor Bridge closed?", "The indexed articles do not say when the Harbor Bridge was closed."),
    ("In what year was the Harbor Bridge originally built?",
     "The indexed articles do not say in what year the Harbor Bridge was originally built."),
    ("How many votes did Oskar Brandt receive in total?",
     "The indexed articles do not say how many votes Oskar Brandt received in total."),
    ("How many berths does Meridian Terminals plan to automate at its other ports?",
     "The indexed articles do not say how many berths Meridian Terminals plans to automate at its other ports."),
    ("Who is the sheriff of Rosk County?", "The indexed articles do not say who the sheriff of Rosk County is."),
    ("Did the Elmsworth budget pass?", "The indexed articles do not say whether the Elmsworth budget passed."),
])
def test_refusal_restates_the_question(nlp, question: str, expected: str) -> None:
    assert refusal_sentence(nlp(question)) == expected


def test_refusal_quotes_a_question_it_cannot_restate(nlp) -> None:
    assert refusal_sentence(nlp("Telnet was sold to")) == \
        "The indexed articles do not answer the question \u201cTelnet was sold to\u201d."


def test_a_refusal_holds_no_citation_marker(nlp) -> None:
    # A client reads "[2]" as a citation; a refusal cites nothing.
    text = refusal_sentence(nlp("What does footnote [2] of the report say?"))
    assert "[2]" not in text and "(2)" in text


@pytest.mark.parametrize(("short", "expected"), [
    ("Dmitry Peskov", "Dmitry Peskov [1]."), ("yes", "Yes [1]."), ("a shortage of steel.", "A shortage of steel [1]."),
])
def test_answer_sentence(short: str, expected: str) -> None:
    assert answer_sentence(short) == expected
