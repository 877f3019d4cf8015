"""Candidate answer spans inside one parsed sentence, for the type of answer a question expects.

Usage: SpanExtractor().candidates(doc, analysis) -> [SpanCandidate, …] (char offsets into `doc.text`)

- Entity types (person, organisation, date, place, number, money, percent, duration): spaCy entities
  with a fitting label; well-fitting labels score higher than fall-back ones. "How many X" prefers the
  number that counts X; "what year" narrows a date to its year, "when" prefers a point in time to a
  stretch; "who did V" prefers the subject, object or agent of V; a currency sign before a MONEY entity
  is kept; "which tribes" also offers the phrase the sentence builds on "tribes".
- Noun phrases: the complement of the copula whose subject is the question's focus ("The largest item is
  **public safety**"), the object of the question's verb ("freeze **public transport fares**"), the
  phrase that quantifies the focus ("**16 weeks of severance pay**"), what the subject did for "what did
  X do", else any noun chunk (a weak guess).
- Reasons: the clause after *because / since / so that*, the object of *because of / due to / owing to /
  as a result of*, the agent of *caused by / started by*, the subject of *X caused Y*; purpose clauses
  (*in order to …*) as a weak fall-back.

For a person, organisation or place, a phrase that names nothing (no proper noun: "most valuable player",
"her home") is never offered. A span that only repeats the question is never offered, one that repeats a
name of the question fits less, and spans drop a relative clause, an appositive or an example list
("such as …") hanging off their end, and punctuation at their edges (but not a "%" or a closing quote
whose opening one is inside).
Each candidate carries `fit` (how well its kind matches the question, in [0, 1]) and `closeness` (how
near it sits, in the dependency tree, to the words it shares with the question, in [0, 1]).
"""

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from spacy.tokens import Doc, Span, Token

from qa.question import REPORTING_VERBS, AnswerType, QuestionAnalysis
from qa.terms import is_light, term_key

_CURRENCY = "$£€¥₹"
_YEAR = re.compile(r"^(1\d{3}|20\d{2})s?$")
_CAUSE_LEMMAS = frozenset({"cause", "start", "trigger", "spark", "prompt", "drive", "lead", "force",
                           "provoke", "fuel", "ignite", "result", "create", "produce"})
# Verbs that introduce someone's grounds: "X pointed out / argued / warned that …".
_REASON_GIVING = frozenset({"say", "point", "argue", "note", "warn", "explain", "add", "stress", "caution",
                            "contend", "insist", "believe", "think", "claim", "write"})
_LOCATIVE_PREPOSITIONS = frozenset({"in", "at", "near", "outside", "inside", "from", "to", "into", "across"})
# Dependents whose whole subtree leaves a span (punctuation and conjunctions are only trimmed at its edges).
_CLAUSE_DROP = frozenset({"mark", "parataxis", "appos", "relcl", "preconj", "meta"})
_PHRASE_DROP = frozenset({"relcl", "appos", "parataxis", "advcl", "preconj", "meta", "mark"})
_EDGE_TRIM = frozenset({"punct", "cc", "mark", "prep", "case", "preconj", "meta"})
_TIME_UNITS = frozenset({"year", "years", "month", "months", "week", "weeks", "day", "days", "hour", "hours",
                         "minute", "minutes", "decade", "decades", "century", "centuries", "year-old"})
_POINT_WORDS = frozenset({"ago", "last", "next", "this", "since", "of"})
_FUTURE_WORDS = frozenset({"will", "shall", "'ll", "wo"})
_PAST_WORDS = frozenset({"did", "was", "were", "had"})
_VAGUE_TIMES = frozenset({"morning", "afternoon", "evening", "night", "tonight", "the", "that", "this", "a",
                          "day", "today", "time", "later", "earlier", "recently", "now"})


@dataclass(frozen=True)
class SpanCandidate:
    """A possible short answer: `text == sentence_text[start:end]`."""

    start: int
    end: int
    text: str
    fit: float
    closeness: float
    kind: str  # "entity", "number", "phrase", "chunk", "reason", "purpose"


