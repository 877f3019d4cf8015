"""The hybrid LangChain retriever: fusion, filters, MMR, and Documents that carry exact spans."""

from pathlib import Path

import pytest
from langchain_core.documents import Document

from index.articles import Article
from index.records import PassageFilter
from index.store import Store
from qa.retriever import RRF_K, Retriever, fuse
from tests.conftest import ARTICLES, make_indexer


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory, minilm) -> Store:
    directory = tmp_path_factory.mktemp("demo") / "ix"
    make_indexer(directory, minilm).ingest_paths([ARTICLES])
    return Store.open(directory)


def test_invoke_returns_documents_with_spans(demo_store: Store, minilm) -> None:
    docs = Retriever(store=demo_store, embedder=minilm, k=3).invoke("How much did the Harbor Bridge repairs cost?")
    assert len(docs) == 3 and all(isinstance(d, Document) for d in docs)
    top = docs[0]
    assert top.metadata["doc_id"] == "file:harbor-bridge" and top.metadata["rank"] == 1
    text = demo_store.get_document(top.metadata["doc_id"]).text
    assert text[top.metadata["char_start"]:top.metadata["char_end"]] == top.page_content
    assert top.metadata["dense_rank"] == 1 and top.metadata["bm25_rank"] == 1
    assert [d.metadata["score"] for d in docs] == sorted((d.metadata["score"] for d in docs), reverse=True)


def test_bm25_finds_a_rare_name_dense_alone_ranks_lower(demo_store: Store, minilm) -> None:
    query = "Wierzbicki"
    bm25 = Retriever(store=demo_store, embedder=minilm, k=1, mode="bm25").retrieve(query)
    assert bm25[0].doc_id == "file:council-budget" and "Wierzbicki" in bm25[0].text
    hybrid = Retriever(store=demo_store, embedder=minilm, k=3).retrieve(query)
    assert "Wierzbicki" in hybrid[0].text


def test_fusion_is_reciprocal_rank(demo_store: Store, minilm) -> None:
    vector = minilm.embed(["port strike"])[0]
    with demo_store.reading() as view:
        dense, lexical = view.dense(vector, 5), view.lexical("port strike", 5)
        names = view.passage_ids([key for key, _ in dense + lexical])
    assert dense and lexical
    fused = fuse(dense, lexical, lambda keys: {key: names[key] for key in keys})
    for _key, (score, signals) in fused:
        expected = sum(1 / (RRF_K + r) for r in (signals["dense_rank"], signals["bm25_rank"]) if r)
        assert score == pytest.approx(expected)
    assert {key for key, _ in fused} == {key for key, _ in dense + lexical}
    scores = [(-score, names[key]) for key, (score, _) in fused]
    assert scores == sorted(scores)  # best first, ties by passage id


def test_fusion_breaks_ties_by_passage_id() -> None:
    asked: list[list[int]] = []

    def names(keys: list[int]) -> dict[int, str]:
        asked.append(sorted(keys))
        return {key: {7: "b#0", 3: "a#0", 5: "c#0"}[key] for key in keys}

    fused = fuse([(7, 0.9), (5, 0.8)], [(3, 4.2)], names)
    assert [key for key, _ in fused] == [3, 7, 5]  # 3 and 7 are rank 1 of one ranker: equal scores
    assert fused[0][1][1] == {"dense_rank": None, "dense_score": None, "bm25_rank": 1, "bm25_score": 4.2}
    assert asked == [[3, 7]]  # only the tied keys are looked up


def test_one_ranking_alone_needs_no_passage_ids() -> None:
    def names(keys: list[int]) -> dict[int, str]:
        raise AssertionError(f"looked up {keys}")

    assert [key for key, _ in fuse([(7, 0.9), (5, 0.8)], [], names)] == [7, 5]


def test_retrieved_passages_are_the_store_hits_of_the_fused_keys(demo_store: Store, minilm) -> None:
    query = "How much did the Harbor Bridge repairs cost?"
    found = Retriever(store=demo_store, embedder=minilm, k=3).retrieve(query)
    dense = {h.passage.passage_id: h for h in demo_store.search(minilm.embed([query])[0], 30)}
    lexical = {h.passage.passage_id: h for h in demo_store.lexical_search(query, 30)}
    for passage in found:
        hit = dense.get(passage.passage_id) or lexical[passage.passage_id]
        assert (passage.text, passage.doc_id, passage.char_start) == (hit.passage.text, hit.passage.doc_id,
                                                                      hit.passage.char_start)
        if passage.signals["dense_score"] is not None:
            assert passage.signals["dense_score"] == pytest.approx(dense[passage.passage_id].score)


