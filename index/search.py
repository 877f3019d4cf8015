"""Dense passage search: embed the query, ask the store."""

from index.embedding import Embedder
from index.records import SearchHit
from index.store import PassageStore


class DenseSearcher:
    """Usage: DenseSearcher(store=s, embedder=e).search("harbor bridge cost", k=5)"""

    def __init__(self, *, store: PassageStore, embedder: Embedder) -> None:
        info = store.info()
        if info.dimension != embedder.dimension:
            raise ValueError(f"store dimension {info.dimension} != embedder dimension {embedder.dimension}")
        self._store = store
        self._embedder = embedder

    def search(self, query: str, *, k: int = 5) -> list[SearchHit]:
        """The k passages closest in meaning to `query`, best first."""
        if not query.strip():
            raise ValueError("the query is empty")
        vector = self._embedder.embed([query])[0]
        return self._store.search(vector, k)