class SpanExtractor:
    """Finds the candidate answers of a sentence for a question; stateless, so safe to share."""

    def candidates(self, doc: Doc, question: QuestionAnalysis) -> list[SpanCandidate]:
        """Every candidate span in `doc`, best fitting first (ties keep sentence order)."""
        matched = _matched_tokens(doc, question)
        if question.answer_type is AnswerType.REASON:
            found = _reason_candidates(doc, question, matched)
        elif question.answer_type is AnswerType.NOUN_PHRASE:
            found = _phrase_candidates(doc, question, matched)
        elif question.answer_type is AnswerType.YES_NO:
            found = []
        else:
            found = _entity_candidates(doc, question, matched)
        unique: dict[tuple[int, int], SpanCandidate] = {}
        for candidate in found:
            if not candidate.text.strip():
                continue
            key = (candidate.start, candidate.end)
            if key not in unique or unique[key].fit < candidate.fit:
                unique[key] = candidate
        return sorted(unique.values(), key=lambda c: (-c.fit, c.start))


# ----- entities -------------------------------------------------------------------------------------


def _entity_candidates(doc: Doc, question: QuestionAnalysis, matched: Sequence[Token]) -> list[SpanCandidate]:
    found = []
    in_entity: set[int] = set()
    for ent in doc.ents:
        in_entity.update(range(ent.start, ent.end))
        if ent.label_ in question.labels:
            fit = 1.0
        elif ent.label_ in question.fallback_labels:
            # spaCy's small model often swaps PERSON and ORG for names it has not seen.
            fit = 0.7 if {ent.label_, *question.labels} <= {"PERSON", "ORG"} else 0.6
        else:
            continue
        if _said_by_question(ent, question):
            continue
        if _repeats_question(ent, question):
            fit *= 0.3  # "Redmarsh United" does not answer "which club did he leave to join Redmarsh?"
        start, end = ent.start_char, ent.end_char
        if question.answer_type is AnswerType.DATE and question.focus in ("year", "decad"):
            year = next((t for t in ent if _YEAR.match(t.text)), None)
            if year is None:
                fit *= 0.2
            else:
                start, end = year.idx, year.idx + len(year.text)
        elif question.asks_age:
            age = _age(ent)
            if age is None:
                fit *= 0.1  # "how old": "the fourth quarter" is no age
            else:
                start, end = age.idx, age.idx + len(age.text)
        elif ent.label_ in ("DATE", "TIME"):
            fit *= _time_fit(ent, question.answer_type, calendar_date=question.focus == term_key("date"))
            tense = _tense(ent.root) if question.answer_type is AnswerType.DATE else None
            if tense is not None and _question_tense(question.doc) not in (None, tense):
                fit *= 0.4  # "when will they strike again?" is not answered by "the first strike since 2017"
        if ent.label_ == "MONEY" and start > 0 and doc.text[start - 1] in _CURRENCY:
            start -= 1
        if question.counted is not None and len(ent) > 1 and question.counted in _keys(ent[-1]):
            end = ent[-2].idx + len(ent[-2].text)  # "how many miles": "around 11 miles" → "around 11"
        fit *= _role_factor(ent, question, matched) * _argument_factor(ent, question, doc)
        found.append(_candidate(doc, start, end, fit, ent.root, matched, question, "entity"))
    if question.answer_type in (AnswerType.NUMBER, AnswerType.DURATION, AnswerType.MONEY, AnswerType.PERCENT):
        for token in doc:
            if token.i in in_entity or not token.like_num or _said_by_question(doc[token.i:token.i + 1], question):
                continue
            fit = 0.5 * _role_factor(doc[token.i:token.i + 1], question, matched)
            found.append(_candidate(doc, token.idx, token.idx + len(token.text), fit, token, matched, question,
                                    "number"))
    if question.focus is not None and question.answer_type in (AnswerType.PERSON, AnswerType.ORGANIZATION,
                                                                AnswerType.PLACE):
        # "Which tribes …" → "the Mongol and Turkic tribes": the phrase the sentence builds on the focus noun.
        for token in doc:
            if question.focus in _keys(token) and token.pos_ in ("NOUN", "PROPN") and token.dep_ != "compound":
                span = _phrase_span(token, drop=_PHRASE_DROP | {"prep", "acl", "det", "poss"})
                if span is not None and len(span) > 1 and _names_something(span) \
                        and not _said_by_question(span, question):
                    found.append(_candidate(doc, span.start_char, span.end_char, 0.75, token, matched, question,
                                            "phrase"))
    if question.answer_type is AnswerType.PLACE:
        for token in doc:
            if token.dep_ == "pobj" and token.head.lower_ in _LOCATIVE_PREPOSITIONS \
                    and token.pos_ in ("PROPN", "NOUN") \
                    and token.ent_type_ not in ("DATE", "TIME", "MONEY", "PERCENT", "CARDINAL", "QUANTITY"):
                span = _phrase_span(token, drop=_PHRASE_DROP | {"conj", "prep"})
                if span is None or not _names_something(span) or _said_by_question(span, question):
                    continue
                fit = 0.6 if token.pos_ == "PROPN" else 0.3
                found.append(_candidate(doc, span.start_char, span.end_char, fit, token, matched, question, "chunk"))
    return found


