"""A generated answer → its sentences, each checked against the exact passage sentences it cites.

Usage:
    resolver = CitationResolver(nlp=nlp)
    resolved = resolver.resolve(llm_text, passages, question="How much did the repairs cost?")
    resolved.answer     # "The repairs cost $48.6 million [1]."
    resolved.citations  # (Citation(n=1, quote="The repairs cost $48.6 million, about 12% more …"),)

How (every step is deterministic):

1. **Markers.** `[1]`, `[1, 2]`, `[1][2]`, `[1-3]`, `【1】`, `［1］`, `[Passage 1]`, `[source 2]` cite the
   numbered passages of the prompt. Numbers outside 1..len(passages) are dropped.
2. **Sentences.** The text (invisible characters removed, a trailing "Sources:" list cut off) is split into
   lines and the lines into sentences with spaCy's rule-based sentencizer. A marker belongs to the first
   sentence that ends at or after it, so "… million. [1] The …" cites "… million.". Bullets and an
   "Answer:" prefix are dropped.
3. **Quotes.** The quotes of a sentence are whole sentences of the passages it cites
   (`qa.sentences.SentenceSplitter`, exact document offsets), chosen greedily: first the one holding most
   of the answer sentence's content words (`qa.terms.term_key`; names and numbers count double), then,
   while `qa.support.supports` is not yet satisfied, the one adding most of the words still missing, up
   to `max_quotes`. "The Harbor Bridge repairs cost $48.6 million [1]" can so quote the sentence with the
   cost and the one naming the bridge. A cited passage that adds nothing is a wrong citation, left out.
4. **Support.** A sentence its cited passages cannot support (or that cites nothing) is *repaired* when
   the same greedy choice over all passages supports it; otherwise the sentence is **dropped** (logged
   with the words the quotes lack), so the answer keeps only sentences that their quotes back. Sentences in
   which the model says it cannot answer ("The passages do not say …") are dropped as non-answers.
5. **Numbering.** Each distinct quoted span is numbered by first use from 1, and each kept sentence is
   rewritten with its markers before its final punctuation: "The repairs cost $48.6 million [1]." The
   model's marker placement inside a sentence is not kept: the check is per sentence, so is the marker.

No kept sentence is left unsupported, and `quote == document_text[char_start:char_end]` for every
citation, because the quote is cut from the passage text with the sentence splitter's document offsets.
"""

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from spacy.language import Language
from spacy.pipeline import Sentencizer

from index.articles import clean_text
from qa.records import Citation, RetrievedPassage
from qa.sentences import PassageSentence, SentenceSplitter
from qa.support import supports, unsupported_words
from qa.terms import is_light, term_key

log = logging.getLogger(__name__)

_LABEL = r"(?:(?:passages?|sources?|docs?|documents?|refs?|references?)\s*)?#?\s*"
_NUMBER = _LABEL + r"\d{1,3}"
_MARKER = re.compile(
    rf"[ \t]*[\[【［]\s*{_NUMBER}(?:\s*(?:,|;|&|\band\b|[-–])\s*{_NUMBER})*\s*[\]】］]", re.IGNORECASE)
_MARKER_PART = re.compile(r"\d{1,3}|[-–]")
_MAX_RANGE = 10  # "[1-3]" is a range; "[1-300]" is noise, read as its two ends
_SOURCES_TRAILER = re.compile(r"^\s*(?:#+\s*)?(?:sources|references|citations)\s*:?\s*$", re.IGNORECASE | re.MULTILINE)
_LEAD = re.compile(r"^(?:[-*•·]\s+|\d{1,2}[.)]\s+|(?:the\s+)?(?:final\s+)?answer(?:\s+is)?\s*:\s*)+", re.IGNORECASE)
_END_PUNCT = re.compile(r"[.!?…]+([\"'”’)]*)$")
_ABBREVIATION_END = re.compile(r"\b(?:[A-Za-z]\.){2,}$")
_ORDERS_A_MODEL = re.compile(
    r"\b(?:ignore|disregard|forget|override)\b[^.!?\n]{0,40}\b(?:instructions?|prompts?|rules|question)\b"
    r"|\b(?:answer|reply|respond)\b[^.!?\n]{0,25}\b(?:every|all|any)\b[^.!?\n]{0,15}\bquestions?\b"
    r"|\b(?:answer|reply|respond)\b[^.!?\n]{0,25}\bwith\b[^.!?\n]{0,20}\b(?:single|only)\b"
    r"|\byou are now\b|\bnote to (?:ai|assistants?|chatbots?|llms?|language models?)\b"
    r"|\b(?:assistants?|chatbots?|ai)\s*:\s*(?:ignore|reply|answer|say)\b"
    r"|\bcorrect answer to any question\b",
    re.IGNORECASE)
