"""BM25: ranking, bm25s's own scores, updates equal to a rebuild, round trip through bytes without pickle,
refusal of anything else."""

import io
import json
import pickle
import random

import bm25s
import numpy as np
import pytest

from index.lexical import LexicalIndex, tokenize

TEXTS = ["The Harbor Bridge repairs cost $48.6 million.", "The council approved the budget 7-2.",
         "A bridge over the river was repaired last year.", "Dockworkers went on strike."]


def test_tokenize_stems_and_drops_stopwords() -> None:
    assert tokenize("The repairs, REPAIRED and repairing continues") == ["repair", "repair", "repair",
                                                                                "continu"]


def test_search_ranks_shared_terms_and_breaks_ties_by_id() -> None:
    index = LexicalIndex.build(np.array([7, 3, 5, 9]), TEXTS)
    ids, scores = index.search("bridge repair cost", k=10)
    assert ids.tolist() == [7, 5]
    assert scores[0] > scores[1] > 0
    assert index.search("zebra", k=3)[0].size == 0
    tied = LexicalIndex.build(np.array([4, 2]), ["same words here", "same words here"])
    assert tied.search("words", k=2)[0].tolist() == [2, 4]


def test_allowed_ids_filter() -> None:
    index = LexicalIndex.build(np.array([7, 3, 5, 9]), TEXTS)
    assert index.search("bridge", k=10, allowed=np.array([5]))[0].tolist() == [5]
    assert index.search("bridge", k=10, allowed=np.array([], dtype=np.int64))[0].size == 0


def test_round_trip_through_bytes() -> None:
    index = LexicalIndex.build(np.array([7, 3, 5, 9]), TEXTS)
    again = LexicalIndex.from_bytes(index.to_bytes())
    for query in ("bridge repair", "budget", "strike dockworkers"):
        a, b = index.search(query, 4), again.search(query, 4)
        assert a[0].tolist() == b[0].tolist() and np.allclose(a[1], b[1])
    empty = LexicalIndex.from_bytes(LexicalIndex.build(np.empty(0, np.int64), []).to_bytes())
    assert empty.size == 0 and empty.search("anything", 3)[0].size == 0


class _Boom:
    def __reduce__(self):
        return (print, ("unpickled!",))


@pytest.mark.parametrize("payload", [
    b"", b"not an npz", pickle.dumps(_Boom()),
    LexicalIndex.build(np.array([1, 2]), ["a b", "c d"]).to_bytes()[:100],
])
def test_anything_else_is_refused(payload: bytes, capsys) -> None:
    with pytest.raises(ValueError, match="lexical index"):
        LexicalIndex.from_bytes(payload)
    assert "unpickled" not in capsys.readouterr().out


def test_an_npz_holding_an_object_array_is_refused() -> None:
    buffer = io.BytesIO()
    np.savez(buffer, header=np.array([_Boom()], dtype=object))
    with pytest.raises(ValueError, match="not a citeqa lexical index"):
        LexicalIndex.from_bytes(buffer.getvalue())


def test_inconsistent_arrays_are_refused() -> None:
    good = LexicalIndex.build(np.array([1, 2]), ["alpha beta", "gamma"])
    with np.load(io.BytesIO(good.to_bytes())) as arrays:
        parts = {k: arrays[k] for k in arrays.files}
    parts["positions"] = parts["positions"] + 50  # points past the documents
    buffer = io.BytesIO()
    np.savez(buffer, **parts)
    with pytest.raises(ValueError, match="disagree"):
        LexicalIndex.from_bytes(buffer.getvalue())


WORDS = ["bridge", "council", "budget", "strike", "river", "harbor", "repair", "cost", "vote", "tunnel", "ferry",
         "mayor", "port", "crane", "wage", "union", "storm", "flood", "school", "grant", "museum", "rail", "bus",
         "fare", "tax"]


def _corpus(rng: random.Random, count: int) -> list[str]:
    return [" ".join(rng.choices(WORDS, k=rng.randint(0, 30))).capitalize() + "." for _ in range(count)]


