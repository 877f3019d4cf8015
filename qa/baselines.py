"""A floor for `citeqa eval --baseline first-sentence`: the first sentence of the top passage is the answer.

It never refuses while a passage was retrieved and reads nothing but the passage order, so every answer
metric of a real answerer can be set beside what retrieval alone gives.

Usage: FirstSentenceAnswerer(nlp=spacy.blank("en")).answer("Who …?", passages)
"""

import time
from collections.abc import Sequence

from spacy.language import Language

from qa.records import Answer, Citation, RetrievedPassage
from qa.sentences import SentenceSplitter

NO_PASSAGE = "The indexed articles hold nothing to answer this with."


class FirstSentenceAnswerer:
    """Answers with the top passage's first sentence, citing it; confidence is always 1.

    Args:
        nlp: any spaCy pipeline; only its tokenizer is used (to split sentences as the answerer does).
    """

    def __init__(self, *, nlp: Language) -> None:
        self._splitter = SentenceSplitter(nlp=nlp)

    def answer(self, question: str, passages: Sequence[RetrievedPassage]) -> Answer:
        """The first sentence of `passages[0]`, or a refusal when nothing was retrieved."""
        started = time.perf_counter()
        sentences = self._splitter.split(passages[0]) if passages else ()
        if not sentences:
            return Answer(question=question, answer=NO_PASSAGE, short_answer=None, refused=True,
                          timings_ms={"answer": _ms(started)})
        first = sentences[0]
        passage = first.passage
        citation = Citation(n=1, doc_id=passage.doc_id, title=passage.title, url=passage.url,
                            passage_id=passage.passage_id, char_start=first.char_start, char_end=first.char_end,
                            quote=first.text)
        text = first.text.rstrip()
        # "[1]" goes before the closing full stop, as in every citeqa answer ("… million [1].").
        answer = f"{text[:-1]} [1]{text[-1]}" if text[-1] in ".!?" else f"{text} [1]."
        return Answer(question=question, answer=answer, short_answer=first.text, refused=False,
                      citations=(citation,), confidence=1.0, answer_type="first sentence",
                      timings_ms={"answer": _ms(started)})


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
