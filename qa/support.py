"""Does the cited text support an answer sentence? One deterministic check, used by the LLM answerer (to drop
unsupported sentences) and by `citeqa eval` (ALCE citation recall and precision, shared EVAL.md).

`supports(sentence, quotes, question=None)` is True when all of these hold:

1. The sentence, with its `[n]` markers removed, has content words: words that are not light words
   (`qa.terms.is_light`: stop words and the like) nor "yes"/"no". A sentence without any ("Yes [1].") is
   checked with the question's content words instead, when a question is given; otherwise it is unsupported.
2. Every number and every capitalised word that does not open the sentence (names, places, organisations)
   appears in the quotes.
3. At least `SUPPORT_COVERAGE` (0.6) of the content words appear in the quotes.

Words are compared by `qa.terms.term_key` (lowercase, possessive dropped, "1,200" == "1200", crude stem), the
same key the extractive ranker uses. The check is lexical on purpose: repeatable, instant and explainable
("'Oslo' is not in the quote"). It misses paraphrases (a true sentence worded differently is called
unsupported), which errs on the side of flagging.
"""

import re
from collections.abc import Iterable

from qa.terms import is_light, term_key

SUPPORT_COVERAGE = 0.6

_POLAR = frozenset({"yes", "no"})
_MARKER = re.compile(r"\[\d+\]")
_WORD = re.compile(r"\d(?:[\d,.]*\d)?|[^\W_](?:[\w'\u2019]*[^\W_])?")


def supports(sentence: str, quotes: Iterable[str], question: str | None = None) -> bool:
    """True when the quotes back the sentence (rules in the module docstring)."""
    return not unsupported_words(sentence, quotes, question)


def unsupported_words(sentence: str, quotes: Iterable[str], question: str | None = None) -> list[str]:
    """The sentence's words the quotes lack, when they decide the check; [] when the quotes support it.

    A sentence with nothing to check yields ["(no content words)"] so that it is never called supported.
    """
    words = _words(_MARKER.sub(" ", sentence))
    if not _content(words) and question is not None:
        words = _words(question)
    content = _content(words)
    required = [w for i, w in enumerate(words) if w[0].isdigit() or (i > 0 and w[0].isupper() and w != "I")]
    if not content:
        return ["(no content words)"]
    quoted = {term_key(w) for quote in quotes for w in _words(quote)}
    missing_required = [w for w in required if term_key(w) not in quoted]
    if missing_required:
        return missing_required
    missing = [w for w in content if term_key(w) not in quoted]
    if len(content) - len(missing) < SUPPORT_COVERAGE * len(content):
        return missing
    return []


def _content(words: list[str]) -> list[str]:
    return [w for w in words if not is_light(w) and w.lower() not in _POLAR]


def _words(text: str) -> list[str]:
    return _WORD.findall(text)
