"""The vector index kinds: IVF agrees with exact search, deletes and filters work on every kind, snapshots
round-trip (memory-mapped too, shared between processes), and the store switches kind at its threshold."""

import subprocess
import sys
import textwrap
from pathlib import Path

import faiss
import numpy as np
import pytest

from index.articles import Article
from index.chunking import Chunk
from index.config import VectorSettings
from index.records import PreparedDocument
from index.store import Store
from index.vectors import VectorIndex, build, choose_kind, choose_nlist
from tests.conftest import ROOT

DIM = 384
KINDS = [("flat", "none"), ("flat", "sq8"), ("ivf", "none"), ("ivf", "sq8")]


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(n: int, *, seed: int, clusters: int = 300, dim: int = DIM) -> np.ndarray:
    """Seeded unit vectors around `clusters` random centres (cosine to the centre ~0.7)."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((clusters, dim)))
    return unit(centres[rng.integers(0, clusters, n)] + rng.standard_normal((n, dim)) / np.sqrt(dim))


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, 30k base vectors, 200 queries) from the same clusters; ids are sparse like vids after deletes."""
    both = clustered(30_200, seed=7)
    ids = np.arange(30_000, dtype=np.int64) * 3 + 5
    return ids, both[:30_000], both[30_000:]


@pytest.fixture(scope="module")
def exact(data) -> VectorIndex:
    ids, base, _ = data
    return build(VectorSettings(kind="flat"), DIM, ids, base)


@pytest.fixture(scope="module")
def indexes(data) -> dict[tuple[str, str], VectorIndex]:
    ids, base, _ = data
    return {(k, q): build(VectorSettings(kind=k, quantize=q), DIM, ids, base) for k, q in KINDS}


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each row's true ids (not -1) that `found` has."""
    shares = [len(set(f.tolist()) & set(t[t >= 0].tolist())) / max(1, int((t >= 0).sum()))
              for f, t in zip(found, truth, strict=True)]
    return float(np.mean(shares))


@pytest.mark.parametrize("kind, quantize", KINDS)
def test_recall_at_10_against_exact(kind, quantize, data, exact, indexes) -> None:
    _, _, queries = data
    index = indexes[(kind, quantize)]
    assert (index.kind, index.quantize) == (kind, quantize)
    if kind == "ivf":
        assert index.nlist == choose_nlist(VectorSettings(), 30_000) == 512
    _, truth = exact.search(queries, 10)
    _, found = index.search(queries, 10)
    # IVF at the default nprobe: >= 0.98 (the bar); 8-bit codes cost a little on top.
    assert recall(found, truth) >= (1.0 if (kind, quantize) == ("flat", "none") else
                                    0.98 if quantize == "none" else 0.95)


@pytest.mark.parametrize("kind, quantize", KINDS)
def test_filters_return_only_allowed_ids_and_the_best_of_them(kind, quantize, data, exact, indexes) -> None:
    ids, _, queries = data
    index = indexes[(kind, quantize)]
    rng = np.random.default_rng(3)
    for share in (0.2, 0.01):
        allowed = np.sort(rng.choice(ids, int(len(ids) * share), replace=False))
        _, truth = exact.search(queries[:50], 10, allowed=allowed)
        scores, found = index.search(queries[:50], 10, allowed=allowed)
        assert set(found[found >= 0].tolist()) <= set(allowed.tolist())
        assert np.all(np.diff(scores, axis=1)[found[:, 1:] >= 0] <= 1e-6)  # best first
        assert recall(found, truth) >= (0.98 if quantize == "none" else 0.95), share
    assert index.search(queries[:1], 5, allowed=np.array([ids[17]]))[1][0].tolist() == [ids[17], -1, -1, -1, -1]


@pytest.mark.parametrize("kind, quantize", KINDS)
def test_remove_and_add_on_every_kind(kind, quantize, data) -> None:
    ids, base, queries = data
    index = build(VectorSettings(kind=kind, quantize=quantize), DIM, ids[:6000], base[:6000])
    gone = ids[:6000:2]
    index.remove(np.concatenate([gone, [10**9]]))  # an unknown id is ignored
    assert index.size == 3000
    _, found = index.search(base[:20], 10)
    assert not set(found.ravel().tolist()) & set(gone.tolist())
    # A kept vector is its own best match; a removed one is not found even by itself.
    _, own = index.search(base[1:20:2], 1)
    assert own[:, 0].tolist() == ids[1:20:2].tolist()
    index.add(ids[:2], base[:2])
    assert index.size == 3002 and index.search(base[:1], 1)[1][0, 0] == ids[0]


