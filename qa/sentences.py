"""The sentences of retrieved passages, with exact document offsets, and their cached spaCy parses.

Two speeds, because a full parse costs ~25 ms per passage on a laptop core and most sentences are never
candidates: `SentenceSplitter` cuts every passage with spaCy's tokenizer and rule-based sentencizer (well
under 1 ms); `SentenceParser` runs the full pipeline (tagger, parser, NER) only on the few sentences that
ranking shortlists. Both cache by content, because the same passages come back for related questions.

For every `PassageSentence s` of passage `p`: `s.text == p.text[s.char_start - p.char_start:
s.char_end - p.char_start]`, so, as `p.text` is `document_text[p.char_start:p.char_end]`,
`s.text == document_text[s.char_start:s.char_end]`. Surrounding whitespace is never part of a sentence,
and no sentence crosses a blank line.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass

from spacy.language import Language
from spacy.pipeline import Sentencizer
from spacy.tokens import Doc

from index.sentences import move_opening_quotes, strip_span
from qa.lru import LRUCache
from qa.records import RetrievedPassage
from qa.terms import term_key

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
_ABBREVIATIONS = frozenset({"mrs.", "prof.", "gen.", "gov.", "sen.", "rep.", "corp.", "inc.", "ltd.", "bros.",
                            "capt.", "col.", "lt.", "sgt.", "dept.", "univ.", "assn.", "est.", "approx.", "vol.",
                            "fig.", "no.", "nos.", "jan.", "feb.", "aug.", "sept.", "oct.", "nov.", "dec.", "rev.",
                            "hon.", "ave.", "blvd.", "mt.", "ft."})


@dataclass(frozen=True)
class PassageSentence:
    """One sentence of a retrieved passage; `char_start`/`char_end` are offsets in the document."""

    passage: RetrievedPassage
    position: int  # 0 for the passage's first sentence
    paragraph: int  # 0 for the passage's first paragraph (paragraphs end at blank lines)
    char_start: int
    char_end: int
    text: str
    keys: tuple[str, ...]  # the match key of each word, in order

    @property
    def offset(self) -> int:
        """Where the sentence starts inside its passage's text."""
        return self.char_start - self.passage.char_start


class SentenceSplitter:
    """Usage: SentenceSplitter(nlp=nlp).split(passage) -> (PassageSentence, ...)"""

    def __init__(self, *, nlp: Language, cache_size: int = 512) -> None:
        if not isinstance(nlp, Language):
            raise TypeError(f"nlp must be a spaCy Language, got {type(nlp).__name__}")
        self._tokenizer = nlp.tokenizer
        self._sentencizer = Sentencizer()
        self._cache: LRUCache[tuple[str, str], tuple[PassageSentence, ...]] = LRUCache(maxsize=cache_size)

    def split(self, passage: RetrievedPassage) -> tuple[PassageSentence, ...]:
        """The sentences of `passage`, in order."""
        return self._cache.get_or_make((passage.passage_id, passage.text), lambda: self._split(passage))

    def _split(self, passage: RetrievedPassage) -> tuple[PassageSentence, ...]:
        text = passage.text
        sentences: list[PassageSentence] = []
        start = 0
        for paragraph, match in enumerate([*_PARAGRAPH_BREAK.finditer(text), None]):
            end = match.start() if match else len(text)
            if text[start:end].strip():
                doc = self._sentencizer(self._tokenizer(text[start:end]))
                _split_glued_periods(doc)
                move_opening_quotes(doc)
                for sent in doc.sents:
                    span = strip_span(text, start + sent.start_char, start + sent.end_char)
                    if span is None:
                        continue
                    keys = tuple(term_key(t.text) for t in sent if not (t.is_punct or t.is_space))
                    sentences.append(PassageSentence(
                        passage=passage, position=len(sentences), paragraph=paragraph,
                        char_start=passage.char_start + span[0],
                        char_end=passage.char_start + span[1], text=text[span[0]:span[1]], keys=keys,
                    ))
            if match:
                start = match.end()
        return tuple(sentences)


class SentenceParser:
    """Usage: SentenceParser(nlp=nlp).parse("Officials said …") -> a Doc with tags, parse and entities."""

    def __init__(self, *, nlp: Language, cache_size: int = 4096) -> None:
        if not isinstance(nlp, Language):
            raise TypeError(f"nlp must be a spaCy Language, got {type(nlp).__name__}")
        missing = {"parser", "ner"} - set(nlp.pipe_names)
        if missing:
            raise ValueError(f"the spaCy pipeline lacks {sorted(missing)}; it has {nlp.pipe_names}")
        self._nlp = nlp
        self._cache: LRUCache[str, Doc] = LRUCache(maxsize=cache_size)

    def parse(self, text: str) -> Doc:
        """The full parse of one sentence."""
        return self.parse_all([text])[0]

    def parse_all(self, texts: Sequence[str]) -> list[Doc]:
        """The full parses of several sentences; the uncached ones go through spaCy as one batch."""
        return self._cache.get_or_make_many(texts, lambda missing: list(self._nlp.pipe(missing)))


def _split_glued_periods(doc: Doc) -> None:
    """Also end a sentence after a token like "BSkyB." that the tokenizer kept whole with its period.

    spaCy keeps a period on a token ending in a capital letter (it might be an abbreviation), so the
    sentencizer never sees that sentence end. Known abbreviations and dotted ones ("U.S.") stay whole.
    """
    for token in doc[:-1]:
        text = token.text
        nxt = doc[token.i + 1]
        if (len(text) > 3 and text.endswith(".") and "." not in text[:-1] and text.lower() not in _ABBREVIATIONS
                and token.whitespace_ and (nxt.is_title or nxt.text in ('"', "“"))):
            nxt.is_sent_start = True