def _age(ent: Span) -> Token | None:
    """The number of an age: "47" in "47", "a 29-year-old", "aged 64", "61 years old"; None if no age."""
    numbers = [t for t in ent if t.text.isdigit()]
    if len(numbers) != 1 or int(numbers[0].text) > 130:
        return None
    words = {t.lower_ for t in ent.doc[max(0, ent.start - 1): ent.end + 2]}
    # spaCy labels a bare age ("Aldana, 47,", "She was 88") DATE or CARDINAL.
    if len(ent) == 1 or words & {"old", "aged", "age"}:
        return numbers[0]
    return None


def _question_tense(question: Doc | None) -> str | None:
    """"future" or "past" when the question's words say so ("will", "did", a past form), else None."""
    if question is None:
        return None
    words = {t.lower_ for t in question}
    if words & _FUTURE_WORDS:
        return "future"
    return "past" if words & _PAST_WORDS or any(t.tag_ == "VBD" for t in question) else None


def _tense(token: Token) -> str | None:
    """"future" or "past" for the clause of `token`, None when it does not show; a date after "since" or
    before "ago" is past whatever its clause says."""
    doc = token.doc
    if (token.i > 0 and doc[token.i - 1].lower_ == "since") or (
            token.i + 1 < len(doc) and doc[token.i + 1].lower_ == "ago") or any(
            t.lower_ == "since" and t.dep_ == "prep" for t in token.ancestors):
        return "past"
    verb = next((t for t in token.ancestors if t.pos_ in ("VERB", "AUX")), None)
    if verb is None:
        return None
    words = {c.lower_ for c in verb.children if c.dep_ in ("aux", "auxpass")} | {verb.lower_}
    if words & _FUTURE_WORDS:
        return "future"
    return "past" if verb.tag_ == "VBD" or words & _PAST_WORDS else None


def _names_something(span: Span) -> bool:
    """A person, organisation or place is named: "the Mongol tribes" is, "most valuable player" or "her home" not."""
    return any(t.pos_ == "PROPN" or (t.is_title and not t.is_sent_start) for t in span)


def _time_fit(ent: Span, answer_type: AnswerType, *, calendar_date: bool = False) -> float:
    """'When' wants a point in time ('May 1', 'in 2025'), 'how long' a stretch ('14 months'); 'on what date'
    a day of the calendar ('January 5'), not only a weekday or a season ('Tuesday', 'the spring')."""
    words = {t.lower_ for t in ent}
    if calendar_date and not any(t.like_num for t in ent):
        return 0.3
    stretch = bool(words & _TIME_UNITS) and not bool(words & _POINT_WORDS) and not any(
        _YEAR.match(t.text) for t in ent)
    vague = words <= _VAGUE_TIMES
    bare_number = all(t.like_num for t in ent) and not any(_YEAR.match(t.text) for t in ent)
    if answer_type is AnswerType.DURATION:
        return 1.0 if stretch else 0.5
    if vague or bare_number:
        return 0.3
    return 0.3 if stretch else 1.0


def _role_factor(span: Span, question: QuestionAnalysis, matched: Sequence[Token]) -> float:
    """For "how many X": 1 for a number that counts X, 0.7 for a bare number, 0.45 for one counting else."""
    if question.counted is None or question.answer_type not in (AnswerType.NUMBER, AnswerType.DURATION):
        return 1.0
    if question.counted in _keys(span[-1]):
        return 1.0
    counted_noun = _counted_noun(span)
    if counted_noun is None:
        return 0.7
    keys = _keys(counted_noun).union(*(_keys(t) for t in counted_noun.children if t.dep_ == "compound"))
    return 1.0 if question.counted in keys else 0.45


