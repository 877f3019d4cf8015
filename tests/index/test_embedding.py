"""The MiniLM embedder's cache of recent one-text calls (questions), which the retriever and answerer share."""

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from index.embedding import SentenceTransformerEmbedder

pytestmark = pytest.mark.slow


@pytest.fixture
def counted(minilm: SentenceTransformerEmbedder, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[list[str]]]:
    """Every list of texts that reaches the model, in order."""
    calls: list[list[str]] = []
    encode = minilm._model.encode

    def counting(texts: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(list(texts))
        return encode(texts, *args, **kwargs)

    monkeypatch.setattr(minilm._model, "encode", counting)
    yield calls


def test_a_question_embedded_again_is_not_encoded_again(minilm: SentenceTransformerEmbedder,
                                                        counted: list[list[str]]) -> None:
    question = "Who opened the cached bridge in 1907?"
    first = minilm.embed([question])
    again = minilm.embed([question])
    assert counted == [[question]]
    np.testing.assert_array_equal(first, again)


def test_a_small_batch_encodes_only_what_is_not_cached(minilm: SentenceTransformerEmbedder,
                                                       counted: list[list[str]]) -> None:
    question = "When did the cached ferry stop running?"
    sentences = ["The ferry stopped running in 1952.", "A bridge replaced it."]
    alone = minilm.embed([question])
    batch = minilm.embed([question, *sentences])
    assert counted == [[question], sentences]
    np.testing.assert_array_equal(batch[0], alone[0])
    fresh = minilm.embed(sentences)  # sentences (several texts a call) are not kept
    np.testing.assert_allclose(batch[1:], fresh, atol=1e-5)
    assert batch.dtype == np.float32 and batch.shape == (3, minilm.dimension)


def test_large_calls_bypass_the_cache(minilm: SentenceTransformerEmbedder, counted: list[list[str]]) -> None:
    question = "What does the cached lighthouse guard?"
    minilm.embed([question])
    texts = [question] + [f"Passage number {i} about the harbour." for i in range(40)]
    vectors = minilm.embed(texts)
    assert sum(len(c) for c in counted) == 1 + len(texts)  # everything encoded, the question again
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_the_cache_returns_copies(minilm: SentenceTransformerEmbedder) -> None:
    question = "Where was the cached treaty signed?"
    first = minilm.embed([question])
    first[0, :] = 0.0
    np.testing.assert_allclose(np.linalg.norm(minilm.embed([question])[0]), 1.0, atol=1e-5)