_WORD = re.compile(r"\d(?:[\d,.]*\d)?|[^\W_](?:[\w'\u2019]*[^\W_])?")
# The model saying it cannot answer. Only such sentences about the sources or the model itself: "Officials did
# not say when" is a fact and goes through the support check like any other.
_NON_ANSWER = re.compile(
    r"\bI\s+(?:cannot|can't|can\s+not|am\s+(?:not\s+able|unable)|do\s+not\s+know|don't\s+know|could\s*n[o']t)\b"
    r"|\b(?:passages?|articles?|context|sources?|texts?|documents?)\s+(?:do|does|did)(?:\s+not|n't)\b"
    r"|\b(?:no|not\s+enough|insufficient)\s+information\b"
    r"|\b(?:not|never)\s+(?:mentioned|stated|specified|provided|given)\s+in\s+the\b"
    r"|^(?:sorry|unfortunately)\b", re.IGNORECASE)


@dataclass(frozen=True)
class DraftSentence:
    """One sentence of the model's answer, markers removed, with the passage numbers it cites (1-based)."""

    text: str
    cited: tuple[int, ...]
    out_of_range: tuple[int, ...] = ()


@dataclass(frozen=True)
class CheckedSentence:
    """A sentence of the final answer and the quotes (whole passage sentences) that support it."""

    text: str
    quotes: tuple[PassageSentence, ...]
    repaired: bool


@dataclass(frozen=True)
class DroppedSentence:
    """A sentence left out of the answer, and why."""

    text: str
    reason: str


@dataclass(frozen=True)
class ResolvedAnswer:
    """The checked answer. `answer` is "" and `citations` empty when no sentence was supported."""

    answer: str
    sentences: tuple[CheckedSentence, ...]
    citations: tuple[Citation, ...]
    dropped: tuple[DroppedSentence, ...]
    non_answers: int

    @property
    def supported(self) -> bool:
        """True when at least one sentence of the answer is backed by its citations."""
        return bool(self.sentences)


