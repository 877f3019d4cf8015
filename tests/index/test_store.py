"""The store contract, over both embedders: upsert statuses, exact spans, deletes, reloads, consistency."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from index.articles import Article
from index.embedding import HashEmbedder
from index.errors import DocumentNotFound, ModelMismatch, StoreNotFound
from index.loaders import load_paths
from index.store import Store
from tests.conftest import ARTICLES, make_indexer


def article(doc_id: str, text: str, title: str = "Title") -> Article:
    return Article(doc_id=doc_id, text=text, source=f"test:{doc_id}", title=title)


def vector_ids(store: Store) -> set[str]:
    info = store.info()
    if not info.passages:
        return set()
    probe = np.ones(info.dimension, dtype=np.float32) / np.sqrt(info.dimension)
    return {hit.passage.passage_id for hit in store.search(probe, info.passages + 10)}


def assert_consistent(store: Store) -> None:
    """Counts agree, every stored passage is in FAISS and nothing else is, and spans slice the text."""
    info = store.info()
    docs = store.list_documents()
    assert info.documents == len(docs)
    assert info.passages == sum(d.passages for d in docs)
    expected = set()
    for summary in docs:
        doc = store.get_document(summary.doc_id)
        for span in doc.passages:
            assert 0 <= span.char_start < span.char_end <= len(doc.text)
            expected.add(span.passage_id)
    assert vector_ids(store) == expected


def test_upsert_statuses_and_exact_text(tmp_path: Path, embedder) -> None:
    indexer = make_indexer(tmp_path / "ix", embedder)
    report = indexer.ingest_paths([ARTICLES])
    assert {d.status for d in report.documents} == {"created"} and len(report.documents) == 8
    again = indexer.ingest_paths([ARTICLES])
    assert {d.status for d in again.documents} == {"unchanged"}
    assert [d.passages for d in sorted(again.documents, key=lambda d: d.doc_id)] == \
        [d.passages for d in sorted(report.documents, key=lambda d: d.doc_id)]
    store = Store.open(tmp_path / "ix", model=embedder.name, dimension=embedder.dimension)
    for loaded in load_paths([ARTICLES]):
        doc = store.get_document(loaded.doc_id)
        assert doc.text == loaded.text
        assert (doc.title, doc.url, doc.published) == (loaded.title, loaded.url, loaded.published)
    assert_consistent(store)


def test_search_finds_the_passage_holding_a_fact(tmp_path: Path, minilm) -> None:
    indexer = make_indexer(tmp_path / "ix", minilm)
    indexer.ingest_paths([ARTICLES])
    store = Store.open(tmp_path / "ix")
    hits = store.search(minilm.embed(["How much did the Harbor Bridge repairs cost?"])[0], 3)
    assert hits[0].passage.doc_id == "file:harbor-bridge"
    assert "$48.6 million" in " ".join(h.passage.text for h in hits if h.passage.doc_id == "file:harbor-bridge")
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    for hit in hits:
        doc = store.get_document(hit.passage.doc_id)
        assert doc.text[hit.passage.char_start:hit.passage.char_end] == hit.passage.text


def test_replace_and_delete(tmp_path: Path, embedder) -> None:
    indexer = make_indexer(tmp_path / "ix", embedder)
    indexer.ingest([article("a", "The port strike began on Monday. Cranes stood still."),
                    article("b", "The council approved the budget. The vote was 7-2.")])
    report = indexer.ingest([article("a", "The port strike ended on Friday. Ships sailed again.")])
    assert [d.status for d in report.documents] == ["replaced"]
    store = Store.open(tmp_path / "ix")
    assert store.get_document("a").text.startswith("The port strike ended")
    assert_consistent(store)
    store.delete("a")
    with pytest.raises(DocumentNotFound, match="no document 'a'"):
        store.get_document("a")
    assert all(not pid.startswith("a#") for pid in vector_ids(store))
    with pytest.raises(DocumentNotFound):
        store.delete("a")
    assert_consistent(store)


def test_title_change_replaces_because_the_title_is_embedded(tmp_path: Path, hash_embedder) -> None:
    indexer = make_indexer(tmp_path / "ix", hash_embedder)
    indexer.ingest([article("a", "Same text.", title="Old")])
    assert indexer.ingest([article("a", "Same text.", title="New")]).documents[0].status == "replaced"


def test_small_commits_lose_nothing(tmp_path: Path, hash_embedder) -> None:
    indexer = make_indexer(tmp_path / "ix", hash_embedder, max_tokens=8, overlap_tokens=0, commit_every=3)
    docs = [article(f"d{i}", " ".join(f"Fact {i}.{j} is here." for j in range(6))) for i in range(5)]
    report = indexer.ingest(docs)
    store = Store.open(tmp_path / "ix")
    assert store.info().generation == 5, "one commit per document with commit_every below a document"
    assert sum(d.passages for d in report.documents) == store.info().passages
    assert_consistent(store)


def test_batches_are_committed_while_later_articles_are_still_to_chunk(tmp_path: Path, hash_embedder) -> None:
    indexer = make_indexer(tmp_path / "ix", hash_embedder, max_tokens=8, overlap_tokens=0, commit_every=3)
    docs = [article(f"d{i}", " ".join(f"Fact {i}.{j} is here." for j in range(6))) for i in range(3)]
    chunker = indexer._chunker
    chunked: list[int] = []

    def chunk(text: str):
        chunked.append(Store.open(tmp_path / "ix").info().documents)
        if text == docs[2].text:
            raise RuntimeError("chunking failed on the third article")
        return chunker.chunk(text)

    indexer._chunker = type("Failing", (), {"chunk": staticmethod(chunk)})()
    with pytest.raises(RuntimeError):
        indexer.ingest(docs)
    assert chunked == [0, 1, 2], "each article's batch is committed before the next article is chunked"
    assert {d.doc_id for d in Store.open(tmp_path / "ix").list_documents()} == {"d0", "d1"}, "nothing committed is lost"


def test_lookups_of_more_passages_than_one_sql_in_list_holds(tmp_path: Path, hash_embedder) -> None:
    # The store reads ids 500 to a query (`_rows_in`), within SQLite's oldest limit of 999 variables.
    indexer = make_indexer(tmp_path / "ix", hash_embedder)
    indexer.ingest([article(f"d{i:04d}", f"Story number {i} about topic {i % 7}.") for i in range(1200)])
    store = Store.open(tmp_path / "ix")
    assert len(vector_ids(store)) == 1200
    probe = np.ones(store.info().dimension, dtype=np.float32) / 16
    with store.reading() as view:
        ranked = view.dense(probe, 1200)
        assert len(view.passage_ids([key for key, _ in ranked])) == 1200
        assert len(view.hits(ranked)) == 1200


def test_old_vector_files_are_removed(tmp_path: Path, hash_embedder) -> None:
    indexer = make_indexer(tmp_path / "ix", hash_embedder)
    for i in range(4):
        indexer.ingest([article(f"d{i}", f"Story number {i}.")])
    files = sorted(p.name for p in (tmp_path / "ix").glob("vectors-*.faiss"))
    assert files == ["vectors-0000000003.faiss", "vectors-0000000004.faiss"]
    assert not list((tmp_path / "ix").glob(".tmp-*"))


def test_a_reader_sees_commits_made_by_another_store(tmp_path: Path, hash_embedder) -> None:
    indexer = make_indexer(tmp_path / "ix", hash_embedder)
    indexer.ingest([article("a", "First.")])
    reader = Store.open(tmp_path / "ix")
    assert vector_ids(reader) == {"a#0"}
    indexer.ingest([article("b", "Second.")])
    assert vector_ids(reader) == {"a#0", "b#0"}


def test_open_errors(tmp_path: Path, hash_embedder) -> None:
    with pytest.raises(StoreNotFound, match=f"no index at {tmp_path}; run citeqa ingest first"):
        Store.open(tmp_path)
    make_indexer(tmp_path / "ix", hash_embedder)
    with pytest.raises(ModelMismatch, match="built with hash .dimension 256.*other-model .dimension 384"):
        Store.open(tmp_path / "ix", model="other-model", dimension=384)
    with pytest.raises(ModelMismatch):
        Store.open(tmp_path / "ix", model="hash", dimension=128)


def test_a_missing_vector_file_is_rebuilt_from_sqlite(tmp_path: Path, hash_embedder) -> None:
    indexer = make_indexer(tmp_path / "ix", hash_embedder)
    indexer.ingest([article("a", "First story."), article("b", "Second story.")])
    for path in (tmp_path / "ix").glob("vectors-*.faiss"):
        path.unlink()
    store = Store.open(tmp_path / "ix")
    assert vector_ids(store) == {"a#0", "b#0"}
    assert_consistent(store)


texts = st.lists(st.sampled_from(["Alpha rose.", "Beta fell sharply.", "Gamma held.", "Delta, said Ruiz, won."]),
                 min_size=1, max_size=6).map(" ".join)


class StoreMachine(RuleBasedStateMachine):
    """Random add/replace/delete/reload sequences keep FAISS and the metadata in agreement."""

    @initialize()
    def setup(self) -> None:
        import tempfile

        self.directory = Path(tempfile.mkdtemp()) / "ix"
        self.embedder = HashEmbedder()
        self.indexer = make_indexer(self.directory, self.embedder, max_tokens=6, overlap_tokens=2)
        self.store = Store.open(self.directory)
        self.model: dict[str, str] = {}

    @rule(doc=st.sampled_from(["a", "b", "c", "d"]), text=texts)
    def upsert(self, doc: str, text: str) -> None:
        status = self.indexer.ingest([article(doc, text)]).documents[0].status
        expected = "created" if doc not in self.model else "unchanged" if self.model[doc] == text else "replaced"
        assert status == expected
        self.model[doc] = text

    @rule(doc=st.sampled_from(["a", "b", "c", "d"]))
    def delete(self, doc: str) -> None:
        if doc in self.model:
            self.store.delete(doc)
            del self.model[doc]
        else:
            with pytest.raises(DocumentNotFound):
                self.store.delete(doc)

    @rule()
    def reload(self) -> None:
        self.store.close()
        self.store = Store.open(self.directory)

    @invariant()
    def consistent(self) -> None:
        if hasattr(self, "store"):
            assert {d.doc_id: self.store.get_document(d.doc_id).text for d in self.store.list_documents()} == \
                self.model
            assert_consistent(self.store)


TestStoreMachine = StoreMachine.TestCase
TestStoreMachine.settings = settings(max_examples=25, stateful_step_count=12, deadline=None,
                                     suppress_health_check=[HealthCheck.too_slow])