def _argument_factor(span: Span, question: QuestionAnalysis, doc: Doc) -> float:
    """For "who/which X did …" with the question's verb in the sentence: 1 for the verb's subject, agent or
    object (or a name in apposition to one), 0.7 for any other name."""
    if question.answer_type not in (AnswerType.PERSON, AnswerType.ORGANIZATION) or not question.verbs:
        return 1.0
    verb_keys = question.verbs[0]
    verbs = [t for t in doc if t.pos_ in ("VERB", "AUX") and _keys(t) & verb_keys]
    if not verbs:
        return 0.85
    arguments: set[int] = set()
    for verb in verbs:
        for child in verb.children:
            if child.dep_ in ("nsubj", "nsubjpass", "dobj", "dative", "attr", "agent") or (
                    child.dep_ == "prep" and child.lower_ in ("for", "from", "to", "with")):
                arguments.update(t.i for t in child.subtree)
        if verb.dep_ == "relcl":  # "Lindqvist, the cardiologist who led the study"
            noun = verb.head
            arguments.update(t.i for t in noun.subtree if t.i < verb.i)
            if noun.dep_ == "appos":
                arguments.update(t.i for t in noun.head.subtree if t.i < noun.i)
        if verb.dep_ in ("acl",):
            arguments.update(t.i for t in verb.head.subtree)
    return 1.0 if any(t.i in arguments for t in span) else 0.7


def _counted_noun(span: Span) -> Token | None:
    """The noun a number counts: '1,200 **jobs**', 'about 450 of the **roles**'."""
    root = span.root
    if root.dep_ in ("nummod", "quantmod", "amod", "compound") and root.head.pos_ in ("NOUN", "PROPN"):
        return root.head
    for child in root.children:
        if child.dep_ == "prep" and child.lower_ == "of":
            objects = [c for c in child.children if c.dep_ == "pobj"]
            if objects:
                return objects[0]
    return None


# ----- noun phrases ---------------------------------------------------------------------------------


def _phrase_candidates(doc: Doc, question: QuestionAnalysis, matched: Sequence[Token]) -> list[SpanCandidate]:
    found: list[SpanCandidate] = []

    def add(head: Token | None, fit: float, *, keep_conj: bool = True) -> None:
        if head is None:
            return
        drop = _PHRASE_DROP if keep_conj else _PHRASE_DROP | {"conj"}
        span = _phrase_span(head, drop=drop)
        if span is None or _said_by_question(span, question):
            return
        found.append(_candidate(doc, span.start_char, span.end_char, fit, head, matched, question, "phrase"))

    if question.focus:
        for token in doc:
            if question.focus not in _keys(token):
                continue
            noun = token
            while noun.dep_ in ("compound", "amod", "nmod") and noun.head.pos_ in ("NOUN", "PROPN"):
                noun = noun.head
            holder = noun
            if holder.dep_ == "pobj" and holder.head.dep_ == "prep" and holder.head.head.pos_ in ("NOUN", "NUM"):
                holder = holder.head.head  # "16 weeks of severance pay": the quantity holds the focus
                add(holder, 0.9, keep_conj=False)
            verb = noun.head
            if noun.dep_ in ("nsubj", "nsubjpass") and verb.lemma_ == "be":
                for child in verb.children:
                    if child.dep_ in ("attr", "acomp", "xcomp", "ccomp", "oprd"):
                        add(child, 0.95)
            elif noun.dep_ == "attr" and verb.lemma_ == "be":
                add(next((c for c in verb.children if c.dep_ in ("nsubj", "nsubjpass")), None), 0.85)
            for child in noun.children:
                if child.dep_ == "appos":
                    add(child, 0.8)
            if noun.dep_ == "appos":
                add(noun.head, 0.7)

    if question.asks_action:
        # "What did Guo Shoujing do for calendars?" → "applied mathematics to the construction of calendars"
        for token in doc:
            if token.pos_ != "VERB" or token.dep_ in ("aux", "auxpass", "amod"):
                continue
            subject = next((c for c in token.children if c.dep_ in ("nsubj", "nsubjpass")), None)
            if subject is None or not any(_keys(t) & question.keys for t in subject.subtree):
                continue
            right = [t for t in token.subtree if t.i >= token.i and not any(
                a.dep_ in ("conj", "cc", "punct", "advcl", "parataxis") and a.i > token.i
                for a in _path_up(t, token))]
            if right:
                end_token = max(right, key=lambda t: t.i)
                span = doc[token.i:end_token.i + 1]
                while len(span) > 1 and span[-1].is_punct:
                    span = span[:-1]
                found.append(_candidate(doc, span.start_char, span.end_char, 0.85, token, matched, question,
                                        "phrase"))

    for rank, verb_keys in enumerate(question.verbs):
        for token in doc:
            if token.pos_ not in ("VERB", "AUX") or not _keys(token) & verb_keys:
                continue
            fit = 0.9 if rank == 0 else 0.75
            objects = [c for c in token.children if c.dep_ in ("dobj", "attr", "oprd", "dative")]
            objects = [c for c in objects if not _said_by_question(_phrase_span(c, drop=_PHRASE_DROP), question)]
            if len(objects) >= 2 and objects[0].dep_ == "dative" and any(
                    c.dep_ in ("auxpass", "nsubjpass") for c in token.children):
                # "were given [a pedometer] and [weekly calls]": a passive has no indirect object; the
                # parser's "dative" is the first of the things given.
                first, last = _phrase_span(objects[0], drop=_PHRASE_DROP), _phrase_span(objects[-1], drop=_PHRASE_DROP)
                if first is not None and last is not None and first.end <= last.start:
                    span = doc[first.start:last.end]
                    if not _said_by_question(span, question):
                        found.append(_candidate(doc, span.start_char, span.end_char, fit, objects[0], matched,
                                                question, "phrase"))
                continue
            if objects:
                add(objects[-1] if objects[0].dep_ == "dative" else objects[0], fit,
                    keep_conj=not _conj_holds_focus(objects[0], question))
                continue
            complements = [c for c in token.children if c.dep_ in ("xcomp", "ccomp")]
            for complement in complements:
                inner = [c for c in complement.children if c.dep_ in ("dobj", "attr")]
                add(inner[0] if inner else complement, fit - 0.1)
            for prep in (c for c in token.children if c.dep_ in ("prep", "agent")):
                objects = [c for c in prep.children if c.dep_ == "pobj"]
                if objects:
                    add(objects[0], fit - 0.25)

    for chunk in doc.noun_chunks:
        if _said_by_question(chunk, question) or all(t.pos_ == "PRON" for t in chunk):
            continue
        found.append(_candidate(doc, chunk.start_char, chunk.end_char, 0.25, chunk.root, matched, question, "chunk"))
    return found


