"""Ranks the sentences of retrieved passages by how well they match a question, and measures support.

Cheap signals first, on every sentence: the weighted overlap of the question's terms (terms found in few
of the retrieved sentences weigh more, a local IDF), how close together the matched terms sit, whether
the sentence holds something of the expected answer type (a currency sign for money, a month or year for
a date, *because* for a reason) and the passage's retrieval rank. Only a shortlist is embedded (MiniLM,
first 40 words, cached by text) for the cosine similarity with the question; the final score mixes all.

Support, which the answerer turns into a confidence, is measured per term role (see `QuestionTerm`):
content words count only when the sentence itself has them; topic words (names, numbers) also count when
the article's title has them (×0.8), or when an earlier sentence of the same paragraph has them and this
one refers back with a pronoun (×0.9), or, failing that, when the passage has them (×0.5). Topic words
count the same way in ranking, so that within an article the content words decide.
"""

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from index.embedding import Embedder
from qa.lru import LRUCache
from qa.question import AnswerType, QuestionAnalysis, QuestionTerm
from qa.sentences import PassageSentence
from qa.terms import term_key

_WORD = re.compile(r"[\w'’]+")
_IN_TITLE, _CARRIED, _IN_PASSAGE = 0.8, 0.9, 0.5
_TOPIC_IN_RANKING = 1 / 3
_EMBED_WORDS = 40
_CARRY_BACK = 3  # sentences a pronoun may point back over
_PRONOUNS = frozenset({"he", "she", "they", "it", "his", "her", "their", "its", "him", "them", "hers"})
_NUMBER_WORDS = r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|" \
                r"hundred|thousand|million|billion|dozen|half"
_MONTHS = r"january|february|march|april|may|june|july|august|september|october|november|december|" \
          r"jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
_TYPE_HINTS: dict[AnswerType, re.Pattern[str]] = {
    AnswerType.MONEY: re.compile(r"[$£€¥₹]|\b(dollars?|pounds?|euros?|yen|cents?)\b", re.I),
    AnswerType.PERCENT: re.compile(r"%|\bper ?cent\b", re.I),
    AnswerType.NUMBER: re.compile(rf"\d|\b({_NUMBER_WORDS})\b", re.I),
    AnswerType.DURATION: re.compile(rf"\d|\b({_NUMBER_WORDS}|decades?|centuries|years?|months?|weeks?|days?)\b",
                                    re.I),
    AnswerType.DATE: re.compile(rf"\b(1\d{{3}}|20\d{{2}}|{_MONTHS}|monday|tuesday|wednesday|thursday|friday|"
                                r"saturday|sunday|today|yesterday|tomorrow|ago|century|decade|spring|summer|"
                                r"autumn|fall|winter)\b", re.I),
    AnswerType.REASON: re.compile(r"\b(because|due to|owing to|as a result|caused|causes|cause|since|so that|"
                                  r"reason|in order to|led to|started by|blamed|thanks to)\b", re.I),
}


_STRONG_HINTS = frozenset({AnswerType.REASON, AnswerType.MONEY, AnswerType.PERCENT})


@dataclass(frozen=True)
class RankedSentence:
    """A sentence with its ranking score and the support figures the confidence is made of."""

    sentence: PassageSentence
    score: float
    lexical: float  # IDF-weighted share of the question's terms the sentence has (or refers back to)
    similarity: float  # cosine between question and sentence embeddings
    content_support: float  # share of the content words' weight in the sentence itself, in [0, 1]
    topic_support: float  # share of the topic words' weight in the sentence, title or referred-to context
    type_hint: bool  # the sentence holds something shaped like the expected answer
    restrictions_missing: int  # restrictive question words ("previous", "other") the sentence lacks
    matched: frozenset[str]  # the question terms (by text) the sentence has


