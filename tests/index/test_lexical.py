"""BM25: ranking, round trip through bytes without pickle, refusal of anything else."""

import io
import pickle

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
    parts["indices"] = parts["indices"] + 50  # points past the documents
    buffer = io.BytesIO()
    np.savez(buffer, **parts)
    with pytest.raises(ValueError, match="disagree"):
        LexicalIndex.from_bytes(buffer.getvalue())