def _conj_holds_focus(head: Token, question: QuestionAnalysis) -> bool:
    """True when the question's focus is in the first of several conjuncts: then only that one answers."""
    if question.focus is None or not any(c.dep_ == "conj" for c in head.children):
        return False
    first = [t for t in head.subtree if not any(step.dep_ == "conj" for step in _path_up(t, head))]
    return any(question.focus in _keys(t) for t in first)


def _path_up(token: Token, top: Token) -> Iterable[Token]:
    """`token` and its ancestors below `top`."""
    while token.i != top.i and token.head.i != token.i:
        yield token
        token = token.head


# ----- reasons --------------------------------------------------------------------------------------


def _reason_candidates(doc: Doc, question: QuestionAnalysis, matched: Sequence[Token]) -> list[SpanCandidate]:
    found: list[SpanCandidate] = []
    verb_keys = frozenset(k for keys in question.verbs for k in keys)
    topic_keys = frozenset(k for t in question.terms if t.role == "topic" for k in t.keys)
    # A "why does X think/say …" question asks for the grounds X gives.
    reported = question.doc is not None and any(t.lemma_.lower() in REPORTING_VERBS for t in question.doc)

    def add(head: Token | None, fit: float, kind: str = "reason", drop: frozenset[str] = _CLAUSE_DROP,
            start: Token | None = None) -> None:
        if head is None:
            return
        span = _phrase_span(head, drop=drop)
        if span is not None and start is not None and span.start < start.i < span.end:
            span = doc[start.i:span.end]  # what the parser hung before "to" is not the purpose
        if span is None or _said_by_question(span, question):
            return
        found.append(_candidate(doc, span.start_char, span.end_char, fit, head, matched, question, kind))

    for token in doc:
        word = token.lower_
        nxt = doc[token.i + 1] if token.i + 1 < len(doc) else None
        base = 0.6 if question.cause else 0.95
        if word == "because" and nxt is not None and nxt.lower_ == "of":
            add(_object_of(nxt) or _object_of(token), base)
        elif word == "because" or (word in ("since", "as") and token.dep_ == "mark" and not question.cause
                                    and token.head.pos_ in ("VERB", "AUX")):
            head = token.head if token.dep_ == "mark" else _clause_after(token)
            fit = base if word == "because" else 0.5
            add(head, fit)
        elif nxt is not None and (
                (word in ("due", "owing", "thanks") and nxt.lower_ == "to")
                or (word == "result" and nxt.lower_ == "of" and doc[max(token.i - 1, 0)].lower_ in ("a", "the"))):
            add(_object_of(nxt), base - 0.05)  # "due to X", "as a result of X"
        elif token.dep_ == "agent" and (token.head.lemma_.lower() in _CAUSE_LEMMAS or _keys(token.head) & verb_keys):
            fit = 0.95 if question.cause else 0.8
            add(_object_of(token), fit, drop=_CLAUSE_DROP | {"relcl", "advcl"})
        elif token.lemma_.lower() in _CAUSE_LEMMAS and token.pos_ == "VERB" and not any(
                c.dep_ == "auxpass" for c in token.children):
            subject = next((c for c in token.children if c.dep_ == "nsubj"), None)
            objects = [c for c in token.children if c.dep_ in ("dobj", "prep")]
            if subject is not None and subject.pos_ != "PRON" and objects:
                add(subject, 0.85 if question.cause else 0.6, drop=_CLAUSE_DROP | {"relcl"})
        elif word == "so" and nxt is not None and nxt.lower_ == "that":
            add(_clause_after(nxt), 0.5)
        elif word == "to" and token.dep_ == "aux" and token.head.dep_ in ("advcl", "xcomp") \
                and token.head.head.pos_ == "VERB":
            # "Why did Shaw step down?" ← "Shaw resigned … to undergo treatment": the verb, or failing that
            # its subject, is the question's.
            verb = token.head.head
            fit = 0.45 if _keys(verb) & verb_keys else 0.35 if _subject_named(verb, topic_keys) else 0.0
            if fit:
                add(token.head, fit, kind="purpose", drop=_CLAUSE_DROP - {"mark"}, start=token)
        elif reported and token.dep_ == "ccomp" and token.head.lemma_.lower() in _REASON_GIVING \
                and _subject_named(token.head, topic_keys):
            # "Why does Abernethy think …?" ← "Abernethy pointed out that the Sound is sheltered".
            add(token, 0.4, kind="reason")
    return found