class SentenceRanker:
    """Usage: SentenceRanker(embedder=e).rank(analysis, sentences) -> [RankedSentence, …] best first."""

    def __init__(self, *, embedder: Embedder, shortlist: int = 10, cache_size: int = 4096) -> None:
        if not isinstance(shortlist, int) or shortlist < 1:
            raise ValueError(f"shortlist must be a positive integer, got {shortlist!r}")
        if not callable(getattr(embedder, "embed", None)):
            raise TypeError(f"embedder must have an embed() method, got {type(embedder).__name__}")
        self._embedder = embedder
        self._shortlist = shortlist
        self._vectors: LRUCache[str, np.ndarray] = LRUCache(maxsize=cache_size)
        self._titles: LRUCache[str, frozenset[str]] = LRUCache(maxsize=1024)

    def rank(self, question: QuestionAnalysis, sentences: Sequence[PassageSentence]) -> list[RankedSentence]:
        """The shortlisted sentences, best first (at most `shortlist` of them)."""
        if not sentences:
            return []
        own = [frozenset(s.keys) for s in sentences]
        carried = _carried_keys(sentences, own)
        passage_keys: dict[str, set[str]] = {}
        for sentence, keys in zip(sentences, own, strict=True):
            passage_keys.setdefault(sentence.passage.passage_id, set()).update(keys)
        context = [_Context(own[i], carried[i], self._title_keys(s.passage.title),
                            frozenset(passage_keys[s.passage.passage_id])) for i, s in enumerate(sentences)]
        # Overlapping passages repeat sentences; the copy from the better-ranked passage stands for all.
        first_copy: dict[tuple[str, int, int], int] = {}
        for i, s in enumerate(sentences):
            first_copy.setdefault((s.passage.doc_id, s.char_start, s.char_end), i)
        idf = _local_idf(question.terms, own)
        order = {pid: i for i, pid in enumerate(dict.fromkeys(s.passage.passage_id for s in sentences))}
        hint = _TYPE_HINTS.get(question.answer_type)
        # Without a causal word or a currency sign a sentence can hardly give a reason or a sum.
        hint_bonus = 0.3 if question.answer_type in _STRONG_HINTS else 0.15

        cheap: list[tuple[float, int, float, bool]] = []
        for i, sentence in enumerate(sentences):
            if first_copy[(sentence.passage.doc_id, sentence.char_start, sentence.char_end)] != i:
                continue
            lexical = _lexical(question.terms, context[i], idf)
            prior = 1.0 / (1.0 + 0.5 * order[sentence.passage.passage_id])
            has_hint = bool(hint.search(sentence.text)) if hint is not None else False
            score = lexical + 0.15 * _proximity(question.terms, sentence.keys) + 0.1 * prior + hint_bonus * has_hint
            cheap.append((score, i, lexical, has_hint))
        cheap.sort(key=lambda c: (-c[0], c[1]))
        chosen = cheap[: self._shortlist]

        vectors = self._embed([question.question] + [_clip(sentences[i].text) for _, i, _, _ in chosen])
        similarities = vectors[1:] @ vectors[0]

        ranked = []
        for (cheap_score, i, lexical, has_hint), similarity in zip(chosen, similarities, strict=True):
            sentence = sentences[i]
            topic_support = _topic_support(question.terms, context[i])
            ranked.append(RankedSentence(
                sentence=sentence,
                score=0.45 * float(similarity) + 0.45 * cheap_score + 0.1 * topic_support,
                lexical=lexical,
                similarity=float(similarity),
                content_support=content_support(question.terms, own[i]),
                topic_support=topic_support,
                type_hint=has_hint,
                restrictions_missing=restrictions_missing(question.terms, own[i]),
                matched=frozenset(t.text for t in question.terms if t.keys & own[i]),
            ))
        ranked.sort(key=lambda r: (-r.score, r.sentence.passage.rank, r.sentence.char_start))
        return ranked

    def _title_keys(self, title: str | None) -> frozenset[str]:
        if not title:
            return frozenset()
        return self._titles.get_or_make(title, lambda: frozenset(term_key(w) for w in _WORD.findall(title)))

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack(self._vectors.get_or_make_many(texts, lambda missing: list(self._embedder.embed(missing))))


def _clip(text: str) -> str:
    """The first `_EMBED_WORDS` words: embedding cost grows with length, and a sentence's start says most."""
    words = text.split(maxsplit=_EMBED_WORDS)
    return text if len(words) <= _EMBED_WORDS else " ".join(words[:_EMBED_WORDS])


