"""The metrics of `citeqa eval`, as pure functions, exactly as defined in the shared EVAL.md.

Answers (the official SQuAD v1.1/v2.0 scripts): `normalize_answer`, `exact_match`, `f1_score`.
Abstention: `refusal_scores`, `threshold_sweep` (SQuAD v2's "best_f1", over the answerer's `confidence`).
Retrieval (BEIR/trec_eval conventions, binary relevance): `has_answer`, `hit_at_k`, `recall_at_k`, `mrr_at_k`,
`ndcg_at_k`.
Citations (ALCE, Gao et al. 2023, with `qa.support.supports` as the judge): `answer_sentences`,
`citation_scores`, `answer_in_quote`.
Latency: `percentiles`.

Every function takes plain values and returns a float in [0, 1] (or a small frozen record), so a test can
check it against a hand computation; `qa/evaluation.py` turns them into means with their n.
"""

import functools
import math
import re
import string
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from index.sentences import SentenceSplitter
from qa.support import supports

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)
_MARKER = re.compile(r"\[(\d+)\]")
MAX_CITATIONS_PER_SENTENCE = 3  # ALCE reads at most three citations of a sentence


# --- answers ---------------------------------------------------------------------------------------------

def normalize_answer(text: str) -> str:
    """SQuAD's normalization: lowercase, drop `string.punctuation`, drop a/an/the, collapse whitespace."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _golds(answers: Sequence[str]) -> Sequence[str]:
    # An unanswerable question's gold is the empty string (SQuAD v2): a refusal, predicting "", matches it.
    return answers if answers else ("",)


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    """1.0 when the normalized prediction equals a normalized gold answer (`[]` means the gold is "")."""
    predicted = normalize_answer(prediction)
    return float(any(predicted == normalize_answer(gold) for gold in _golds(answers)))


def _token_f1(prediction: str, gold: str) -> float:
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not predicted or not expected:
        return float(predicted == expected)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def f1_score(prediction: str, answers: Sequence[str]) -> float:
    """The best token F1 of the prediction against any gold answer (`[]` means the gold is "")."""
    return max(_token_f1(prediction, gold) for gold in _golds(answers))


# --- abstention ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RefusalScores:
    """Refusal precision and recall with their counts; a score is None when its denominator is 0."""

    refused: int
    unanswerable: int
    refused_unanswerable: int

    @property
    def precision(self) -> float | None:
        return self.refused_unanswerable / self.refused if self.refused else None

    @property
    def recall(self) -> float | None:
        return self.refused_unanswerable / self.unanswerable if self.unanswerable else None


def refusal_scores(outcomes: Iterable[tuple[bool, bool]]) -> RefusalScores:
    """Counts over (refused, unanswerable) pairs, one per question."""
    refused = unanswerable = both = 0
    for was_refused, is_unanswerable in outcomes:
        refused += was_refused
        unanswerable += is_unanswerable
        both += was_refused and is_unanswerable
    return RefusalScores(refused=refused, unanswerable=unanswerable, refused_unanswerable=both)


@dataclass(frozen=True)
class SweepCase:
    """One question as the sweep sees it.

    Args:
        confidence: the answerer's confidence in its candidate; the question is answered at threshold t
            when `confidence >= t` (the answerer refuses below its threshold).
        f1_answered / em_answered: the scores of the candidate answer, or None when there is no candidate
            (the answerer found nothing to say: refused at every threshold).
        f1_refused / em_refused: the scores of predicting "" (1 for an unanswerable question, else 0).
    """

    confidence: float
    f1_answered: float | None
    em_answered: float | None
    f1_refused: float
    em_refused: float


@dataclass(frozen=True)
class SweepPoint:
    """Overall means (over every question) when refusing below `threshold`."""

    threshold: float
    f1: float
    em: float
    answered: int


def sweep_at(cases: Sequence[SweepCase], threshold: float, *, n: int | None = None) -> SweepPoint:
    """Overall F1 and EM when every case with `confidence < threshold` (or no candidate) is refused.

    `n` is the number of questions the mean is over (default len(cases)); questions not in `cases` (failed
    runs) score 0 and stay in it.
    """
    total = len(cases) if n is None else n
    if total < len(cases):
        raise ValueError(f"n={n} is smaller than the {len(cases)} cases")
    f1 = em = 0.0
    answered = 0
    for case in cases:
        if case.f1_answered is not None and case.em_answered is not None and case.confidence >= threshold:
            f1, em, answered = f1 + case.f1_answered, em + case.em_answered, answered + 1
        else:
            f1, em = f1 + case.f1_refused, em + case.em_refused
    return SweepPoint(threshold=threshold, f1=f1 / total if total else 0.0, em=em / total if total else 0.0,
                      answered=answered)


def best_threshold(cases: Sequence[SweepCase], *, n: int | None = None) -> SweepPoint:
    """SQuAD v2's best_f1: the threshold with the highest overall F1 among every distinct confidence (and
    one above them all, refusing everything). Ties go to the lowest such threshold."""
    thresholds = sorted({c.confidence for c in cases} | {0.0}) + [math.nextafter(1.0, 2.0)]
    best: SweepPoint | None = None
    for threshold in thresholds:
        point = sweep_at(cases, threshold, n=n)
        if best is None or point.f1 > best.f1 + 1e-12:
            best = point
    assert best is not None
    return best


def threshold_sweep(cases: Sequence[SweepCase], *, steps: int = 100, n: int | None = None) -> list[SweepPoint]:
    """The F1/EM curve at thresholds 0, 1/steps, …, 1 (for the report's plot)."""
    if steps < 1:
        raise ValueError(f"steps must be positive, got {steps}")
    return [sweep_at(cases, round(i / steps, 6), n=n) for i in range(steps + 1)]


# --- retrieval -------------------------------------------------------------------------------------------

def has_answer(text: str, answers: Sequence[str]) -> bool:
    """DPR's "has answer": a gold answer's normalized tokens occur as a run in the normalized text.

    Whole tokens only ("10" is not found in "100"); an answer that normalizes to nothing is never found.
    """
    haystack = f" {normalize_answer(text)} "
    for gold in answers:
        needle = normalize_answer(gold)
        if needle and f" {needle} " in haystack:
            return True
    return False


def _check(relevance: Sequence[int], k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if any(r not in (0, 1) for r in relevance):
        raise ValueError(f"relevance must be 0 or 1 per rank, got {list(relevance)}")


def hit_at_k(relevance: Sequence[int], k: int) -> float:
    """1.0 when a relevant passage is among the first k (relevance[i] is rank i+1's grade, 0 or 1)."""
    _check(relevance, k)
    return float(any(relevance[:k]))


def recall_at_k(relevance: Sequence[int], k: int, total_relevant: int) -> float:
    """Relevant passages in the top k / all relevant passages judged (`total_relevant` >= 1)."""
    _check(relevance, k)
    if total_relevant < 1:
        raise ValueError("recall is undefined without a relevant passage")
    found = sum(relevance[:k])
    if found > total_relevant:
        raise ValueError(f"{found} relevant passages retrieved but total_relevant={total_relevant}")
    return found / total_relevant


def mrr_at_k(relevance: Sequence[int], k: int) -> float:
    """1/rank of the first relevant passage in the top k, 0 when there is none."""
    _check(relevance, k)
    for rank, relevant in enumerate(relevance[:k], start=1):
        if relevant:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(relevance: Sequence[int], k: int, total_relevant: int) -> float:
    """nDCG@k with linear gain: Σ rel_r / log2(r+1) over the top k, over the same sum for an ideal ranking of
    `total_relevant` relevant passages. Passages are taken in the order given: the retriever has already
    broken score ties (by passage id), so tied scores cannot change a figure between runs."""
    _check(relevance, k)
    if total_relevant < 1:
        raise ValueError("nDCG is undefined without a relevant passage")
    dcg = sum(rel / math.log2(rank + 1) for rank, rel in enumerate(relevance[:k], start=1))
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(k, total_relevant) + 1))
    return dcg / ideal


