"""Articles → chunked, embedded, committed: upsert by document, in crash-safe batches."""

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from index.articles import Article, with_title
from index.chunking import Chunk, Chunker
from index.embedding import Embedder
from index.loaders import Skipped, load_paths
from index.records import PreparedDocument, Status
from index.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestedDocument:
    """What happened to one document."""

    doc_id: str
    source: str
    status: Status
    passages: int


@dataclass(frozen=True)
class IngestReport:
    """Every document taken in and everything skipped."""

    documents: list[IngestedDocument] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def embedding_text(article: Article, passage: str) -> str:
    """What is embedded for a passage: the passage with its article's title."""
    return with_title(article.title, passage)


class Indexer:
    """Upserts articles into a store. Usage: Indexer(store=s, embedder=e, chunker=c).ingest_paths([p])

    Unchanged content is not re-embedded; changed content replaces the old version. Work is committed
    every `commit_every` passages, so a crash loses at most the batch in flight.
    """

    def __init__(self, *, store: Store, embedder: Embedder, chunker: Chunker, commit_every: int = 4096) -> None:
        if commit_every < 1:
            raise ValueError(f"commit_every must be at least 1, got {commit_every}")
        self._store = store
        self._embedder = embedder
        self._chunker = chunker
        self._commit_every = commit_every

    def ingest_paths(self, paths: Iterable[Path], *, progress: bool = False) -> IngestReport:
        """Load every file under `paths` (never the index's own files) and ingest what can be read."""
        return self.ingest(load_paths(paths, exclude=self._store.directory), progress=progress)

    def ingest(self, items: Iterable[Article | Skipped], *, progress: bool = False) -> IngestReport:
        """Ingest articles; `Skipped` items pass through to the report.

        Articles are chunked as they come and committed every `commit_every` passages: the first commit
        lands after one batch, not after chunking the whole input (a million passages take ~15 minutes to
        chunk), and the progress bar moves from the start.
        """
        report = IngestReport()
        articles = self._unique(items, report)
        states = self._store.document_states([a.doc_id for a in articles])
        batch: list[tuple[Article, str, list[Chunk]]] = []
        passages = 0
        with tqdm(total=len(articles), unit="article", desc="indexing", disable=not progress or None) as bar:
            for article in articles:
                content_hash = article.content_hash()
                state = states.get(article.doc_id)
                if state is not None and state[0] == content_hash:
                    report.documents.append(IngestedDocument(article.doc_id, article.source, "unchanged", state[1]))
                    bar.update(1)
                    continue
                chunks = self._chunker.chunk(article.text)
                batch.append((article, content_hash, chunks))
                passages += len(chunks)
                if passages >= self._commit_every:
                    self._commit(batch, report, bar)
                    batch, passages = [], 0
            if batch:
                self._commit(batch, report, bar)
        return report

    def _unique(self, items: Iterable[Article | Skipped], report: IngestReport) -> list[Article]:
        first_source: dict[str, str] = {}
        articles = []
        for item in items:
            if isinstance(item, Skipped):
                report.skipped.append(item)
            elif item.doc_id in first_source:
                report.skipped.append(Skipped(
                    item.source, f"doc_id {item.doc_id!r} is already used by {first_source[item.doc_id]}"))
            else:
                first_source[item.doc_id] = item.source
                articles.append(item)
        return articles

    def _commit(self, batch: list[tuple[Article, str, list[Chunk]]], report: IngestReport, bar: tqdm) -> None:
        texts = [embedding_text(article, article.text[c.char_start:c.char_end])
                 for article, _, chunks in batch for c in chunks]
        vectors = self._embedder.embed(texts)
        prepared, offset = [], 0
        for article, content_hash, chunks in batch:
            prepared.append(PreparedDocument(article=article, content_hash=content_hash, chunks=chunks,
                                             vectors=vectors[offset:offset + len(chunks)]))
            offset += len(chunks)
        result = self._store.commit(upserts=prepared)
        for doc in prepared:
            status = result.statuses[doc.article.doc_id]
            report.documents.append(IngestedDocument(doc.article.doc_id, doc.article.source, status, len(doc.chunks)))
        bar.update(len(prepared))
        log.info("committed %d documents, %d passages", len(prepared), offset)
