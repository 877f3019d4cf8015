"""Sentences of retrieved passages: exact document offsets, no blank line inside, glued periods split."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qa.records import RetrievedPassage
from qa.sentences import SentenceParser, SentenceSplitter

WORDS = ["the", "bridge", "Dr.", "U.S.", "BSkyB.", "cost", "$4.2", "million", "said", "a.m.", "“quote”", "(see", "it)",
         "St.", "Aldric's", "é", "42%", "—", "no.", "Mr.", "x"]
ENDS = [".", "!", "?", ".\"", ""]
GAPS = [" ", "  ", "\n", "\n\n", " \n \n ", "\t"]


@st.composite
def documents(draw) -> tuple[str, int, int]:
    """A document of random sentences and gaps, and a passage span inside it."""
    parts = [draw(st.sampled_from(["", " ", "\n\n"]))]
    for _ in range(draw(st.integers(1, 8))):
        words = draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=9))
        parts.append(" ".join(words).capitalize() + draw(st.sampled_from(ENDS)))
        parts.append(draw(st.sampled_from(GAPS)))
    text = "".join(parts)
    start = draw(st.integers(0, max(0, len(text) - 1)))
    end = draw(st.integers(start + 1, len(text)))
    return text, start, end


def passage_of(text: str, start: int, end: int) -> RetrievedPassage:
    return RetrievedPassage(passage_id=f"d#{start}", doc_id="d", char_start=start, char_end=end, text=text[start:end],
                            title=None, url=None, published=None, score=1.0, rank=1)


@pytest.fixture(scope="module")
def splitter(nlp) -> SentenceSplitter:
    return SentenceSplitter(nlp=nlp)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(documents())
def test_sentence_offsets_are_exact_in_the_document(splitter: SentenceSplitter, case: tuple[str, int, int]) -> None:
    text, start, end = case
    sentences = splitter.split(passage_of(text, start, end))
    previous_end = start
    for sentence in sentences:
        assert text[sentence.char_start:sentence.char_end] == sentence.text
        assert sentence.text == sentence.text.strip() and sentence.text
        assert start <= previous_end <= sentence.char_start < sentence.char_end <= end
        assert "\n\n" not in sentence.text.replace(" ", "").replace("\t", "")
        previous_end = sentence.char_end
    covered = "".join(s.text for s in sentences)
    assert "".join(covered.split()) == "".join(text[start:end].split())


def test_splits_at_sentence_ends_but_not_after_abbreviations(splitter: SentenceSplitter) -> None:
    text = "It was first offered by BSkyB. Then Dr. Hannah Lindqvist of St. Aldric's spoke at 6 a.m. on Monday.\n\nNew."
    sentences = [s.text for s in splitter.split(passage_of(text, 0, len(text)))]
    assert sentences == ["It was first offered by BSkyB.",
                         "Then Dr. Hannah Lindqvist of St. Aldric's spoke at 6 a.m. on Monday.", "New."]


def test_paragraph_numbers_and_positions(splitter: SentenceSplitter) -> None:
    text = "One. Two.\n\nThree."
    sentences = splitter.split(passage_of(text, 0, len(text)))
    assert [(s.position, s.paragraph) for s in sentences] == [(0, 0), (1, 0), (2, 1)]


def test_splits_are_cached_per_passage(splitter: SentenceSplitter) -> None:
    passage = passage_of("A cached passage. It has two sentences.", 0, 39)
    assert splitter.split(passage) is splitter.split(passage)


def test_parser_gives_entities_and_dependencies(nlp) -> None:
    doc = SentenceParser(nlp=nlp).parse("Mayor Elena Ruiz opened the bridge in Brackenport on May 1.")
    assert {(e.text, e.label_) for e in doc.ents} >= {("Elena Ruiz", "PERSON"), ("May 1", "DATE")}
    assert any(t.dep_ == "ROOT" for t in doc)


def test_parser_needs_parser_and_ner() -> None:
    import spacy

    with pytest.raises(ValueError, match="lacks"):
        SentenceParser(nlp=spacy.blank("en"))
