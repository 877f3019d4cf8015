"""The vector index behind the store, as a small protocol with a FAISS implementation."""

from typing import Protocol

import faiss
import numpy as np


class VectorIndex(Protocol):
    """Id-addressed inner-product search over unit vectors."""

    @property
    def size(self) -> int:
        """How many vectors it holds."""
        ...

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add (n,) int64 ids with their (n, dimension) float32 vectors."""
        ...

    def remove(self, ids: np.ndarray) -> None:
        """Remove the vectors with these ids (unknown ids are ignored)."""
        ...

    def search(self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Return (scores, ids) of shape (n_queries, k), only among `allowed` ids if given; missing → id -1."""
        ...

    def to_bytes(self) -> bytes:
        """Serialize to bytes that `from_bytes` of the same class reads back."""
        ...


class FlatIndex:
    """Exact inner-product search (faiss.IndexFlatIP), id-mapped so a delete is cheap."""

    def __init__(self, dimension: int, *, index: faiss.Index | None = None) -> None:
        if dimension < 1:
            raise ValueError(f"dimension must be positive, got {dimension}")
        self.dimension = dimension
        self._index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))

    @classmethod
    def from_bytes(cls, data: bytes, dimension: int) -> "FlatIndex":
        """Read an index written by `to_bytes`; raise ValueError when it is not one of ours."""
        try:
            index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        except RuntimeError as exc:
            raise ValueError(f"not a FAISS index: {str(exc).splitlines()[0]}") from exc
        if not isinstance(index, faiss.IndexIDMap2) or index.d != dimension:
            raise ValueError(f"expected an id-mapped index of dimension {dimension}, got {type(index).__name__}")
        return cls(dimension, index=index)

    @property
    def size(self) -> int:
        return int(self._index.ntotal)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32),
                                     np.ascontiguousarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> None:
        if len(ids):
            self._index.remove_ids(faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64)))

    def search(self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        k = max(1, min(k, self.size)) if self.size else 1
        params = selector = None
        if allowed is not None:
            # `selector` stays referenced until the search returns: SWIG does not keep it alive for `params`.
            selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
            params = faiss.SearchParameters()
            params.sel = selector
        # One OpenMP thread: a query or two scans 10k-1M vectors in a few ms, and spinning up the team costs
        # more than it saves — on a busy machine ~20x more (bench/ask.py). Applies to the calling thread.
        faiss.omp_set_num_threads(1)
        scores, ids = self._index.search(np.ascontiguousarray(queries, dtype=np.float32), k, params=params)
        del selector
        return scores, ids

    def to_bytes(self) -> bytes:
        return faiss.serialize_index(self._index).tobytes()
