"""Helpers of the hardening tests: unique small articles, and an audit of an index directory's files.

`audit_index` reads the files themselves (SQLite read-only, the FAISS and BM25 snapshots the manifest names),
not through `Store`, which would quietly rebuild a snapshot that disagrees with SQLite instead of saying so.
"""

from __future__ import annotations

import hashlib
import random
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from index.lexical import LexicalIndex
from index.store import Store
from tests.index.cli_helpers import make_article, temp_files


@dataclass(frozen=True)
class IndexCounts:
    """What an index directory holds, by each of its records."""

    generation: int
    documents: int  # rows in SQLite
    passages: int  # rows in SQLite
    manifest_documents: int
    manifest_passages: int
    faiss_vectors: int
    bm25_passages: int


def token_for(doc_id: str) -> str:
    """A word found in this document only: BM25 ranks its passages first for a query of just this word."""
    return "qz" + hashlib.sha256(doc_id.encode()).hexdigest()[:10]


def small_article(rng: random.Random, doc_id: str) -> tuple[str, str]:
    """(title, text) of a short unique article (one or two paragraphs) holding `token_for(doc_id)`."""
    title, text = make_article(rng, doc_id, paragraphs=(1, 2))
    return title, f"The {token_for(doc_id)} file was filed today. {text}"


def audit_index(directory: Path) -> tuple[IndexCounts, list[str]]:
    """The counts of a quiescent index (no writer running) and every disagreement among its files."""
    problems = []
    conn = sqlite3.connect(f"file:{directory / 'index.sqlite'}?mode=ro", uri=True)
    try:
        if (check := conn.execute("PRAGMA integrity_check").fetchall()) != [("ok",)]:
            problems.append(f"SQLite integrity_check: {check[:3]}")
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        documents = conn.execute("SELECT count(*) FROM documents").fetchone()[0]
        vids = sorted(r[0] for r in conn.execute("SELECT vid FROM passages"))
        orphans = conn.execute("SELECT count(*) FROM passages p WHERE NOT EXISTS "
                               "(SELECT 1 FROM documents d WHERE d.doc_id = p.doc_id)").fetchone()[0]
        empty = conn.execute("SELECT count(*) FROM documents d WHERE NOT EXISTS "
                             "(SELECT 1 FROM passages p WHERE p.doc_id = d.doc_id)").fetchone()[0]
    finally:
        conn.close()
    if orphans or empty:
        problems.append(f"{orphans} passages without a document, {empty} documents without passages")
    vectors = _snapshot(directory, meta, "vectors", problems)
    faiss_ids: list[int] = []
    if vectors is not None:
        faiss_ids = faiss_ids_of(faiss.deserialize_index(np.frombuffer(vectors, dtype=np.uint8)))
    lexical = _snapshot(directory, meta, "lexical", problems)
    bm25 = LexicalIndex.from_bytes(lexical).size if lexical is not None else -1
    counts = IndexCounts(generation=int(meta["generation"]), documents=documents, passages=len(vids),
                         manifest_documents=int(meta["documents"]), manifest_passages=int(meta["passages"]),
                         faiss_vectors=len(faiss_ids), bm25_passages=bm25)
    if counts.documents != counts.manifest_documents:
        problems.append(f"SQLite has {documents} documents, the manifest says {counts.manifest_documents}")
    if not len(vids) == counts.manifest_passages == len(faiss_ids) == bm25:
        problems.append(f"passages: SQLite {len(vids)}, manifest {counts.manifest_passages}, FAISS "
                        f"{len(faiss_ids)}, BM25 {bm25}")
    if faiss_ids != vids:
        only_faiss, only_sqlite = sorted(set(faiss_ids) - set(vids)), sorted(set(vids) - set(faiss_ids))
        problems.append(f"FAISS ids differ from SQLite's passage ids: only in FAISS {only_faiss[:5]}, "
                        f"only in SQLite {only_sqlite[:5]}")
    if temp_files(directory):
        problems.append(f"temp files left behind: {temp_files(directory)}")
    stale = sorted(p.name for p in directory.glob("*-*.faiss")) + sorted(p.name for p in directory.glob("*-*.npz"))
    if len(stale) > 4:
        problems.append(f"more snapshot files than this and the previous generation: {stale}")
    # The store's own checks: SQLite structure, every document's and passage's checksum.
    store = Store.open(directory)
    try:
        listed = store.list_documents()
        if len(listed) != documents:
            problems.append(f"Store.list_documents gives {len(listed)} documents, SQLite {documents}")
    finally:
        store.close()
    return counts, problems


def faiss_ids_of(index: faiss.Index) -> list[int]:
    """The ids a FAISS index holds, sorted: an id-mapped index's map, or every inverted list's ids (IVF)."""
    if hasattr(index, "id_map"):
        return sorted(faiss.vector_to_array(index.id_map).tolist())
    ivf = faiss.extract_index_ivf(index)
    lists, ids = ivf.invlists, []
    assert lists is not None
    for number in range(ivf.nlist):
        size = lists.list_size(number)
        if size:
            ids.extend(faiss.rev_swig_ptr(lists.get_ids(number), size).tolist())
    return sorted(ids)


def _snapshot(directory: Path, meta: dict[str, str], kind: str, problems: list[str]) -> bytes | None:
    name, digest = meta.get(f"{kind}_file", ""), meta.get(f"{kind}_sha256", "")
    path = directory / name
    if not name or not path.is_file():
        problems.append(f"the manifest names {kind} file {name!r}, which does not exist")
        return None
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != digest:
        problems.append(f"{name} does not match the SHA-256 in the manifest")
        return None
    return data