@pytest.mark.parametrize("kind, quantize", KINDS)
def test_snapshot_round_trip_and_mmap_give_the_same_results(kind, quantize, data, indexes, tmp_path) -> None:
    ids, _, queries = data
    queries = queries[:50]
    index = indexes[(kind, quantize)]
    expected = index.search(queries, 10)
    path = tmp_path / "vectors.faiss"
    path.write_bytes(index.to_bytes())
    loaded = [VectorIndex.from_bytes(path.read_bytes(), DIM),
              VectorIndex.open(str(path), DIM, mmap=False),
              VectorIndex.open(str(path), DIM, mmap=True)]
    allowed = ids[::7]
    for other in loaded:
        assert (other.kind, other.quantize, other.size, other.nlist) == (kind, quantize, index.size, index.nlist)
        for got, want in zip(other.search(queries, 10), expected, strict=True):
            np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(other.search(queries, 10, allowed=allowed)[1],
                                      index.search(queries, 10, allowed=allowed)[1])
    mapped = loaded[2]
    assert mapped.mapped
    with pytest.raises(RuntimeError, match="read-only"):
        mapped.remove(ids[:1])
    copy = mapped.writable()
    copy.remove(ids[:1])
    assert (copy.size, mapped.size) == (index.size - 1, index.size)


def test_an_old_flat_snapshot_opens(data, exact, tmp_path) -> None:
    """Stores before the index kinds wrote IndexIDMap2(IndexFlatIP)."""
    ids, base, queries = data
    old = faiss.IndexIDMap2(faiss.IndexFlatIP(DIM))
    old.add_with_ids(base[:5000], ids[:5000])
    path = tmp_path / "old.faiss"
    faiss.write_index(old, str(path))
    for index in (VectorIndex.from_bytes(path.read_bytes(), DIM), VectorIndex.open(str(path), DIM, mmap=True)):
        assert (index.kind, index.quantize, index.size) == ("flat", "none", 5000)
        np.testing.assert_array_equal(index.search(queries, 10)[1],
                                      exact.search(queries, 10, allowed=ids[:5000])[1])
    writable = VectorIndex.from_bytes(path.read_bytes(), DIM)
    writable.remove(ids[:10])
    assert writable.size == 4990


