"""Yes or no: does a supporting sentence affirm or deny what a yes/no question asks?

Usage: PolarityJudge().affirms(doc, analysis) -> Polarity(affirms=False, cues=("not",))

The sentence denies the question when it holds an odd number of negation cues in the clauses that
mention the question's content words (else its names): *not / n't / never*, the determiner *no*,
*none / nobody / nothing / neither / nor*, *without* followed by a question word, *rather than /
instead of* followed by a question word, *free* ("for free") when the question is about paying, and
*first* when the question asks whether it happened before ("ever", "previously").
A negated question ("Didn't …") flips the result. This is a heuristic: it cannot see antonyms ("fell"
for "rise") or numbers that contradict the question.
"""

from dataclasses import dataclass

from spacy.tokens import Doc, Token

from qa.question import QuestionAnalysis
from qa.terms import is_light, term_key

_NEGATORS = frozenset({"not", "n't", "never", "no", "none", "nobody", "nothing", "neither", "nor",
                       "without", "nowhere", "cannot"})
_PAYING = frozenset(term_key(w) for w in ("pay", "paid", "charge", "cost", "fee", "toll", "price", "fare"))
_BEFORE = frozenset({"before", "previously", "ever", "earlier", "already"})
_CONTRASTS = (("rather", "than"), ("instead", "of"))


@dataclass(frozen=True)
class Polarity:
    """Whether the sentence affirms the question, and the words that made it deny."""

    affirms: bool
    cues: tuple[str, ...]


class PolarityJudge:
    """Decides yes or no from one parsed supporting sentence; stateless."""

    def affirms(self, doc: Doc, question: QuestionAnalysis) -> Polarity:
        """Yes (`affirms=True`) unless the clauses about the question's terms are negated."""
        keys = question.keys
        content = frozenset(k for t in question.terms if t.role != "topic" for k in t.keys)
        # The clauses that say what is asked (content words) decide; names alone only when nothing else.
        relevant = {_clause(t).i for t in doc if not is_light(t.text) and _keys(t) & content} or {
            _clause(t).i for t in doc if not is_light(t.text) and _keys(t) & keys}
        paying = bool(keys & _PAYING)
        asked = {t.lower_ for t in question.doc} if question.doc is not None else set()
        asks_before = bool(asked & _BEFORE) and "first" not in asked
        cues: list[str] = []
        for token in doc:
            word = token.lower_
            in_scope = not relevant or _clause(token).i in relevant
            if word == "without":
                # "accepted the offer without a vote" denies nothing asked; "…without job guarantees" may.
                if any(_keys(t) & content for t in token.subtree if t.i != token.i):
                    cues.append(token.text)
            elif word in _NEGATORS and in_scope or word == "free" and paying or (
                    word == "first" and in_scope and asks_before):
                # "Had they won it before?" — "to win their first title": no.
                cues.append(token.text)
            else:
                for first, second in _CONTRASTS:
                    if word == first and token.i + 1 < len(doc) and doc[token.i + 1].lower_ == second:
                        after = doc[token.i + 2: token.i + 8]
                        if any(_keys(t) & keys for t in after if not is_light(t.text)) or any(
                                t.lower_ in ("only", "just") for t in after):
                            cues.append(f"{token.text} {doc[token.i + 1].text}")
        affirms = len(cues) % 2 == 0
        if question.negated:
            affirms = not affirms
        return Polarity(affirms=affirms, cues=tuple(cues))


def _clause(token: Token) -> Token:
    """The verb heading the clause `token` belongs to; open complements (xcomp) join their parent clause."""
    node = token
    while node.head.i != node.i:
        if node.pos_ in ("VERB", "AUX") and node.dep_ not in ("aux", "auxpass", "xcomp", "amod", "compound"):
            return node
        node = node.head
    return node


def _keys(token: Token) -> set[str]:
    return {term_key(token.text), term_key(token.lemma_)}
