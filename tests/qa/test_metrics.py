"""Each metric of shared EVAL.md against values computed by hand (the arithmetic is in the comments)."""

import math

import pytest

from qa.metrics import (
    SweepCase,
    answer_in_quote,
    answer_sentences,
    best_threshold,
    citation_markers,
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


@pytest.mark.parametrize(("text", "expected"), [
    ("The  Cat, a dog!", "cat dog"),              # case, punctuation, articles, whitespace
    ("an apple's core", "apples core"),           # the apostrophe is punctuation: deleted, not a space
    ("Theatre an Anthem", "theatre anthem"),      # articles only as whole words
    ("1,200", "1200"),
    ("50.6%", "506"),
    ("  The  ", ""),
    ("", ""),
    ("Café «Zürich»", "café «zürich»"),           # only string.punctuation goes; other symbols stay
])
def test_normalize_answer(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected


@pytest.mark.parametrize(("prediction", "answers", "em", "f1"), [
    ("the Eiffel Tower!", ["Eiffel Tower"], 1.0, 1.0),
    # pred {dr, hannah, lindqvist}, gold {hannah, lindqvist}: P = 2/3, R = 1, F1 = 2·(2/3)/(5/3) = 0.8
    ("Dr. Hannah Lindqvist", ["Hannah Lindqvist"], 0.0, 0.8),
    # several gold answers: the best one counts (the third matches exactly)
    ("$45 million", ["about $45 million a day", "$45 million a day", "$45 million"], 1.0, 1.0),
    # pred {45, million, dollars}, gold {45, million}: F1 0.8 against the better of the two golds
    ("45 million dollars", ["$45 million", "forty-five million"], 0.0, 0.8),
    # multiset overlap: pred [cat, cat, cat], gold [cat, cat, dog] → common 2, P = R = 2/3
    ("the cat cat cat", ["cat cat dog"], 0.0, 2 / 3),
    ("50.6%", ["50.6 %"], 1.0, 1.0),
    ("Paris", ["London"], 0.0, 0.0),
    # unanswerable: the gold is "", a refusal ("") is right and anything else is wrong
    ("", [], 1.0, 1.0),
    ("Paris", [], 0.0, 0.0),
    ("", ["Paris"], 0.0, 0.0),
    # a prediction that normalizes to nothing against a gold that does too: both token lists empty → 1
    ("the", ["a"], 1.0, 1.0),
    ("the", ["Paris"], 0.0, 0.0),
])
def test_exact_match_and_f1(prediction: str, answers: list[str], em: float, f1: float) -> None:
    assert exact_match(prediction, answers) == em
    assert f1_score(prediction, answers) == pytest.approx(f1)


def test_refusal_scores() -> None:
    scores = refusal_scores([(True, True), (True, False), (False, True), (False, False), (True, True)])
    assert (scores.refused, scores.unanswerable, scores.refused_unanswerable) == (3, 3, 2)
    assert scores.precision == pytest.approx(2 / 3) and scores.recall == pytest.approx(2 / 3)
    empty = refusal_scores([(False, False)])
    assert empty.precision is None and empty.recall is None


# A: right answer (0.9); B: unanswerable but answered (0.4); C: half-right answer (0.2);
# D: unanswerable, no candidate at all (refused at every threshold).
CASES = [
    SweepCase(confidence=0.9, f1_answered=1.0, em_answered=1.0, f1_refused=0.0, em_refused=0.0),
    SweepCase(confidence=0.4, f1_answered=0.0, em_answered=0.0, f1_refused=1.0, em_refused=1.0),
    SweepCase(confidence=0.2, f1_answered=0.5, em_answered=0.0, f1_refused=0.0, em_refused=0.0),
    SweepCase(confidence=0.1, f1_answered=None, em_answered=None, f1_refused=1.0, em_refused=1.0),
]


@pytest.mark.parametrize(("threshold", "f1", "em", "answered"), [
    (0.0, (1 + 0 + 0.5 + 1) / 4, (1 + 0 + 0 + 1) / 4, 3),
    (0.3, (1 + 0 + 0 + 1) / 4, 2 / 4, 2),     # C refused
    (0.4, (1 + 0 + 0 + 1) / 4, 2 / 4, 2),     # confidence == threshold is answered
    (0.5, (1 + 1 + 0 + 1) / 4, 3 / 4, 1),     # B refused too: right for an unanswerable question
    (0.95, (0 + 1 + 0 + 1) / 4, 2 / 4, 0),
])
def test_sweep_at(threshold: float, f1: float, em: float, answered: int) -> None:
    point = sweep_at(CASES, threshold)
    assert (point.f1, point.em, point.answered) == (pytest.approx(f1), pytest.approx(em), answered)


def test_best_threshold_and_failed_questions_in_n() -> None:
    best = best_threshold(CASES)
    assert best.threshold == 0.9 and best.f1 == pytest.approx(0.75)
    # a fifth question that failed scores 0 at every threshold but stays in the mean: 3/5
    assert best_threshold(CASES, n=5).f1 == pytest.approx(0.6)
    curve = threshold_sweep(CASES, steps=10)
    assert [p.threshold for p in curve] == pytest.approx([i / 10 for i in range(11)])
    assert curve[5].f1 == pytest.approx(0.75) and curve[10].f1 == pytest.approx(0.5)
    with pytest.raises(ValueError, match="smaller than"):
        sweep_at(CASES, 0.5, n=3)


def test_best_threshold_can_refuse_everything() -> None:
    wrong = [SweepCase(confidence=0.8, f1_answered=0.0, em_answered=0.0, f1_refused=1.0, em_refused=1.0)]
    best = best_threshold(wrong)
    assert best.threshold > 1.0 and best.f1 == 1.0 and best.answered == 0


@pytest.mark.parametrize(("text", "answers", "expected"), [
    ("Visitors crossed the Eiffel Tower's lift.", ["the Eiffel Tower's"], True),
    ("About 100 people came.", ["10"], False),            # whole tokens only
    ("It cost $48.6 million in total.", ["48.6 million"], True),
    ("No one was hurt.", ["the"], False),                 # an answer that normalizes to nothing
    ("Nothing here.", [], False),
])
def test_has_answer(text: str, answers: list[str], expected: bool) -> None:
    assert has_answer(text, answers) is expected


def test_retrieval_metrics_by_hand() -> None:
    relevance, k, total = [0, 1, 0, 1, 0], 5, 3
    assert hit_at_k(relevance, 1) == 0.0 and hit_at_k(relevance, 2) == 1.0
    assert recall_at_k(relevance, k, total) == pytest.approx(2 / 3)
    assert recall_at_k(relevance, 2, total) == pytest.approx(1 / 3)
    assert mrr_at_k(relevance, k) == 0.5 and mrr_at_k(relevance, 1) == 0.0
    # DCG = 1/log2(3) + 1/log2(5) = 0.63093 + 0.43068; IDCG (3 relevant) = 1 + 0.63093 + 0.5
    assert ndcg_at_k(relevance, k, total) == pytest.approx((0.6309298 + 0.4306766) / 2.1309298, rel=1e-6)


def test_ndcg_with_ties() -> None:
    # equal gains: which relevant passage comes first cannot matter, and nDCG is 1 when they fill the top
    assert ndcg_at_k([1, 1, 0], 3, 2) == pytest.approx(1.0)
    # [0, 1, 1]: DCG = 1/log2(3) + 1/log2(4) = 1.13093; IDCG = 1 + 1/log2(3) = 1.63093
    assert ndcg_at_k([0, 1, 1], 3, 2) == pytest.approx(1.1309298 / 1.6309298, rel=1e-6)
    # more relevant passages than k: the ideal ranking has only k places
    assert ndcg_at_k([1, 1], 2, 5) == pytest.approx(1.0)
    assert ndcg_at_k([0, 0, 0], 3, 1) == 0.0
    assert mrr_at_k([0, 0, 0], 3) == 0.0


@pytest.mark.parametrize("call", [
    lambda: hit_at_k([1], 0),
    lambda: recall_at_k([1], 1, 0),
    lambda: ndcg_at_k([1], 1, 0),
    lambda: mrr_at_k([2], 1),
    lambda: recall_at_k([1, 1], 2, 1),
])
def test_retrieval_metrics_reject_bad_input(call) -> None:
    with pytest.raises(ValueError):
        call()


@pytest.mark.parametrize(("answer", "expected"), [
    ("Dr. Hannah Lindqvist [1].", ["Dr. Hannah Lindqvist [1]."]),
    ("It was cut [1]. Then it went to Rome. [2][3] Mr. Smith said so.",
     ["It was cut [1].", "Then it went to Rome [2][3].", "Mr. Smith said so."]),
    ("The U.S. Army left [1]. It rose 5 percent.", ["The U.S. Army left [1].", "It rose 5 percent."]),
    ("", []),
])
def test_answer_sentences(answer: str, expected: list[str]) -> None:
    assert answer_sentences(answer) == expected


def test_citation_markers_keep_three_distinct() -> None:
    assert citation_markers("A [2][1][2] b [4] c [3].") == [2, 1, 4]


COST = "The repairs cost $48.6 million, about 12% more than planned, officials said."
OPENED = "The Harbor Bridge reopened on Wednesday."


def test_citation_precision_with_a_redundant_citation() -> None:
    # [1] alone supports the sentence; [2] alone does not and [1] without it does → [2] is redundant
    scores = citation_scores("The repairs cost $48.6 million [1][2].", {1: COST, 2: OPENED})
    assert (scores.sentences, scores.supported_sentences, scores.citations, scores.precise_citations) == (1, 1, 2, 1)
    assert scores.recall == 1.0 and scores.precision == 0.5


def test_citation_precision_when_each_citation_is_needed() -> None:
    # neither quote alone holds both "48.6" and "Wednesday"; together they do → both citations are precise
    scores = citation_scores("The repairs cost $48.6 million and the bridge reopened on Wednesday [1][2].",
                             {1: COST, 2: OPENED})
    assert (scores.recall, scores.precision) == (1.0, 1.0)


def test_citation_scores_unsupported_uncited_and_out_of_range() -> None:
    # sentence 1 cites [1] which lacks "Wednesday" → unsupported: recall 0 and its citation is not precise;
    # sentence 2 cites nothing; sentence 3 cites [3], which does not exist
    answer = "The bridge reopened on Wednesday [1]. The repairs cost $48.6 million. Officials said so [3]."
    scores = citation_scores(answer, {1: COST, 2: OPENED})
    assert (scores.sentences, scores.supported_sentences, scores.citations, scores.precise_citations) == (3, 0, 2, 0)
    assert scores.recall == 0.0 and scores.precision == 0.0


def test_citation_scores_with_a_custom_judge_count_by_hand() -> None:
    # judge: supported when quote "a" is among the cited ones. S1 [1][2]: supported, [2] redundant (alone no,
    # the rest yes) → 1 of 2 precise. S2 [2]: unsupported → 0 of 1. Recall 1/2, precision 1/3.
    def judge(sentence: str, quotes) -> bool:
        return "a" in quotes

    scores = citation_scores("First one [1][2]. Second one [2].", {1: "a", 2: "b"}, judge=judge)
    assert scores.recall == 0.5 and scores.precision == pytest.approx(1 / 3)


def test_polar_sentence_is_checked_with_the_question() -> None:
    quote = "The council approved the Elmsworth budget on Tuesday."
    assert citation_scores("Yes [1].", {1: quote}, question="Did the council approve the Elmsworth budget?").recall == 1
    assert citation_scores("Yes [1].", {1: quote}).recall == 0


def test_answer_in_quote() -> None:
    assert answer_in_quote([COST, OPENED], ["$48.6 million"])
    assert not answer_in_quote([OPENED], ["$48.6 million"])


def test_percentiles_by_hand() -> None:
    # p50 between 20 and 30; p95 at position 0.95·3 = 2.85 → 30 + 0.85·10 = 38.5
    result = percentiles([40.0, 10.0, 30.0, 20.0])
    assert (result.n, result.p50, result.p95, result.max) == (4, 25.0, pytest.approx(38.5), 40.0)
    assert percentiles([]).p50 is None
    assert math.isclose(percentiles([7.0]).p95 or 0, 7.0)