def _subject_named(verb: Token, topic_keys: frozenset[str]) -> bool:
    """True when the subject of `verb` holds one of the question's names."""
    subject = next((c for c in verb.children if c.dep_ in ("nsubj", "nsubjpass")), None)
    return subject is not None and any(_keys(t) & topic_keys for t in subject.subtree)


def _object_of(preposition: Token) -> Token | None:
    return next((c for c in preposition.children if c.dep_ in ("pobj", "pcomp")), None)


def _clause_after(token: Token) -> Token | None:
    """The verb of the clause that starts after `token` (when the parser did not attach it as its mark)."""
    for later in token.doc[token.i + 1:]:
        if later.pos_ in ("VERB", "AUX") and later.dep_ not in ("aux", "auxpass"):
            return later
    return None


# ----- shared helpers -------------------------------------------------------------------------------


def _phrase_span(head: Token, *, drop: frozenset[str]) -> Span | None:
    """The contiguous part of `head`'s subtree around `head`, without dropped dependents or edge junk."""
    subtree = list(head.subtree)
    excluded: set[int] = set()
    for token in subtree:
        if token.i == head.i or token.i in excluded:
            continue
        if (token.dep_ in drop and token.dep_ not in ("punct", "cc")) or _is_example_list(token):
            excluded.update(t.i for t in token.subtree)
    kept = {t.i for t in subtree} - excluded
    lo = hi = head.i
    while lo - 1 in kept:
        lo -= 1
    while hi + 1 in kept:
        hi += 1
    doc = head.doc
    while lo < hi and (doc[lo].dep_ in _EDGE_TRIM or doc[lo].is_punct) and lo != head.i:
        lo += 1
    while hi > lo and hi != head.i and (doc[hi].dep_ in ("cc", "preconj") or (
            doc[hi].is_punct and not _closes_inside(doc, lo, hi))):
        hi -= 1
    if doc[lo].is_punct and lo == hi:
        return None
    return doc[lo:hi + 1]


