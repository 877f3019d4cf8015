"""BM25 over passages (bm25s, Lucene variant), addressed by the same int64 ids as the vectors.

Serialized as one `.npz` of plain arrays (the vocabulary as UTF-8 JSON bytes), read back with
`allow_pickle=False`: an index file can hold numbers and text, never code.
"""

import io
import json
import logging
import re
import zipfile

import bm25s
import numpy as np
import Stemmer
from bm25s.stopwords import STOPWORDS_EN

# bm25s sets its own logger to DEBUG; its per-build chatter is not for our users.
logging.getLogger("bm25s").setLevel(logging.WARNING)

_TOKEN = re.compile(r"(?u)\b\w\w+\b")
_STOPWORDS = frozenset(STOPWORDS_EN)
_STEMMER = Stemmer.Stemmer("english")
_FORMAT = 1


def tokenize(text: str) -> list[str]:
    """Lower-cased, stop-word-free, Snowball-stemmed word tokens."""
    words = [w for w in _TOKEN.findall(text.lower()) if w not in _STOPWORDS]
    return _STEMMER.stemWords(words)


class LexicalIndex:
    """Usage: LexicalIndex.build(ids, texts).search("bridge repair cost", k=10) -> (ids, scores)"""

    def __init__(self, *, ids: np.ndarray, model: bm25s.BM25) -> None:
        self._ids = np.asarray(ids, dtype=np.int64)
        self._model = model

    @classmethod
    def build(cls, ids: np.ndarray, texts: list[str]) -> "LexicalIndex":
        """Index `texts`, where `texts[i]` is the passage with id `ids[i]`."""
        if len(ids) != len(texts):
            raise ValueError(f"{len(ids)} ids but {len(texts)} texts")
        vocab: dict[str, int] = {}
        token_ids = [[vocab.setdefault(tok, len(vocab)) for tok in tokenize(text)] for text in texts]
        model = bm25s.BM25()
        if vocab:
            model.index(bm25s.tokenization.Tokenized(ids=token_ids, vocab=vocab), show_progress=False)
        else:  # no passage has a searchable word (or there are none): nothing can match
            model.vocab_dict = {}
            model.scores = _empty_scores(len(texts))
        return cls(ids=np.asarray(ids, dtype=np.int64), model=model)

    @property
    def size(self) -> int:
        return len(self._ids)

    def search(self, query: str, k: int, *, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Ids and BM25 scores of the best k passages (among `allowed` ids if given) sharing a query term."""
        vocab = self._model.vocab_dict
        token_ids = [vocab[t] for t in tokenize(query) if t in vocab]
        if not token_ids:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        scores = self._model.get_scores_from_ids(token_ids)
        if allowed is not None:
            scores = np.where(np.isin(self._ids, allowed), scores, 0.0)
        k = min(k, int(np.count_nonzero(scores > 0)))
        if k <= 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.lexsort((self._ids[top], -scores[top]))]  # ties broken by id: deterministic
        return self._ids[top], scores[top]

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        scores = self._model.scores
        header = {"format": _FORMAT, "k1": self._model.k1, "b": self._model.b, "method": self._model.method,
                  "num_docs": int(scores["num_docs"]), "vocab": self._model.vocab_dict}
        np.savez(buffer, header=np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8),
                 ids=self._ids, data=scores["data"], indices=scores["indices"], indptr=scores["indptr"])
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "LexicalIndex":
        """Read what `to_bytes` wrote; raise ValueError on anything else."""
        try:
            return cls._parse(data)
        except (OSError, ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError, EOFError,
                zipfile.BadZipFile) as exc:
            raise ValueError(f"not a citeqa lexical index: {exc}") from exc

    @classmethod
    def _parse(cls, data: bytes) -> "LexicalIndex":
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            header = json.loads(arrays["header"].tobytes().decode("utf-8"))
            ids, data_, indices, indptr = (arrays[k] for k in ("ids", "data", "indices", "indptr"))
        if not isinstance(header, dict) or header.get("format") != _FORMAT or not isinstance(header["vocab"], dict):
            raise ValueError("unknown format")
        num_docs = int(header["num_docs"])
        consistent = (
            ids.dtype == np.int64 and len(ids) == num_docs
            and len(indptr) == max(len(header["vocab"]), 1)
            and indptr[0] == 0 and indptr[-1] == len(data_) == len(indices)
            and bool(np.all(np.diff(indptr) >= 0))
            and (not len(indices) or 0 <= int(indices.min()) <= int(indices.max()) < num_docs)
            and all(isinstance(v, int) and 0 <= v < len(indptr) for v in header["vocab"].values())
        )
        if not consistent:
            raise ValueError("lexical index arrays disagree with its header")
        model = bm25s.BM25(k1=float(header["k1"]), b=float(header["b"]), method=str(header["method"]))
        model.vocab_dict = header["vocab"]
        model.unique_token_ids_set = set(model.vocab_dict.values())
        model.scores = {"data": data_, "indices": indices, "indptr": indptr, "num_docs": num_docs}
        model.nonoccurrence_array = None  # the Lucene variant has none
        return cls(ids=ids, model=model)


def _empty_scores(num_docs: int) -> dict:
    return {"data": np.empty(0, np.float32), "indices": np.empty(0, np.int32), "indptr": np.zeros(1, np.int64),
            "num_docs": num_docs}
