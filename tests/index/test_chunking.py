"""Chunk spans: inside the text, sentence-aligned, covering it, overlapping as configured."""

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from index.chunking import Chunker
from index.embedding import HashEmbedder
from index.sentences import SentenceSplitter

SPLITTER = SentenceSplitter()
HASH = HashEmbedder()

words = st.text(alphabet=st.characters(codec="utf-8", categories=("L", "N")), min_size=1, max_size=12)
sentence = st.builds(lambda ws, end: " ".join(ws) + end, st.lists(words, min_size=1, max_size=40),
                     st.sampled_from([".", "!", "?", "", "."]))
paragraph = st.builds(" ".join, st.lists(sentence, min_size=1, max_size=8))
article = st.builds("\n\n".join, st.lists(paragraph, min_size=1, max_size=6))


def covered(text: str, spans: list[tuple[int, int]]) -> bool:
    mask = [False] * len(text)
    for start, end in spans:
        for i in range(start, end):
            mask[i] = True
    return all(mask[i] for i, ch in enumerate(text) if not ch.isspace())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=article, max_tokens=st.integers(4, 60), overlap=st.integers(0, 30))
def test_chunks_lie_inside_the_text_and_cover_it(text: str, max_tokens: int, overlap: int) -> None:
    overlap = min(overlap, max_tokens - 1)
    chunker = Chunker(max_tokens=max_tokens, overlap_tokens=overlap, token_spans=HASH.token_spans,
                      splitter=SPLITTER)
    chunks = chunker.chunk(text)
    assert chunks, "a non-empty text has at least one passage"
    for chunk in chunks:
        assert 0 <= chunk.char_start < chunk.char_end <= len(text)
        piece = text[chunk.char_start:chunk.char_end]
        assert piece == piece.strip(), "passages start and end on text, not whitespace"
        assert len(HASH.token_spans([piece])[0]) <= max_tokens
    starts = [c.char_start for c in chunks]
    assert starts == sorted(set(starts)), "passages advance through the text"
    assert covered(text, [(c.char_start, c.char_end) for c in chunks])


@settings(max_examples=100, deadline=None)
@given(text=article, max_tokens=st.integers(20, 80))
def test_passages_end_at_sentence_ends_unless_a_sentence_is_too_long(text: str, max_tokens: int) -> None:
    sentences = SPLITTER.spans(text)
    ends = {end for _, end in sentences}
    long_sentences = [(s, e) for s, e in sentences if len(HASH.token_spans([text[s:e]])[0]) > max_tokens]
    chunker = Chunker(max_tokens=max_tokens, overlap_tokens=0, token_spans=HASH.token_spans, splitter=SPLITTER)
    for chunk in chunker.chunk(text):
        inside_long = any(s <= chunk.char_end <= e for s, e in long_sentences)
        assert chunk.char_end in ends or inside_long


def test_overlap_repeats_whole_trailing_sentences() -> None:
    text = " ".join(f"Sentence number {i} has five words." for i in range(12))
    # each sentence is 7 hash tokens (5 words, a number, a period)
    chunker = Chunker(max_tokens=21, overlap_tokens=7, token_spans=HASH.token_spans, splitter=SPLITTER)
    chunks = chunker.chunk(text)
    pieces = [text[c.char_start:c.char_end] for c in chunks]
    assert pieces[0].count("Sentence number") == 3
    for before, after in zip(pieces, pieces[1:], strict=False):
        last_sentence = re.findall(r"Sentence number \d+ has five words\.", before)[-1]
        assert after.startswith(last_sentence)


def test_without_overlap_passages_do_not_share_text() -> None:
    text = " ".join(f"Item {i} is here." for i in range(30))
    chunks = Chunker(max_tokens=10, overlap_tokens=0, token_spans=HASH.token_spans).chunk(text)
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert before.char_end <= after.char_start


def test_a_sentence_longer_than_the_limit_is_cut_at_word_starts() -> None:
    text = "Intro sentence. " + " ".join(f"word{i}" for i in range(50)) + " end."
    chunks = Chunker(max_tokens=10, overlap_tokens=2, token_spans=HASH.token_spans).chunk(text)
    assert covered(text, [(c.char_start, c.char_end) for c in chunks])
    for chunk in chunks:
        assert chunk.char_start == 0 or text[chunk.char_start - 1].isspace()


def test_paragraph_breaks_end_sentences() -> None:
    text = "A heading without a period\n\nThe body starts here. It goes on."
    assert SPLITTER.spans(text) == [(0, 26), (28, 49), (50, 61)]


def test_real_tokenizer_spans_fit_the_model(minilm) -> None:
    text = ("The Harbor Bridge reopened on Wednesday. " * 30).strip()
    chunks = Chunker(max_tokens=50, overlap_tokens=10, token_spans=minilm.token_spans).chunk(text)
    assert len(chunks) > 1
    for chunk in chunks:
        assert len(minilm.token_spans([text[chunk.char_start:chunk.char_end]])[0]) <= 50


@pytest.mark.parametrize(("max_tokens", "overlap", "message"), [
    (0, 0, "max_tokens must be at least 1"),
    (10, 10, r"overlap_tokens must be in \[0, max_tokens\)"),
    (10, -1, r"overlap_tokens must be in \[0, max_tokens\)"),
])
def test_bad_sizes_fail_at_construction(max_tokens: int, overlap: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Chunker(max_tokens=max_tokens, overlap_tokens=overlap, token_spans=HASH.token_spans)


def test_an_opening_quote_starts_the_next_sentence() -> None:
    text = 'He had "a clear plan for the team." "I spoke to him," Almeida said. Done.'
    assert [text[s:e] for s, e in SPLITTER.spans(text)] == [
        'He had "a clear plan for the team."', '"I spoke to him," Almeida said.', "Done."]