# --- citations -------------------------------------------------------------------------------------------

_MARKERS_AFTER_STOP = re.compile(r"([.!?][\"'\u201d\u2019)]*)((?:\s*\[\d+\])+)")


@functools.cache
def _splitter() -> SentenceSplitter:
    return SentenceSplitter()


def answer_sentences(answer: str) -> list[str]:
    """The answer's sentences, each with its `[n]` markers, by the index's rule-based splitter.

    spaCy's tokenizer knows "Dr." and "U.S." are not sentence ends. Markers written after a full stop
    ("Rome. [2] Then") belong to the sentence before it, so they are moved in front of the stop first.
    """
    text = _MARKERS_AFTER_STOP.sub(lambda m: f"{m.group(2)}{m.group(1)}", answer)
    return [text[start:end] for start, end in _splitter().spans(text)]


def citation_markers(sentence: str) -> list[int]:
    """The distinct `[n]` numbers of a sentence in order of use, at most three (ALCE)."""
    seen: list[int] = []
    for match in _MARKER.finditer(sentence):
        n = int(match.group(1))
        if n not in seen:
            seen.append(n)
    return seen[:MAX_CITATIONS_PER_SENTENCE]


@dataclass(frozen=True)
class CitationScores:
    """ALCE citation recall and precision of one answer, with the counts they are made of."""

    sentences: int
    supported_sentences: int
    citations: int
    precise_citations: int

    @property
    def recall(self) -> float:
        return self.supported_sentences / self.sentences if self.sentences else 0.0

    @property
    def precision(self) -> float:
        return self.precise_citations / self.citations if self.citations else 0.0


