"""Sentence boundaries for chunking: fast, rule-based, and never across a paragraph break."""

import re

import spacy
from spacy.tokens import Doc

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
_OPENING_QUOTES = frozenset({'"', "\u201c", "'", "\u2018"})


class SentenceSplitter:
    """Splits text into sentence spans with spaCy's rule-based sentencizer.

    Usage: SentenceSplitter().spans("One. Two.") -> [(0, 4), (5, 9)]

    A blank line always ends a sentence. The statistical parser is more exact but ~12x slower, and a
    chunk boundary only needs a plausible sentence end; the answerer splits sentences with its own model.
    """

    def __init__(self) -> None:
        self._nlp = spacy.blank("en")
        self._nlp.add_pipe("sentencizer")
        self._nlp.max_length = 10**9  # the sentencizer keeps no per-token model state

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Return (char_start, char_end) of each sentence, stripped of surrounding whitespace."""
        spans: list[tuple[int, int]] = []
        start = 0
        for match in [*_PARAGRAPH_BREAK.finditer(text), None]:
            end = match.start() if match else len(text)
            paragraph = text[start:end]
            if paragraph.strip():
                doc = self._nlp(paragraph)
                move_opening_quotes(doc)
                for sent in doc.sents:
                    span = strip_span(text, start + sent.start_char, start + sent.end_char)
                    if span:
                        spans.append(span)
            if match:
                start = match.end()
        return spans


def move_opening_quotes(doc: Doc) -> None:
    """The sentencizer ends `…team." "I spoke…` after the second quote; it opens the next sentence."""
    for token in doc[1:-1]:
        if (token.text in _OPENING_QUOTES and doc[token.i - 1].whitespace_ and not token.whitespace_
                and doc[token.i + 1].is_sent_start and not token.is_sent_start):
            token.is_sent_start = True
            doc[token.i + 1].is_sent_start = False


def strip_span(text: str, start: int, end: int) -> tuple[int, int] | None:
    """`text[start:end]` without surrounding whitespace, or None when nothing else is left."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None
