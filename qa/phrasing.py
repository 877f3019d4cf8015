"""The plain sentences an answer is worded in: "Dmitry Peskov [1]." or "The indexed articles do not say …".

A refusal restates the question as an indirect question ("When was the bridge closed?" → "when the bridge
was closed"): the auxiliary moves after the subject, and do-support is folded into the verb with a small
inflection table. When the parse does not allow that, the question is quoted as asked.
"""

import re

from spacy.tokens import Doc, Token

_WH = frozenset({"who", "whom", "whose", "what", "which", "when", "where", "why", "how"})
_DO_FORMS = frozenset({"do", "does", "did"})
_AUX_WORDS = _DO_FORMS | frozenset({"is", "are", "was", "were", "has", "have", "had", "will", "would", "can", "could",
                                    "should", "may", "might", "must", "shall"})
_IRREGULAR_PAST = {
    "be": "was", "begin": "began", "bring": "brought", "build": "built", "buy": "bought", "choose": "chose",
    "come": "came", "do": "did", "find": "found", "get": "got", "give": "gave", "go": "went", "have": "had",
    "hold": "held", "keep": "kept", "know": "knew", "lead": "led", "leave": "left", "lose": "lost",
    "make": "made", "meet": "met", "pay": "paid", "put": "put", "run": "ran", "say": "said", "see": "saw",
    "sell": "sold", "send": "sent", "set": "set", "spend": "spent", "take": "took", "tell": "told",
    "think": "thought", "win": "won", "write": "wrote", "cut": "cut", "fall": "fell", "rise": "rose",
    "grow": "grew", "become": "became", "break": "broke", "speak": "spoke", "stand": "stood", "fight": "fought",
}
_MARKER = re.compile(r"\[(\s*\d[\d\s,\-–]*)\]")  # "[2]", "[1, 3]", "[1-3]": how answers cite


def answer_sentence(short_answer: str, marker: int = 1) -> str:
    """'£38 million' → '£38 million [1].'; 'yes' → 'Yes [1].'"""
    text = short_answer.strip().rstrip(".,;:")
    if text[:1].islower():
        text = text[0].upper() + text[1:]
    return f"{text} [{marker}]."


def refusal_sentence(question: Doc) -> str:
    """'Who designed the cables?' → 'The indexed articles do not say who designed the cables.'"""
    indirect = _indirect(question)
    if indirect is None:
        sentence = f"The indexed articles do not answer the question \u201c{question.text.strip()}\u201d."
    else:
        sentence = f"The indexed articles do not say {indirect}."
    # A refusal cites nothing: a "[2]" the question holds would read as a citation marker.
    return _MARKER.sub(r"(\1)", sentence)


def _indirect(doc: Doc) -> str | None:
    tokens = [t for t in doc if not t.is_space]
    while tokens and tokens[-1].is_punct:
        tokens.pop()
    if len(tokens) < 2:
        return None
    if tokens[0].pos_ == "AUX" and tokens[0].lower_ not in _WH:
        lead, aux_index = ["whether "], 0  # "Did the budget pass" → "whether the budget passed"
    else:
        wh_index = next((i for i, t in enumerate(tokens[:3]) if t.lower_ in _WH), None)
        if wh_index is None or not all(t.pos_ in ("ADP", "SCONJ") for t in tokens[:wh_index]):
            return None
        lead = []
        aux_index = next((i for i in range(wh_index + 1, len(tokens)) if tokens[i].pos_ in ("AUX", "VERB")), -1)
        if aux_index < 0:
            return None
    aux = tokens[aux_index]
    # The tagger sometimes calls "does" a main verb; another verb after it says it is an auxiliary.
    auxiliary = aux.pos_ == "AUX" or (
        aux.lower_ in _AUX_WORDS and any(t.pos_ == "VERB" for t in tokens[aux_index + 1:]))
    if not auxiliary or aux_index + 1 >= len(tokens):
        words = [t.text_with_ws for t in tokens]  # "who designed …" is already in statement order
    else:
        verb_index = next((i for i in range(aux_index + 1, len(tokens))
                           if tokens[i].pos_ == "VERB" and tokens[i].dep_ not in ("amod", "compound")), len(tokens))
        while verb_index - 1 > aux_index + 1 and tokens[verb_index - 1].pos_ == "ADV":
            verb_index -= 1  # "was *originally* built": the adverb stays with the verb
        if verb_index == aux_index + 1:
            return None
        before = [t.text_with_ws for t in tokens[:aux_index]]
        subject_words = _spaced([t.text_with_ws for t in tokens[aux_index + 1:verb_index]])
        rest = tokens[verb_index:]
        if aux.lower_ in _DO_FORMS:
            if not rest or rest[0].pos_ != "VERB":
                return None
            verb = _inflect(rest[0], aux.lower_) + rest[0].whitespace_
            words = before + subject_words + [verb] + [t.text_with_ws for t in rest[1:]]
        else:
            aux_text = aux.lower_ if aux_index == 0 else aux.text
            words = before + subject_words + [aux_text + (" " if rest else "")] + [t.text_with_ws for t in rest]
    text = "".join(lead + words).strip()
    if tokens[0].pos_ != "PROPN" and text[:1].isupper():
        text = text[0].lower() + text[1:]
    return text


def _spaced(words: list[str]) -> list[str]:
    if words and not words[-1].endswith(" "):
        words = [*words[:-1], words[-1] + " "]
    return words


def _inflect(verb: Token, do_form: str) -> str:
    base = verb.lemma_.lower() if verb.lemma_ else verb.lower_
    if do_form == "do":
        return verb.text
    if do_form == "does":
        if base == "have":
            return "has"
        if base.endswith(("s", "sh", "ch", "x", "z", "o")):
            return base + "es"
        if base.endswith("y") and base[-2:-1] not in "aeiou":
            return base[:-1] + "ies"
        return base + "s"
    if base in _IRREGULAR_PAST:
        return _IRREGULAR_PAST[base]
    if base.endswith("e"):
        return base + "d"
    if base.endswith("y") and base[-2:-1] not in "aeiou":
        return base[:-1] + "ied"
    return base + "ed"