Judge = Callable[[str, Sequence[str]], bool]


def citation_scores(answer: str, quotes: Mapping[int, str], *, question: str | None = None,
                    judge: Judge | None = None) -> CitationScores:
    """ALCE citation recall/precision of an answer whose `[n]` markers refer to `quotes[n]`.

    A sentence's recall is 1 when it cites something, every cited n is in `quotes`, and the judge finds the
    cited quotes together support it. Each in-range citation of a supported sentence is precise unless it
    alone does not support the sentence while the others without it do (it is redundant); citations of an
    unsupported sentence, and out-of-range ones, are not precise. Precision = precise / all citations
    (0 when the answer cites nothing), as in ALCE.

    Args:
        answer: the answer text with `[n]` markers.
        quotes: the quoted text of each citation number.
        question: passed to the default judge, which checks a content-free sentence ("Yes [1].") against the
            question's words.
        judge: (sentence, quotes) -> supported; default `qa.support.supports`.
    """
    def default_judge(sentence: str, texts: Sequence[str]) -> bool:
        return supports(sentence, texts, question)

    check = judge or default_judge
    sentences = answer_sentences(answer)
    supported = citations = precise = 0
    for sentence in sentences:
        cited = citation_markers(sentence)
        citations += len(cited)
        if not cited or any(n not in quotes for n in cited):
            continue
        if not check(sentence, [quotes[n] for n in cited]):
            continue
        supported += 1
        for n in cited:
            others = [quotes[m] for m in cited if m != n]
            redundant = not check(sentence, [quotes[n]]) and bool(others) and check(sentence, others)
            precise += not redundant
    return CitationScores(sentences=len(sentences), supported_sentences=supported, citations=citations,
                          precise_citations=precise)


def answer_in_quote(quotes: Iterable[str], answers: Sequence[str]) -> bool:
    """True when the cited quotes, together, contain a gold answer (normalized, whole tokens)."""
    return has_answer(" ".join(quotes), answers)


# --- latency ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Percentiles:
    """p50 / p95 / max of a latency in milliseconds, over n values (None when n is 0)."""

    n: int
    p50: float | None
    p95: float | None
    max: float | None


def percentiles(values: Sequence[float]) -> Percentiles:
    """p50 and p95 by linear interpolation between order statistics (numpy's default), and the max."""
    if not values:
        return Percentiles(n=0, p50=None, p95=None, max=None)
    array = np.asarray(values, dtype=float)
    return Percentiles(n=len(values), p50=float(np.percentile(array, 50)), p95=float(np.percentile(array, 95)),
                       max=float(array.max()))
