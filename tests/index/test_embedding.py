"""The MiniLM embedder: its vectors equal sentence-transformers' `encode`, and its cache of recent one-text calls
(questions), which the retriever and answerer share."""

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
    forward = minilm._forward

    def counting(texts: Any) -> Any:
        calls.append(list(texts))
        return forward(texts)

    monkeypatch.setattr(minilm, "_forward", counting)
    yield calls


def reference(minilm: SentenceTransformerEmbedder, texts: list[str]) -> np.ndarray:
    """sentence-transformers' own `encode` of each text alone (no padding to share)."""
    return np.stack([minilm._model.encode([t], normalize_embeddings=True, convert_to_numpy=True,
                                          show_progress_bar=False)[0] for t in texts])


def test_vectors_equal_sentence_transformers_encode(minilm: SentenceTransformerEmbedder) -> None:
    question = ["  Who built the reference pier?  "]
    np.testing.assert_allclose(minilm.embed(question), reference(minilm, question), atol=1e-6)
    # More texts than a batch, of very different lengths: ordered by length, padded per batch, put back.
    texts = [("word " * (3 + 37 * i % 200)).strip() + f" {i}." for i in range(19)]
    vectors = minilm.embed(texts)
    assert vectors.dtype == np.float32 and vectors.shape == (19, minilm.dimension)
    np.testing.assert_allclose(vectors, reference(minilm, texts), atol=1e-5)


def prompted(model: Any) -> None:
    model.prompts, model.default_prompt_name = {"query": "query: "}, "query"


def truncated(model: Any) -> None:
    model.truncate_dim = 64


def unnormalized(model: Any) -> None:
    assert type(model[len(model) - 1]).__name__ == "Normalize"
    del model[len(model) - 1]


@pytest.mark.parametrize("configure", [prompted, truncated, unnormalized])
def test_a_model_folder_setting_is_honoured_as_encode_honours_it(configure: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A model folder may name a default prompt or `truncate_dim`, or end without a Normalize module."""
    from sentence_transformers import SentenceTransformer

    load = SentenceTransformer.__init__

    def configured(self: Any, *args: Any, **kwargs: Any) -> None:
        load(self, *args, **kwargs)
        configure(self)

    monkeypatch.setattr(SentenceTransformer, "__init__", configured)
    embedder = SentenceTransformerEmbedder()
    texts = ["Where does the configured ferry dock?", "The configured ferry docks at the old pier every morning."]
    expected = embedder._model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    raw = embedder._model.encode(texts, prompt="", convert_to_numpy=True)
    # Each setting changes what encode returns, so a path that ignored it would differ.
    assert expected.shape != raw.shape or not np.allclose(expected, raw, atol=1e-3)
    vectors = embedder.embed(texts)
    assert vectors.dtype == np.float32 and vectors.shape == expected.shape == (2, embedder.dimension)
    np.testing.assert_allclose(vectors, expected, atol=1e-6)


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
