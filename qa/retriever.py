"""Hybrid retrieval: dense (FAISS) and BM25 rankings fused by reciprocal rank fusion, optional MMR.

Usage: Retriever(store=s, embedder=e, k=5).invoke("who said …") -> list[langchain Document]
"""

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.vectorstores.utils import maximal_marginal_relevance
from pydantic import ConfigDict, Field

from index.embedding import Embedder
from index.records import PassageFilter, SearchHit
from index.store import Store
from qa.records import RetrievedPassage

RRF_K = 60  # the constant of Cormack et al. (2009); it damps the weight of the very first ranks


class Retriever(BaseRetriever):
    """Hybrid dense+BM25 retrieval over a citeqa store, as a LangChain retriever.

    Each returned Document's `page_content` is the passage text; its metadata holds `passage_id`, `doc_id`,
    `title`, `url`, `published`, `char_start`, `char_end`, `score` (fused), `rank`, and the per-ranker
    `dense_rank`/`dense_score` and `bm25_rank`/`bm25_score` (None where that ranker did not return it).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    store: Store
    embedder: Any  # an index.embedding.Embedder (a Protocol, which pydantic cannot validate)
    k: int = Field(default=5, ge=1, le=100)
    fetch_k: int = Field(default=30, ge=1, le=1000, description="candidates taken from each ranker")
    mode: str = Field(default="hybrid", pattern="^(hybrid|dense|bm25)$")
    mmr: bool = False
    mmr_lambda: float = Field(default=0.7, ge=0.0, le=1.0)
    filters: PassageFilter | None = None

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [to_document(p) for p in self.retrieve(query)]

    def retrieve(self, query: str, *, k: int | None = None, filters: PassageFilter | None = None
                 ) -> list[RetrievedPassage]:
        """The best passages for `query`, as citeqa records (what the answerers read)."""
        if not query.strip():
            raise ValueError("the query is empty")
        k = k or self.k
        filters = filters or self.filters
        fetch = max(self.fetch_k, k)
        embedder: Embedder = self.embedder
        query_vector = embedder.embed([query])[0] if self.mode != "bm25" or self.mmr else None
        dense = self.store.search(query_vector, fetch, filters=filters) if query_vector is not None and \
            self.mode != "bm25" else []
        lexical = self.store.lexical_search(query, fetch, filters=filters) if self.mode != "dense" else []
        fused = fuse(dense, lexical)
        if self.mmr and query_vector is not None and len(fused) > k:
            vectors = self.store.passage_vectors([hit.passage.passage_id for hit, _ in fused])
            order = maximal_marginal_relevance(query_vector, vectors.tolist(), lambda_mult=self.mmr_lambda, k=k)
            fused = [fused[i] for i in order]
        return [
            RetrievedPassage(passage_id=hit.passage.passage_id, doc_id=hit.passage.doc_id,
                             char_start=hit.passage.char_start, char_end=hit.passage.char_end,
                             text=hit.passage.text, title=hit.passage.title, url=hit.passage.url,
                             published=hit.passage.published, score=score, rank=rank, signals=signals)
            for rank, (hit, (score, signals)) in enumerate(fused[:k], start=1)
        ]


def fuse(dense: list[SearchHit], lexical: list[SearchHit]
         ) -> list[tuple[SearchHit, tuple[float, dict[str, float | int | None]]]]:
    """Reciprocal rank fusion: score = Σ 1/(60 + rank) over the rankers that returned the passage."""
    merged: dict[str, tuple[SearchHit, dict[str, float | int | None]]] = {}
    for name, hits in (("dense", dense), ("bm25", lexical)):
        for rank, hit in enumerate(hits, start=1):
            _, signals = merged.setdefault(hit.passage.passage_id, (hit, {
                "dense_rank": None, "dense_score": None, "bm25_rank": None, "bm25_score": None}))
            signals[f"{name}_rank"] = rank
            signals[f"{name}_score"] = float(hit.score)
    scored = []
    for hit, signals in merged.values():
        score = sum(1.0 / (RRF_K + r) for r in (signals["dense_rank"], signals["bm25_rank"]) if r is not None)
        scored.append((hit, (score, signals)))
    scored.sort(key=lambda item: (-item[1][0], item[0].passage.passage_id))
    return scored


def to_document(passage: RetrievedPassage) -> Document:
    """A LangChain Document carrying the passage's place in its article."""
    metadata = {"passage_id": passage.passage_id, "doc_id": passage.doc_id, "title": passage.title,
                "url": passage.url, "published": passage.published, "char_start": passage.char_start,
                "char_end": passage.char_end, "score": passage.score, "rank": passage.rank, **passage.signals}
    return Document(page_content=passage.text, metadata=metadata, id=passage.passage_id)