_CLOSERS = {")": "(", "]": "[", "\u201d": "\u201c", "\u2019": "\u2018", '"': '"', "'": "'"}


def _closes_inside(doc: Doc, lo: int, hi: int) -> bool:
    """True for a '%', or a closing bracket or quote whose opening one is inside the span."""
    text = doc[hi].text
    if text == "%":
        return True
    opener = _CLOSERS.get(text)
    if opener is None:
        return False
    inside = [t.text for t in doc[lo:hi]]
    if opener == text:  # straight quotes: balanced when an odd number come before
        return inside.count(text) % 2 == 1
    return inside.count(opener) > inside.count(text)


def _is_example_list(token: Token) -> bool:
    """'…, such as swollen ankles …', '… including …': examples trail off the answer."""
    if token.dep_ != "prep":
        return False
    if token.lower_ == "including":
        return True
    return token.lower_ == "as" and any(c.lower_ == "such" for c in token.children) or (
        token.i > 0 and token.doc[token.i - 1].lower_ == "such" and token.lower_ == "as")


def _keys(token: Token) -> set[str]:
    return {term_key(token.text), term_key(token.lemma_)}


def _matched_tokens(doc: Doc, question: QuestionAnalysis) -> list[Token]:
    keys = question.keys
    return [t for t in doc if not t.is_punct and not is_light(t.text) and _keys(t) & keys]


def _repeats_question(span: Span, question: QuestionAnalysis) -> bool:
    """True when `span` repeats a name of the question ("Redmarsh United" for "… join Redmarsh?")."""
    keys = frozenset(k for t in question.terms if t.role == "topic" for k in t.keys)
    return any(_keys(t) & keys for t in span if not (t.is_punct or is_light(t.text)))


def _said_by_question(span: Span | None, question: QuestionAnalysis) -> bool:
    """True when every content word of `span` is already in the question (or the span has none)."""
    if span is None:
        return True
    keys = question.keys
    content = [t for t in span if not (t.is_punct or t.is_space or is_light(t.text))]
    if not content:
        # A number the question states ("one" of "one-bedroom") is no answer; other light words say nothing.
        return all(_keys(t) & keys for t in span if t.like_num)
    return all(_keys(t) & keys for t in content)


def _closeness(token: Token, matched: Sequence[Token], question: QuestionAnalysis, inside: range | None = None
               ) -> float:
    """How near `token` sits to the sentence words the question shares, in [0, 1].

    A weighted mean of exp(-(d - 1) / 1.5) over tree distances d ≥ 1. Content words (what is asked) count,
    topic words (names) only when no content word is there. Words inside the candidate itself (`inside`,
    token indices) do not count: a span is not near the question because it repeats it.
    """
    roles = {k: t for t in question.terms for k in t.keys}
    near = []
    for other in matched:
        if inside is not None and other.i in inside:
            continue
        term = next((roles[k] for k in _keys(other) if k in roles), None)
        if term is not None:
            near.append((other, term))
    # Content words decide; near a name only is weak evidence ("Almeida, 24," is not when Almeida debuts).
    content = [(o, t) for o, t in near if t.role != "topic"]
    scale = 1.0 if content else 0.5
    near = content or near
    total = sum(t.weight for _, t in near)
    if total <= 0:
        return 0.0
    return scale * sum(t.weight * math.exp(-(max(_tree_distance(token, o), 1) - 1) / 1.5) for o, t in near) / total


def _tree_distance(a: Token, b: Token) -> int:
    up_a = [a, *a.ancestors]
    depth_a = {t.i: d for d, t in enumerate(up_a)}
    for d_b, t in enumerate([b, *b.ancestors]):
        if t.i in depth_a:
            return depth_a[t.i] + d_b
    return len(up_a) + d_b + 1


def _candidate(doc: Doc, start: int, end: int, fit: float, head: Token, matched: Sequence[Token],
               question: QuestionAnalysis, kind: str) -> SpanCandidate:
    span = doc.char_span(start, end, alignment_mode="expand")
    inside = range(span.start, span.end) if span is not None else range(head.i, head.i + 1)
    return SpanCandidate(start=start, end=end, text=doc.text[start:end], fit=min(1.0, fit),
                         closeness=_closeness(head, matched, question, inside), kind=kind)