def test_foreign_or_mismatched_indexes_are_refused(tmp_path) -> None:
    for index in (faiss.IndexFlatIP(DIM), faiss.IndexIDMap(faiss.IndexFlatL2(DIM)), faiss.IndexHNSWFlat(DIM, 16),
                  faiss.IndexIDMap(faiss.IndexFlatIP(DIM // 2))):
        with pytest.raises(ValueError):
            VectorIndex.from_bytes(faiss.serialize_index(index).tobytes(), DIM)
    (tmp_path / "junk.faiss").write_bytes(b"IxM2" + b"\0" * 64)
    with pytest.raises(ValueError):
        VectorIndex.open(str(tmp_path / "junk.faiss"), DIM, mmap=True)
    with pytest.raises(ValueError):
        VectorIndex.from_bytes(b"not faiss at all", DIM)


def test_kind_choice_and_retraining_rules() -> None:
    auto = VectorSettings(exact_up_to=1000)
    assert [choose_kind(auto, n) for n in (0, 1000, 1001)] == ["flat", "flat", "ivf"]
    assert choose_kind(auto, 600, current="ivf") == "ivf"  # no flapping just below the threshold
    assert choose_kind(auto, 500, current="ivf") == "flat"
    assert choose_kind(VectorSettings(kind="ivf"), 3) == "ivf" and choose_kind(VectorSettings(kind="ivf"), 0) == "flat"
    assert choose_kind(VectorSettings(kind="flat"), 10**7) == "flat"
    assert [choose_nlist(VectorSettings(), n) for n in (10, 100, 50_000, 10**6)] == [1, 2, 1024, 4096]
    assert choose_nlist(VectorSettings(nlist=300), 10**6) == 300
    vectors = clustered(4000, seed=1, dim=32)
    ivf = build(VectorSettings(kind="ivf"), 32, np.arange(4000), vectors)
    assert ivf.nlist == 102 and ivf.trained_on == 4000
    assert ivf.suits(VectorSettings(kind="ivf"), 7000) and not ivf.suits(VectorSettings(kind="ivf"), 8000)
    assert not ivf.suits(VectorSettings(kind="ivf", quantize="sq8"), 4000)
    assert not ivf.suits(VectorSettings(kind="flat"), 4000)
    sq8 = build(VectorSettings(kind="flat", quantize="sq8"), 32, np.arange(100), vectors[:100])
    assert sq8.suits(VectorSettings(kind="flat", quantize="sq8"), 200)
    assert not sq8.suits(VectorSettings(kind="flat", quantize="sq8"), 201)  # ranges trained on < half


# ----- the store --------------------------------------------------------------------------------------


def document(doc_id: str, vectors: np.ndarray) -> PreparedDocument:
    """A document of one short passage per vector."""
    text = " ".join(f"w{i:04d}" for i in range(len(vectors)))
    chunks = [Chunk(i * 6, i * 6 + 5) for i in range(len(vectors))]
    return PreparedDocument(article=Article(doc_id=doc_id, text=text, source=f"test:{doc_id}"),
                            content_hash=doc_id, chunks=chunks, vectors=vectors)


def open_store(directory: Path, **settings) -> Store:
    return Store.open_or_create(directory, model="test", dimension=DIM, vectors=VectorSettings(**settings))


def top_ids(store: Store, queries: np.ndarray, k: int = 10) -> list[list[str]]:
    return [[h.passage.passage_id for h in store.search(q, k)] for q in queries]


def test_the_store_switches_kind_at_its_threshold_and_back(tmp_path: Path) -> None:
    vectors = clustered(1000, seed=11, clusters=20)
    store = open_store(tmp_path / "ix", exact_up_to=300)
    for n in range(3):
        store.commit(upserts=[document(f"d{n}", vectors[n * 100:(n + 1) * 100])])
    assert (store.info().vector_kind, store.info().passages) == ("flat", 300)
    store.commit(upserts=[document("d3", vectors[300:400])])
    info = store.info()
    assert (info.vector_kind, info.vector_quantize, info.passages) == ("ivf", "none", 400)
    # A reader opens what was written, whatever its own settings say.
    reader = open_store(tmp_path / "ix", kind="flat")
    assert reader._current_vectors().kind == "ivf"
    assert top_ids(reader, vectors[:5], 3) == top_ids(store, vectors[:5], 3)
    assert [ids[0] for ids in top_ids(reader, vectors[:400:50], 1)] == [
        f"d{i // 100}#{i % 100}" for i in range(0, 400, 50)]
    for n in range(4, 10):
        store.commit(upserts=[document(f"d{n}", vectors[n * 100:(n + 1) * 100])])
    # Trained with 10 lists at 400; trained again at 800, where 20 lists fit (>= 39 vectors each), not at 1000.
    assert store._current_vectors().nlist == 20
    store.commit(deletes=[f"d{n}" for n in range(2, 10)])  # 200 left: not below half the threshold
    assert store.info().vector_kind == "ivf"
    store.commit(deletes=["d1"])
    assert (store.info().vector_kind, store.info().passages) == ("flat", 100)
    assert [ids[0] for ids in top_ids(reader, vectors[:100:20], 1)] == [f"d0#{i}" for i in range(0, 100, 20)]


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_sq8_hits_are_scored_with_the_exact_vectors(kind: str, tmp_path: Path) -> None:
    vectors = clustered(3000, seed=16, clusters=30)
    queries = clustered(3050, seed=16, clusters=30)[3000:]  # same clusters, other points
    docs = [document(f"d{n}", vectors[n * 300:(n + 1) * 300]) for n in range(10)]
    exact, sq8 = open_store(tmp_path / "exact", kind="flat"), open_store(tmp_path / "sq8", kind=kind, quantize="sq8")
    exact.commit(upserts=docs)
    sq8.commit(upserts=docs)
    assert (sq8.info().vector_kind, sq8.info().vector_quantize) == (kind, "sq8")
    shares = []
    for query in queries:
        want = exact.search(query, 10)
        got = sq8.search(query, 10)
        assert len(got) == 10 and [h.score for h in got] == sorted((h.score for h in got), reverse=True)
        with sq8.reading() as view:  # the score is the cosine with the stored float vector, not the 8-bit one
            ranked = view.dense(query, 10)
            stored = view.vectors([key for key, _ in ranked])
        assert [score for _, score in ranked] == [h.score for h in got]
        assert np.allclose([score for _, score in ranked], stored @ query, atol=1e-5)
        shares.append(len({h.passage.passage_id for h in got} & {h.passage.passage_id for h in want}) / 10)
    assert np.mean(shares) >= 0.98


def test_a_rebuild_from_sqlite_makes_the_configured_kind(tmp_path: Path) -> None:
    vectors = clustered(600, seed=12, clusters=20)
    store = open_store(tmp_path / "ix", kind="ivf", quantize="sq8")
    store.commit(upserts=[document("a", vectors[:300]), document("b", vectors[300:])])
    expected = top_ids(store, vectors[:20])
    for path in (tmp_path / "ix").glob("vectors-*.faiss"):
        path.unlink()
    reader = open_store(tmp_path / "ix", kind="ivf", quantize="sq8")
    rebuilt = reader._current_vectors()
    assert (rebuilt.kind, rebuilt.quantize, rebuilt.size, rebuilt.mapped) == ("ivf", "sq8", 600, False)
    assert top_ids(reader, vectors[:20]) == expected  # the same training data and seed: the same index


def test_mmap_store_searches_like_an_in_memory_one(tmp_path: Path) -> None:
    vectors = clustered(2000, seed=13, clusters=40)
    for kind in ("flat", "ivf"):
        writer = open_store(tmp_path / kind, kind=kind)
        writer.commit(upserts=[document(f"d{n}", vectors[n * 200:(n + 1) * 200]) for n in range(10)])
        assert writer._current_vectors().mapped  # after a commit the writer maps its own snapshot
        writer.commit(deletes=["d3"])  # ... and changes a private copy for the next one
        mapped, in_memory = open_store(tmp_path / kind, kind=kind), open_store(tmp_path / kind, mmap=False)
        assert mapped._current_vectors().mapped and not in_memory._current_vectors().mapped
        assert top_ids(mapped, vectors[::97]) == top_ids(in_memory, vectors[::97]) == top_ids(writer, vectors[::97])


def test_a_store_written_before_the_index_kinds_still_opens(tmp_path: Path) -> None:
    """Older stores wrote IndexIDMap2(IndexFlatIP) and no vectors_* kind keys in the manifest."""
    import hashlib
    import sqlite3

    vectors = clustered(300, seed=14, clusters=10)
    store = open_store(tmp_path / "ix", mmap=False)
    store.commit(upserts=[document("a", vectors[:200])])
    expected = top_ids(store, vectors[:10])
    store.close()
    old = faiss.IndexIDMap2(faiss.IndexFlatIP(DIM))
    old.add_with_ids(vectors[:200], np.arange(1, 201, dtype=np.int64))
    data = faiss.serialize_index(old).tobytes()
    db = sqlite3.connect(tmp_path / "ix" / "index.sqlite")
    with db:
        name = db.execute("SELECT value FROM meta WHERE key = 'vectors_file'").fetchone()[0]
        (tmp_path / "ix" / name).write_bytes(data)
        db.execute("UPDATE meta SET value = ? WHERE key = 'vectors_sha256'", (hashlib.sha256(data).hexdigest(),))
        db.execute("DELETE FROM meta WHERE key LIKE 'vectors\\_%' ESCAPE '\\' AND key NOT IN "
                   "('vectors_file', 'vectors_sha256')")
    db.close()
    reopened = open_store(tmp_path / "ix")
    assert (reopened.info().vector_kind, reopened.info().vector_quantize) == ("flat", "none")
    current = reopened._current_vectors()
    assert current.mapped and current.size == 200  # the old file itself, not a rebuild
    assert top_ids(reopened, vectors[:10]) == expected
    reopened.commit(upserts=[document("b", vectors[200:])])
    assert reopened.info().passages == 300 and top_ids(reopened, vectors[250:251], 1) == [["b#50"]]


_PSS_CHILD = textwrap.dedent("""
    import sys
    import numpy as np, psutil
    from index.vectors import VectorIndex
    index = VectorIndex.open(sys.argv[1], 384, mmap=sys.argv[2] == "1")
    index.search(np.ones((1, 384), dtype=np.float32), 5)  # an exact search reads every page
    print("ready", flush=True)
    sys.stdin.readline()
    maps = [m for m in psutil.Process().memory_maps(grouped=True) if m.path.endswith(".faiss")]
    print(sum(m.rss for m in maps), sum(m.pss for m in maps), flush=True)
    sys.stdin.readline()
""")


def test_two_processes_share_one_mapped_copy(tmp_path: Path) -> None:
    """Each of two processes that map the snapshot is charged half of its pages (PSS); unmapped, none."""
    pytest.importorskip("psutil")
    vectors = clustered(20_000, seed=15)
    store = open_store(tmp_path / "ix", kind="flat", mmap=False)  # this process maps nothing
    store.commit(upserts=[document(f"d{n}", vectors[n * 2000:(n + 1) * 2000]) for n in range(10)])
    snapshot = next((tmp_path / "ix").glob("vectors-*.faiss"))  # what Store opens with VectorIndex.open
    size = snapshot.stat().st_size
    for mmap, expected in (("1", (size, size // 2)), ("0", (0, 0))):
        children = [subprocess.Popen([sys.executable, "-c", _PSS_CHILD, str(snapshot), mmap], text=True, cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE) for _ in range(2)]
        try:
            for child in children:
                assert child.stdout is not None and child.stdout.readline() == "ready\n"
            rss, pss = [], []
            for child in children:
                assert child.stdin is not None and child.stdout is not None
                child.stdin.write("\n")
                child.stdin.flush()
                got = [int(x) for x in child.stdout.readline().split()]
                rss.append(got[0])
                pss.append(got[1])
        finally:
            for child in children:
                child.communicate("\n", timeout=60)
        for r, p in zip(rss, pss, strict=True):
            # The whole file resident, half of it charged to each (pages are 4 KiB; headers round a little).
            assert abs(r - expected[0]) <= 64 * 1024 and abs(p - expected[1]) <= 64 * 1024, (mmap, rss, pss, size)