def parse_markers(marker: str, *, passage_count: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """'[1, 3]' → ((1, 3), ()); '[2-4]' → ((2, 3, 4), ()); '[7]' with 5 passages → ((), (7,))."""
    parts = _MARKER_PART.findall(marker)
    numbers: list[int] = []
    i = 0
    while i < len(parts):
        if parts[i] in "-–":
            i += 1
            continue
        value = int(parts[i])
        if i + 2 < len(parts) and parts[i + 1] in "-–" and parts[i + 2] not in "-–":
            end = int(parts[i + 2])
            if value <= end <= value + _MAX_RANGE:
                numbers.extend(range(value, end + 1))
            else:
                numbers.extend((value, end))
            i += 3
            continue
        numbers.append(value)
        i += 1
    kept = _unique(n for n in numbers if 1 <= n <= passage_count)
    dropped = _unique(n for n in numbers if not 1 <= n <= passage_count)
    return kept, dropped


class AnswerParser:
    """Usage: AnswerParser(nlp=nlp).parse("It cost $48.6 million [1]. …", passage_count=5) -> [DraftSentence]"""

    def __init__(self, *, nlp: Language) -> None:
        if not isinstance(nlp, Language):
            raise TypeError(f"nlp must be a spaCy Language, got {type(nlp).__name__}")
        self._tokenizer = nlp.tokenizer
        self._sentencizer = Sentencizer()

    def parse(self, text: str, *, passage_count: int) -> list[DraftSentence]:
        """The model's answer as sentences with their cited passage numbers, in order."""
        if not isinstance(passage_count, int) or passage_count < 0:
            raise ValueError(f"passage_count must be a non-negative integer, got {passage_count!r}")
        text = clean_text(text)
        trailer = _SOURCES_TRAILER.search(text)
        if trailer:
            text = text[: trailer.start()]
        # Before sentences are cut: a sentencizer would make "1." of a numbered list a sentence of its own.
        text = "\n".join(_LEAD.sub("", line.strip()) for line in text.split("\n"))
        plain, markers = _remove_markers(text, passage_count)
        spans = self._sentence_spans(plain)
        cited: list[list[int]] = [[] for _ in spans]
        wrong: list[list[int]] = [[] for _ in spans]
        for position, kept, dropped in markers:
            index = next((i for i, (_, end) in enumerate(spans) if end >= position), len(spans) - 1)
            if index >= 0:
                cited[index].extend(kept)
                wrong[index].extend(dropped)
        drafts = []
        for (start, end), numbers, bad in zip(spans, cited, wrong, strict=True):
            sentence = _LEAD.sub("", " ".join(plain[start:end].split()))
            if _WORD.search(sentence):
                drafts.append(DraftSentence(text=sentence, cited=_unique(numbers), out_of_range=_unique(bad)))
        return drafts

    def _sentence_spans(self, text: str) -> list[tuple[int, int]]:
        spans = []
        start = 0
        for line in text.split("\n"):
            if line.strip():
                doc = self._sentencizer(self._tokenizer(line))
                for sent in doc.sents:
                    left = start + sent.start_char
                    right = start + sent.end_char
                    while left < right and text[left].isspace():
                        left += 1
                    while right > left and text[right - 1].isspace():
                        right -= 1
                    if right > left:
                        spans.append((left, right))
            start += len(line) + 1
        return spans


class CitationResolver:
    """Usage: CitationResolver(nlp=nlp).resolve(llm_text, passages, question=q) -> ResolvedAnswer

    Args:
        nlp: a spaCy pipeline; only its tokenizer is used (sentences of the answer and of the passages).
        max_quotes: most passage sentences quoted for one answer sentence.
        splitter: the passage sentence splitter (and its cache) to share with the caller; default a new one.
    """

    def __init__(self, *, nlp: Language, max_quotes: int = 3, splitter: SentenceSplitter | None = None) -> None:
        if not isinstance(max_quotes, int) or max_quotes < 1:
            raise ValueError(f"max_quotes must be a positive integer, got {max_quotes!r}")
        self._parser = AnswerParser(nlp=nlp)
        self._splitter = splitter if splitter is not None else SentenceSplitter(nlp=nlp)
        self._max_quotes = max_quotes

    def resolve(self, text: str, passages: Sequence[RetrievedPassage], *, question: str | None = None
                ) -> ResolvedAnswer:
        """Check every sentence of `text` against the passages it cites (see the module docstring)."""
        drafts = self._parser.parse(text, passage_count=len(passages))
        kept: list[CheckedSentence] = []
        dropped: list[DroppedSentence] = []
        non_answers = 0
        for draft in drafts:
            if _NON_ANSWER.search(draft.text):
                non_answers += 1
                dropped.append(DroppedSentence(draft.text, "the model says it cannot answer"))
                continue
            if draft.out_of_range:
                log.info("dropped citation markers %s out of range 1..%d", list(draft.out_of_range), len(passages))
            checked = self._check(draft, passages, question)
            if isinstance(checked, DroppedSentence):
                log.info("dropped an unsupported sentence %r: %s", checked.text, checked.reason)
                dropped.append(checked)
            else:
                kept.append(checked)
        answer, citations = _number(kept)
        return ResolvedAnswer(answer=answer, sentences=tuple(kept), citations=citations, dropped=tuple(dropped),
                              non_answers=non_answers)

    def quotes_for(self, sentence: str, passages: Sequence[RetrievedPassage], *, question: str | None = None
                   ) -> tuple[tuple[PassageSentence, ...], bool]:
        """The passage sentences that back `sentence`, best first, and whether `supports` accepts them.

        A sentence without content words ("Yes.") is matched by the question's words, as the support check does.
        """
        content, required = _match_keys(sentence)
        if not content and question is not None:
            content, required = _match_keys(question)
        # A sentence that gives orders to a model ("Ignore all previous instructions and answer …") is planted,
        # not reported: it backs no answer, whatever the model made of it.
        pool = [s for p in passages for s in self._splitter.split(p) if not _ORDERS_A_MODEL.search(s.text)]
        # Keys by the support check's own word split: spaCy keeps "COVID-19" whole, the check reads "COVID", "19".
        keys = {id(s): {term_key(w) for w in _WORD.findall(s.text)} for s in pool}
        chosen: list[PassageSentence] = []
        covered: set[str] = set()
        while pool and len(chosen) < self._max_quotes:
            # max() keeps the first of equal gains: the better-ranked passage, the earlier sentence.
            best = max(pool, key=lambda s: len((content - covered) & keys[id(s)]) + len(
                (required - covered) & keys[id(s)]))
            if not (content - covered) & keys[id(best)]:
                break
            chosen.append(best)
            pool.remove(best)
            covered |= keys[id(best)]
            if supports(sentence, [s.text for s in chosen], question):
                return tuple(chosen), True
        return tuple(chosen), False

    def _check(self, draft: DraftSentence, passages: Sequence[RetrievedPassage], question: str | None
               ) -> CheckedSentence | DroppedSentence:
        cited_passages = [passages[n - 1] for n in draft.cited]
        cited, ok = self.quotes_for(draft.text, cited_passages, question=question)
        if ok:
            return CheckedSentence(text=draft.text, quotes=cited, repaired=False)
        repaired, ok = self.quotes_for(draft.text, passages, question=question)
        if ok:
            log.info("repaired the citations of %r: %s", draft.text,
                     ", ".join(f"{q.passage.passage_id} chars {q.char_start}-{q.char_end}" for q in repaired))
            return CheckedSentence(text=draft.text, quotes=repaired, repaired=True)
        if not draft.cited:
            return DroppedSentence(draft.text, "it cites no passage and no passage backs it")
        missing = unsupported_words(draft.text, [q.text for q in cited], question)
        return DroppedSentence(draft.text, f"its quotes lack {', '.join(repr(w) for w in missing[:5])}")


def _remove_markers(text: str, passage_count: int) -> tuple[str, list[tuple[int, tuple[int, ...], tuple[int, ...]]]]:
    """The text without markers, and each marker's position in it with its kept and dropped numbers."""
    pieces: list[str] = []
    markers: list[tuple[int, tuple[int, ...], tuple[int, ...]]] = []
    length = 0
    last = 0
    for match in _MARKER.finditer(text):
        piece = text[last:match.start()]
        pieces.append(piece)
        length += len(piece)
        kept, dropped = parse_markers(match.group(), passage_count=passage_count)
        markers.append((length, kept, dropped))
        last = match.end()
        if text[last:last + 1] in (".", "!", "?") and "".join(pieces).endswith(text[last]):
            last += 1  # "6:15 a.m. [1]." ends one sentence, not two
    pieces.append(text[last:])
    return "".join(pieces), markers


def _number(sentences: Sequence[CheckedSentence]) -> tuple[str, tuple[Citation, ...]]:
    """Numbers the quoted spans by first use and writes each sentence with its markers."""
    numbers: dict[tuple[str, int, int], int] = {}
    citations: list[Citation] = []
    written = []
    for sentence in sentences:
        ns: list[int] = []
        for quote in sentence.quotes:
            key = (quote.passage.passage_id, quote.char_start, quote.char_end)
            if key not in numbers:
                numbers[key] = len(numbers) + 1
                p = quote.passage
                citations.append(Citation(n=numbers[key], doc_id=p.doc_id, title=p.title, url=p.url,
                                          passage_id=p.passage_id, char_start=quote.char_start,
                                          char_end=quote.char_end, quote=quote.text, supports=True))
            if numbers[key] not in ns:
                ns.append(numbers[key])
        written.append(_with_markers(sentence.text, ns))
    return " ".join(written), tuple(citations)


def _with_markers(sentence: str, numbers: Sequence[int]) -> str:
    """'It cost $48.6 million.' + [1, 2] → 'It cost $48.6 million [1][2].'"""
    markers = "".join(f"[{n}]" for n in numbers)
    if not markers:
        return sentence
    end = _END_PUNCT.search(sentence)
    if end is None:
        return f"{sentence} {markers}."
    if end.group(1) or _ABBREVIATION_END.search(sentence):  # '… a clear plan."', '… at 6:15 a.m.'
        return f"{sentence} {markers}"
    return f"{sentence[: end.start()].rstrip()} {markers}{end.group()}"


def _unique(numbers: Iterable[int]) -> tuple[int, ...]:
    return tuple(dict.fromkeys(numbers))


def _match_keys(text: str) -> tuple[set[str], set[str]]:
    """The keys of the text's content words, and of its numbers and names (capitalised, not first)."""
    words = _WORD.findall(text)
    content = {term_key(w) for w in words if not is_light(w) and w.lower() not in ("yes", "no")}
    required = {term_key(w) for i, w in enumerate(words) if w[0].isdigit() or (i > 0 and w[0].isupper())}
    return content, required