def _carried_keys(sentences: Sequence[PassageSentence], own: Sequence[frozenset[str]]) -> list[frozenset[str]]:
    """Keys of up to three earlier sentences of the paragraph, for sentences that refer back with a pronoun."""
    carried = []
    for i, sentence in enumerate(sentences):
        keys: set[str] = set()
        if _PRONOUNS & own[i]:
            for j in range(i - 1, max(-1, i - 1 - _CARRY_BACK), -1):
                earlier = sentences[j]
                if earlier.passage.passage_id != sentence.passage.passage_id or \
                        earlier.paragraph != sentence.paragraph:
                    break
                keys |= own[j]
        carried.append(frozenset(keys))
    return carried


def _local_idf(terms: Sequence[QuestionTerm], key_sets: Sequence[frozenset[str]]) -> dict[str, float]:
    n = len(key_sets)
    return {t.text: math.log((n + 1) / (sum(1 for keys in key_sets if t.keys & keys) + 0.5)) for t in terms}


@dataclass(frozen=True)
class _Context:
    """Where a sentence's words come from: itself, what its pronouns point back to, title, passage."""

    own: frozenset[str]
    carried: frozenset[str]
    title: frozenset[str]
    passage: frozenset[str]

    def topic_credit(self, term: QuestionTerm) -> float:
        """How far a topic word counts as said: 1 in the sentence, less the further away it is."""
        if term.keys & self.own:
            return 1.0
        if term.keys & self.carried:
            return _CARRIED
        if term.keys & self.title:
            return _IN_TITLE
        if term.keys & self.passage:
            return _IN_PASSAGE
        return 0.0


def _lexical(terms: Sequence[QuestionTerm], context: _Context, idf: dict[str, float]) -> float:
    """IDF-weighted share of the question's terms; topic words may be said nearby, content words not.

    Topic words weigh a third of their usual weight here: within one article they are everywhere (or in
    the title), so what the sentence says about them, the content words, should decide.
    """
    total = found = 0.0
    for term in terms:
        weight = term.weight * max(idf[term.text], 0.1) * (_TOPIC_IN_RANKING if term.role == "topic" else 1.0)
        total += weight
        if term.role == "topic":
            found += weight * context.topic_credit(term)
        elif term.keys & context.own:
            found += weight
    return found / total if total > 0 else 0.0


def content_support(terms: Sequence[QuestionTerm], keys: frozenset[str] | set[str]) -> float:
    """Share of the content words' weight that `keys` (a sentence's words) has, in [0, 1].

    A class word ("which *club*") found in the sentence counts as support; a missing one costs nothing.
    """
    content = [t for t in terms if t.role == "content"]
    found_class = sum(t.weight for t in terms if t.role == "class" and t.keys & keys)
    total = sum(t.weight for t in content) + found_class
    if total <= 0:
        return 1.0
    return (sum(t.weight for t in content if t.keys & keys) + found_class) / total


def restrictions_missing(terms: Sequence[QuestionTerm], keys: frozenset[str] | set[str]) -> int:
    """How many restrictive words of the question ("the *previous* year") the sentence lacks."""
    return sum(1 for t in terms if t.restrictive and not t.keys & keys)


def _topic_support(terms: Sequence[QuestionTerm], context: _Context) -> float:
    topic = [t for t in terms if t.role == "topic"]
    total = sum(t.weight for t in topic)
    if total <= 0:
        return 1.0
    return sum(t.weight * context.topic_credit(t) for t in topic) / total


def _proximity(terms: Sequence[QuestionTerm], keys: Sequence[str]) -> float:
    """Matched terms per word of the shortest stretch of the sentence that holds all of them, in [0, 1]."""
    positions = [i for i, key in enumerate(keys) if any(key in t.keys for t in terms)]
    if len(positions) < 2:
        return 0.0
    distinct = len({keys[i] for i in positions})
    return min(1.0, distinct / (positions[-1] - positions[0] + 1))
