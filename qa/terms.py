"""Match keys for words: a question word and a sentence word match when their keys are equal.

`term_key("Managed") == term_key("manager") == "manag"`, `term_key("cables") == term_key("cable")`,
`term_key("1,200") == "1200"`. The key is a crude suffix-stripping stem: it needs no tagger, so every
sentence of every retrieved passage can be keyed in microseconds, and the same function keys both sides.
It over- and under-stems now and then (irregular verbs never match); the embedding similarity covers that.
Snowball (PyStemmer, which the BM25 index uses) was tried in its place: no better on the demo and held-out
gold sets, and its more eager stems ("replacement" == "replaced") let a question the articles do not
answer through ("Who designed the replacement cables?").
"""

import re

from spacy.lang.en.stop_words import STOP_WORDS

# Longest first; a suffix is stripped only when at least three letters stay.
_SUFFIXES = ("ingly", "edly", "ings", "ies", "ied", "ing", "ers", "ed", "er", "es", "ly", "s")
_DIGITS = re.compile(r"^[\d.,]*\d[\d.,]*$")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'"})

# Words that carry no content in a question or a news sentence, beyond spaCy's stop list.
LIGHT_WORDS = (frozenset(STOP_WORDS) | frozenset({
    "according", "also", "approximately", "called", "did", "does", "name", "named", "exactly", "kind",
    "type", "types", "sort", "sorts", "u", "year", "years", "s", "'s", "mr", "mrs", "ms", "dr",
})) - frozenset({"other", "only", "first", "last", "next", "previous", "same", "former", "latter", "never"})
# Modifiers that restrict what is asked ("the *previous* year", "its *other* ports"): spaCy lists some as
# stop words, but a sentence without them answers a different question.
RESTRICTIVE_WORDS = frozenset({"other", "only", "first", "last", "next", "previous", "same", "total", "average",
                               "original", "originally", "former", "latter", "final", "initial", "current",
                               "never"})


def term_key(word: str) -> str:
    """The match key of one word: lowercase, possessive dropped, numbers without separators, stemmed."""
    w = word.translate(_APOSTROPHES).lower()
    if w.endswith("'s"):
        w = w[:-2]
    w = w.strip("'\".")
    if _DIGITS.match(w):
        return w.replace(",", "")
    if len(w) <= 3 or not w.isalpha():
        return w
    for suffix in _SUFFIXES:
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            w = w[: -len(suffix)]
            if suffix in ("ies", "ied"):
                w += "y"
            break
    if len(w) > 3 and w.endswith("e"):
        w = w[:-1]
    if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "aeiousl":
        w = w[:-1]
    return w


def is_light(word: str) -> bool:
    """True for stop words and other words that say nothing about what is asked."""
    return word.translate(_APOSTROPHES).lower() in LIGHT_WORDS
