"""Hybrid retrieval: dense (FAISS) and BM25 rankings fused by reciprocal rank fusion, optional MMR.

Both rankings, the fusion and the passages read come from one commit of the store (`Store.reading`); only
the k passages kept are read whole, not every candidate of both rankers.

Usage: Retriever(store=s, embedder=e, k=5).invoke("who said …") -> list[langchain Document]
"""

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.vectorstores.utils import maximal_marginal_relevance
from pydantic import ConfigDict, Field

from index.embedding import Embedder
from index.records import PassageFilter
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
        with self.store.reading() as view:
            dense = view.dense(query_vector, fetch, filters=filters) if query_vector is not None and \
                self.mode != "bm25" else []
            lexical = view.lexical(query, fetch, filters=filters) if self.mode != "dense" else []
            fused = fuse(dense, lexical, view.passage_ids)
            if self.mmr and query_vector is not None and len(fused) > k:
                vectors = view.vectors([key for key, _ in fused])
                order = maximal_marginal_relevance(query_vector, vectors.tolist(), lambda_mult=self.mmr_lambda, k=k)
                fused = [fused[i] for i in order]
            fused = fused[:k]
            hits = view.hits([(key, score) for key, (score, _) in fused])
        return [
            RetrievedPassage(passage_id=hit.passage.passage_id, doc_id=hit.passage.doc_id,
                             char_start=hit.passage.char_start, char_end=hit.passage.char_end,
                             text=hit.passage.text, title=hit.passage.title, url=hit.passage.url,
                             published=hit.passage.published, score=score, rank=rank, signals=signals)
            for rank, (hit, (_, (score, signals))) in enumerate(zip(hits, fused, strict=True), start=1)
        ]


def fuse(dense: Sequence[tuple[int, float]], lexical: Sequence[tuple[int, float]],
         passage_ids: Callable[[Sequence[int]], Mapping[int, str]]
         ) -> list[tuple[int, tuple[float, dict[str, float | int | None]]]]:
    """Reciprocal rank fusion of two (key, score) rankings: score = Σ 1/(60 + rank) over the rankers that
    returned the passage; ties broken by passage id, looked up (`passage_ids(keys)`) only for tied keys —
    one ranking alone has none."""
    merged: dict[int, dict[str, float | int | None]] = {}
    for name, ranking in (("dense", dense), ("bm25", lexical)):
        for rank, (key, ranker_score) in enumerate(ranking, start=1):
            signals = merged.setdefault(key, {"dense_rank": None, "dense_score": None, "bm25_rank": None,
                                              "bm25_score": None})
            signals[f"{name}_rank"] = rank
            signals[f"{name}_score"] = float(ranker_score)
    scored = []
    for key, signals in merged.items():
        score = sum(1.0 / (RRF_K + r) for r in (signals["dense_rank"], signals["bm25_rank"]) if r is not None)
        scored.append((key, (score, signals)))
    shared = Counter(score for _, (score, _) in scored)
    tied = [key for key, (score, _) in scored if shared[score] > 1]
    names = passage_ids(tied) if tied else {}
    scored.sort(key=lambda item: (-item[1][0], names.get(item[0], "")))
    return scored


def to_document(passage: RetrievedPassage) -> Document:
    """A LangChain Document carrying the passage's place in its article."""
    metadata = {"passage_id": passage.passage_id, "doc_id": passage.doc_id, "title": passage.title,
                "url": passage.url, "published": passage.published, "char_start": passage.char_start,
                "char_end": passage.char_end, "score": passage.score, "rank": passage.rank, **passage.signals}
    return Document(page_content=passage.text, metadata=metadata, id=passage.passage_id)


