"""Yes/no from a supporting sentence: negation cues in the clauses about the question's content words."""

import pytest

from qa.polarity import PolarityJudge
from qa.question import QuestionAnalyzer


@pytest.mark.parametrize(("question", "sentence", "affirms"), [
    ("Did the budget pass?", "The budget passed by seven votes to two.", True),
    ("Has anyone died in the fire?", "No deaths have been reported, but two firefighters were hurt.", False),
    ("Did the contractor replace only the damaged cables?",
     "The contractor replaced all 24 cables rather than only the damaged ones.", False),
    ("Will cyclists have to pay to use the bridge?", "Cyclists and pedestrians will continue to cross for free.",
     False),
    ("Was Professor Fairclough involved in the trial?",
     "Professor Fairclough, who was not involved in the trial, called the results \"not the final word\".", False),
    ("Did the shares rise after the announcement?", "Its shares rose 6.2% after the announcement.", True),
    ("Is the port open?", "The port has never been closed to ships.", False),
    ("Didn't the mayor attend?", "The mayor did not attend the ceremony.", True),
    ("Did the union accept the offer?", "The union accepted the offer without a vote.", True),
    ("Had the Harriers ever won the county cup before?", "The Harriers won their first county cup on Sunday.", False),
    ("Have the Harriers won the cup before?", "The Harriers won the cup again, as they did in 2019.", True),
    ("Is this the Harriers' first cup?", "The Harriers won their first county cup on Sunday.", True),
])
def test_polarity(nlp, question: str, sentence: str, affirms: bool) -> None:
    analysis = QuestionAnalyzer(nlp=nlp).analyze(question)
    assert PolarityJudge().affirms(nlp(sentence), analysis).affirms is affirms