def _all_scores(index: LexicalIndex, ids: list[int]) -> np.ndarray:
    """Every (passage, word) score, passages in `ids` order: one search per word over the whole index."""
    table = np.zeros((len(ids), len(WORDS)))
    row = {vid: i for i, vid in enumerate(ids)}
    for j, word in enumerate(WORDS):
        found, scores = index.search(word, k=len(ids) or 1)
        for vid, score in zip(found.tolist(), scores.tolist(), strict=True):
            table[row[vid], j] = score
    return table


def test_scores_equal_bm25s_own_build() -> None:
    texts = _corpus(random.Random(1), 200)
    ours = LexicalIndex.build(np.arange(200, dtype=np.int64), texts)
    vocab: dict[str, int] = {}
    token_ids = [[vocab.setdefault(t, len(vocab)) for t in tokenize(text)] for text in texts]
    reference = bm25s.BM25()  # k1 1.5, b 0.75, Lucene: the defaults this index uses
    reference.index(bm25s.tokenization.Tokenized(ids=token_ids, vocab=vocab), show_progress=False)
    for query in ("bridge repair", "tax", "council vote budget wage", "ferry ferry port"):
        found, scores = ours.search(query, k=200)
        expected = reference.get_scores([t for t in tokenize(query) if t in vocab])
        assert found.size == np.count_nonzero(expected > 0) > 0
        assert np.allclose(scores, expected[found], rtol=1e-5, atol=1e-6)


def test_updates_equal_a_rebuild_and_survive_bytes() -> None:
    rng = random.Random(7)
    texts = dict(zip(range(1, 61), _corpus(rng, 60), strict=True))
    index = LexicalIndex.build(np.array(list(texts), dtype=np.int64), list(texts.values()))
    next_id = 61
    for step in range(12):
        remove = rng.sample(sorted(texts), k=min(len(texts), rng.randint(0, 15)))
        added = dict(zip(range(next_id, next_id + rng.randint(0, 12)), _corpus(rng, 12), strict=False))
        next_id += len(added)
        index = index.updated(remove=np.array(remove, dtype=np.int64), add_ids=np.array(list(added), np.int64),
                              add_texts=list(added.values()))
        for vid in remove:
            del texts[vid]
        texts.update(added)
        if step % 4 == 3:
            index = LexicalIndex.from_bytes(index.to_bytes())
        ids = sorted(texts)
        rebuilt = LexicalIndex.build(np.array(ids, dtype=np.int64), [texts[i] for i in ids])
        assert index.size == rebuilt.size == len(ids)
        assert np.allclose(_all_scores(index, ids), _all_scores(rebuilt, ids), rtol=1e-5, atol=1e-6)


def test_updating_leaves_the_old_index_as_it_was_and_forgets_removed_words() -> None:
    index = LexicalIndex.build(np.array([1, 2, 3]), ["zebra crossing", "bridge repair", "bridge toll"])
    before = index.search("bridge zebra", k=3)
    smaller = index.updated(remove=np.array([1, 3]), add_ids=np.empty(0, np.int64), add_texts=[])
    assert smaller.search("zebra", k=3)[0].size == 0 and smaller.search("bridge", k=3)[0].tolist() == [2]
    after = index.search("bridge zebra", k=3)
    assert before[0].tolist() == after[0].tolist() and np.array_equal(before[1], after[1])
    words = json.loads(np.load(io.BytesIO(smaller.to_bytes()))["header"].tobytes())["vocab"]
    assert sorted(words) == ["bridg", "repair"]  # "zebra", "cross", "toll" went with their passages
    with pytest.raises(ValueError, match="2 ids but 1 texts"):
        index.updated(remove=np.empty(0, np.int64), add_ids=np.array([8, 9]), add_texts=["one"])


def test_a_file_of_the_earlier_format_is_refused() -> None:
    buffer = io.BytesIO()
    header = {"format": 1, "k1": 1.5, "b": 0.75, "method": "lucene", "num_docs": 1, "vocab": {"a": 0}}
    np.savez(buffer, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8), ids=np.array([1]))
    with pytest.raises(ValueError, match="format 1, expected 2"):
        LexicalIndex.from_bytes(buffer.getvalue())
