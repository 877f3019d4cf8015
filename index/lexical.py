"""BM25 over passages (bm25s's Lucene variant), addressed by the same int64 ids as the vectors, updated per commit.

bm25s builds its score matrix in a Python loop over every document and cannot add or remove one, so a
commit that rebuilt it re-read and re-tokenized the whole index (most of a small commit's time, and growing
with the index). This index keeps what the scores are made of, the term counts, term-major (for each
vocabulary term: the positions of the passages holding it and how often), and makes the scores from them
with numpy: an update tokenizes only the added passages, drops the removed ones' entries and recomputes the
scores (which all change, as IDF and the average length do) in a few vectorized passes. The formulas are
bm25s's Lucene ones (tests/index/test_lexical.py compares them with bm25s's own build), and bm25s ranks.

Serialized as one `.npz` of plain arrays (the vocabulary as UTF-8 JSON bytes), read back with
`allow_pickle=False`: an index file can hold numbers and text, never code. The scores are not stored (they
follow from the counts); a file of the earlier format is refused like any other, and the store rebuilds it.
"""

import io
import json
import logging
import re
import zipfile
from collections import Counter
from collections.abc import Sequence

import bm25s
import numpy as np
import Stemmer
from bm25s.stopwords import STOPWORDS_EN

# bm25s sets its own logger to DEBUG; its per-build chatter is not for our users.
logging.getLogger("bm25s").setLevel(logging.WARNING)

_TOKEN = re.compile(r"(?u)\b\w\w+\b")
_STOPWORDS = frozenset(STOPWORDS_EN)
_STEMMER = Stemmer.Stemmer("english")
_FORMAT = 2
_K1, _B = 1.5, 0.75  # bm25s's defaults
_MAX_COUNT = np.iinfo(np.uint16).max  # a passage is ~200 word pieces: a count never comes near it


def tokenize(text: str) -> list[str]:
    """Lower-cased, stop-word-free, Snowball-stemmed word tokens."""
    words = [w for w in _TOKEN.findall(text.lower()) if w not in _STOPWORDS]
    return _STEMMER.stemWords(words)