@pytest.mark.parametrize(("filters", "allowed"), [
    (PassageFilter(doc_ids=["file:council-budget"]), {"file:council-budget"}),
    (PassageFilter(published_from="2026-05-01", published_to="2026-06-30"),
     {"wire-2026-05-northmoor-election", "wire-2026-06-saltmere-port-strike"}),
    (PassageFilter(sources=[str(ARTICLES / "wire.jsonl")]),
     {"wire-2026-05-northmoor-election", "wire-2026-06-saltmere-port-strike"}),
    (PassageFilter(sources=[str(ARTICLES)]), None),
    (PassageFilter(sources=[str(ARTICLES)[:-3]]), set()),
    (PassageFilter(doc_ids=[]), set()),
    # More names than SQLite's variable limit and expression depth allow in one statement.
    (PassageFilter(doc_ids=[f"nope-{i}" for i in range(40_000)] + ["file:council-budget"]), {"file:council-budget"}),
    (PassageFilter(sources=[f"/nowhere/{i}" for i in range(5_000)] + [str(ARTICLES / "wire.jsonl")]),
     {"wire-2026-05-northmoor-election", "wire-2026-06-saltmere-port-strike"}),
])
def test_filters_apply_to_both_rankers(demo_store: Store, minilm, filters: PassageFilter, allowed) -> None:
    for mode in ("dense", "bm25", "hybrid"):
        found = Retriever(store=demo_store, embedder=minilm, k=20, mode=mode,
                          filters=filters).retrieve("bridge budget election strike fire")
        docs = {p.doc_id for p in found}
        if allowed is None:
            assert len(docs) > 2
        else:
            assert docs <= allowed and (docs or not allowed), mode


def test_mmr_prefers_other_articles(demo_store: Store, minilm) -> None:
    plain = Retriever(store=demo_store, embedder=minilm, k=4).retrieve("Harbor Bridge")
    diverse = Retriever(store=demo_store, embedder=minilm, k=4, mmr=True, mmr_lambda=0.3).retrieve("Harbor Bridge")
    assert len({p.doc_id for p in diverse}) > len({p.doc_id for p in plain})


def test_lexical_index_follows_replace_and_delete(tmp_path: Path, hash_embedder) -> None:
    indexer = make_indexer(tmp_path / "ix", hash_embedder)
    indexer.ingest([Article(doc_id="a", text="The zeppelin landed.", source="t"),
                    Article(doc_id="b", text="The ferry sailed.", source="t")])
    store = Store.open(tmp_path / "ix")
    assert [h.passage.doc_id for h in store.lexical_search("zeppelin", 5)] == ["a"]
    indexer.ingest([Article(doc_id="a", text="The airship landed.", source="t")])
    assert store.lexical_search("zeppelin", 5) == []
    assert [h.passage.doc_id for h in store.lexical_search("airship", 5)] == ["a"]
    store.delete("a")
    assert store.lexical_search("airship", 5) == []
    assert [h.passage.doc_id for h in Store.open(tmp_path / "ix").lexical_search("ferry", 5)] == ["b"]


def test_a_damaged_bm25_snapshot_is_rebuilt(tmp_path: Path, hash_embedder) -> None:
    make_indexer(tmp_path / "ix", hash_embedder).ingest([Article(doc_id="a", text="The zeppelin landed.", source="t")])
    for path in (tmp_path / "ix").glob("lexical-*.npz"):
        path.write_bytes(b"garbage")
    assert [h.passage.doc_id for h in Store.open(tmp_path / "ix").lexical_search("zeppelin", 5)] == ["a"]


def test_empty_query_is_refused(demo_store: Store, minilm) -> None:
    with pytest.raises(ValueError, match="the query is empty"):
        Retriever(store=demo_store, embedder=minilm).retrieve("   ")
