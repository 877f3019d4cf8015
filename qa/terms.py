"""Match keys for words: a question word and a sentence word match when their keys are equal.

`term_key("operates") == term_key("operator") == "oper"`, `term_key("cables") == term_key("cable")`,
`term_key("1,200") == "1200"`. The key is the Snowball English stem (PyStemmer, the stemmer the BM25 index
uses too): it needs no tagger, so every sentence of every retrieved passage can be keyed in microseconds,
and the same function keys both sides. Irregular forms never match ("paid"/"pay"); the embedding
similarity covers that.
"""

import functools
import re

import Stemmer
from spacy.lang.en.stop_words import STOP_WORDS

_STEMMER = Stemmer.Stemmer("english")
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
    if not w.isalpha():
        return w
    return _stem(w)


@functools.lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    return _STEMMER.stemWord(word)


def is_light(word: str) -> bool:
    """True for stop words and other words that say nothing about what is asked."""
    return word.translate(_APOSTROPHES).lower() in LIGHT_WORDS