class LexicalIndex:
    """Usage: LexicalIndex.build(ids, texts).search("bridge repair cost", k=10) -> (ids, scores);
    index.updated(remove=old_ids, add_ids=new_ids, add_texts=new_texts) -> a new index (this one unchanged)."""

    def __init__(self, *, ids: np.ndarray, vocab: dict[str, int], indptr: np.ndarray, positions: np.ndarray,
                 counts: np.ndarray) -> None:
        self._ids = ids
        self._vocab = vocab
        self._indptr, self._positions, self._counts = indptr, positions, counts
        self._model = bm25s.BM25(k1=_K1, b=_B, method="lucene")
        self._model.vocab_dict = vocab
        self._model.scores = _scores(ids.size, indptr, positions, counts)
        self._model.nonoccurrence_array = None  # the Lucene variant has none

    @classmethod
    def build(cls, ids: np.ndarray, texts: Sequence[str]) -> "LexicalIndex":
        """Index `texts`, where `texts[i]` is the passage with id `ids[i]`."""
        empty = cls(ids=np.empty(0, np.int64), vocab={}, indptr=np.zeros(1, np.int64),
                    positions=np.empty(0, np.int32), counts=np.empty(0, np.uint16))
        return empty.updated(remove=np.empty(0, np.int64), add_ids=ids, add_texts=texts)

    def updated(self, *, remove: np.ndarray, add_ids: np.ndarray, add_texts: Sequence[str]) -> "LexicalIndex":
        """This index without the passages `remove` and with `add_texts` (ids `add_ids`) after the others."""
        add_ids = np.asarray(add_ids, dtype=np.int64)
        if len(add_ids) != len(add_texts):
            raise ValueError(f"{len(add_ids)} ids but {len(add_texts)} texts")
        keep = ~np.isin(self._ids, np.asarray(remove, dtype=np.int64))
        kept_entries = keep[self._positions]
        new_position = np.cumsum(keep) - 1
        terms = [_entry_terms(self._indptr)[kept_entries]]
        positions = [new_position[self._positions[kept_entries]]]
        counts = [self._counts[kept_entries]]

        vocab = dict(self._vocab)  # this index keeps serving readers while the next one is made
        base = int(keep.sum())
        added_terms: list[int] = []
        added_positions: list[int] = []
        added_counts: list[int] = []
        for offset, text in enumerate(add_texts):
            tally = Counter(vocab.setdefault(token, len(vocab)) for token in tokenize(text))
            added_terms += tally.keys()
            added_counts += tally.values()
            added_positions += [base + offset] * len(tally)
        terms.append(np.asarray(added_terms, dtype=np.int64))
        positions.append(np.asarray(added_positions, dtype=np.int64))
        counts.append(np.minimum(np.asarray(added_counts, dtype=np.int64), _MAX_COUNT).astype(np.uint16))

        all_terms = np.concatenate(terms)
        df = np.bincount(all_terms, minlength=len(vocab))
        alive = df > 0
        if 2 * int(np.count_nonzero(~alive)) > len(vocab):  # words only removed passages had: forget them
            renumber = np.cumsum(alive) - 1
            all_terms = renumber[all_terms]
            vocab = {word: int(renumber[i]) for word, i in vocab.items() if alive[i]}
            df = df[alive]
        # Term-major; within a term by position: the kept entries already are, the added ones follow them.
        order = np.argsort(all_terms, kind="stable")
        indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
        np.cumsum(df, out=indptr[1:])
        return LexicalIndex(ids=np.concatenate([self._ids[keep], add_ids]), vocab=vocab, indptr=indptr,
                            positions=np.concatenate(positions)[order].astype(np.int32),
                            counts=np.concatenate(counts)[order])

    @property
    def size(self) -> int:
        return len(self._ids)

    def search(self, query: str, k: int, *, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Ids and BM25 scores of the best k passages (among `allowed` ids if given) sharing a query term."""
        token_ids = [self._vocab[t] for t in tokenize(query) if t in self._vocab]
        if not token_ids or not self.size:
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
        words = sorted(self._vocab, key=self._vocab.__getitem__)  # the term ids are the list's positions
        header = {"format": _FORMAT, "vocab": words}
        np.savez(buffer, header=np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8),
                 ids=self._ids, indptr=self._indptr, positions=self._positions, counts=self._counts)
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
            if not isinstance(header, dict) or header.get("format") != _FORMAT:
                raise ValueError(f"format {header.get('format') if isinstance(header, dict) else '?'}, "
                                 f"expected {_FORMAT}")
            ids, indptr, positions, counts = (arrays[k] for k in ("ids", "indptr", "positions", "counts"))
        words = header["vocab"]
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words) or len(set(words)) != len(words):
            raise ValueError("the vocabulary is not a list of distinct words")
        consistent = (
            ids.dtype == np.int64 and ids.ndim == 1 and len(np.unique(ids)) == len(ids)
            and indptr.dtype == np.int64 and positions.dtype == np.int32 and counts.dtype == np.uint16
            and len(indptr) == len(words) + 1 and indptr[0] == 0 and bool(np.all(np.diff(indptr) >= 0))
            and indptr[-1] == len(positions) == len(counts)
            and (not len(positions) or 0 <= int(positions.min()) <= int(positions.max()) < len(ids))
            and bool(np.all(counts > 0))
        )
        if not consistent:
            raise ValueError("lexical index arrays disagree with its header")
        return cls(ids=ids, vocab={w: i for i, w in enumerate(words)}, indptr=indptr, positions=positions,
                   counts=counts)


def _entry_terms(indptr: np.ndarray) -> np.ndarray:
    """The term of each entry of a term-major layout."""
    return np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), np.diff(indptr))


def _scores(num_docs: int, indptr: np.ndarray, positions: np.ndarray, counts: np.ndarray) -> dict:
    """bm25s's score matrix (Lucene: idf = ln(1 + (N - df + 0.5) / (df + 0.5)), tf / (tf + k1 (1 - b + b
    len / avg len))) in its layout: data and passage positions term-major, indptr per term."""
    tf = counts.astype(np.float64)
    lengths = np.bincount(positions, weights=tf, minlength=num_docs)
    if len(tf):
        df = np.diff(indptr).astype(np.float64)
        idf = np.log1p((num_docs - df + 0.5) / (df + 0.5)).astype(np.float32)
        norm = _K1 * ((1 - _B) + _B * lengths / lengths.mean())
        data = (idf[_entry_terms(indptr)] * (tf / (tf + norm[positions]))).astype(np.float32)
    else:
        data = np.empty(0, np.float32)
    return {"data": data, "indices": positions, "indptr": indptr, "num_docs": num_docs}
