"""The passage store: SQLite is the truth, a checksummed FAISS file is its searchable snapshot.

Layout of an index directory:

    index.sqlite              documents (exact text), passages (spans, vectors), meta (the manifest)
    vectors-<generation>.faiss   the FAISS index of one committed generation (its kind: index/vectors.py)
    lexical-<generation>.npz     the BM25 index of the same generation
    write.lock                one writer at a time

A commit writes the new FAISS file under a new name (temp file, fsync, rename, directory fsync), then
records its generation and SHA-256 in the same SQLite transaction that changes the rows. A kill at any
instant therefore leaves the old or the new state. Readers use SQLite snapshots (WAL), so they are never
blocked and never see half a write. A FAISS file that is missing, fails its checksum or disagrees with the
row count is rebuilt from the vectors kept in SQLite, which are checksummed row by row; every document's
text is checksummed too, and the BM25 snapshot is rebuilt from it the same way. On open, SQLite's own
structure is checked (`PRAGMA integrity_check`), since its indexes are not covered by the row checksums.
Nothing is ever unpickled: the formats are SQLite, JSON, NumPy arrays and FAISS's own.

The FAISS index is exact (flat) or IVF, optionally 8-bit, as `VectorSettings` says (index/vectors.py); a
commit builds it again when the settings or the passage count call for another, and a reader opens whatever
was committed, memory-mapped by default so that processes share one copy of it.
"""

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import threading
import zlib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, cast

import cachetools
import numpy as np
from filelock import FileLock, Timeout

from index.articles import with_title
from index.atomic import fsync_dir, remove_temp_files
from index.config import VectorSettings
from index.errors import (
    DocumentNotFound,
    ModelMismatch,
    StoreBusy,
    StoreCorrupt,
    StoreError,
    StoreNotFound,
    StoreReadOnly,
)
from index.lexical import LexicalIndex
from index.records import (
    CommitResult,
    DocumentSummary,
    Passage,
    PassageFilter,
    PassageSpan,
    PreparedDocument,
    SearchHit,
    Status,
    StoredDocument,
    StoreInfo,
)
from index.snapshots import read_snapshot, remove_stale_snapshots, verified_snapshot, write_snapshot
from index.vectors import Kind, VectorIndex, build

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
DB_NAME = "index.sqlite"
LOCK_NAME = "write.lock"
_CHECKED_ROWS = 2048  # checked rows remembered per kind (a search reads up to ~60 of each)

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE documents (
    doc_id TEXT PRIMARY KEY, title TEXT, url TEXT, published TEXT, source TEXT NOT NULL,
    metadata TEXT NOT NULL, text TEXT NOT NULL, content_hash TEXT NOT NULL,
    ingested_at TEXT NOT NULL, checksum TEXT NOT NULL);
CREATE TABLE passages (
    vid INTEGER PRIMARY KEY AUTOINCREMENT, passage_id TEXT NOT NULL UNIQUE,
    doc_id TEXT NOT NULL REFERENCES documents(doc_id), ordinal INTEGER NOT NULL,
    char_start INTEGER NOT NULL, char_end INTEGER NOT NULL, vector BLOB NOT NULL, checksum INTEGER NOT NULL);
CREATE INDEX passages_by_doc ON passages(doc_id, ordinal);
"""
_DOC_COLUMNS = "doc_id, title, url, published, source, metadata, text, content_hash, ingested_at, checksum"
_PASSAGE_SELECT = "SELECT vid, passage_id, doc_id, ordinal, char_start, char_end, vector, checksum FROM passages "


class PassageStore(Protocol):
    """What retrieval and answering need from a store; another backend implements this."""

    def info(self) -> StoreInfo:
        """The manifest and counts."""
        ...

    def search(self, query: np.ndarray, k: int, *, filters: PassageFilter | None = None) -> list[SearchHit]:
        """The k passages nearest to a unit query vector, best first."""
        ...

    def lexical_search(self, query: str, k: int, *, filters: PassageFilter | None = None) -> list[SearchHit]:
        """The k passages with the highest BM25 score for `query`, best first."""
        ...

    def reading(self) -> contextlib.AbstractContextManager["StoreView"]:
        """Rankings by passage key, then only the passages kept, all from one commit."""
        ...

    def get_document(self, doc_id: str) -> StoredDocument:
        """One document with its exact text and passage spans."""
        ...

    def list_documents(self) -> list[DocumentSummary]:
        """Every document, by id."""
        ...


class Store:
    """SQLite + FAISS passage store. Usage: Store.open(Path(".citeqa/index")).search(vec, k=5)

    One `Store` may be shared by threads; processes coordinate through the writer lock and SQLite.
    """

    def __init__(self, directory: Path, *, lock_timeout: float = 600.0, vectors: VectorSettings | None = None
                 ) -> None:
        self.directory = directory
        self._db_path = directory / DB_NAME
        self._lock_timeout = lock_timeout
        self._vector_settings = vectors or VectorSettings()
        self._mutex = threading.RLock()
        self._conn = self._connect()
        self._check_structure()
        self._vectors: VectorIndex | None = None
        self._vectors_generation = -1
        self._lexical: LexicalIndex | None = None
        self._lexical_generation = -1
        # Rows whose checksum this process has checked, by key. A row read again is compared with its checked
        # copy (a memcmp) instead of being hashed again (JSON + SHA-256 of a whole article was most of a
        # search's own time); any changed byte fails the comparison and is checked anew. Reads hold `_mutex`.
        self._checked_documents: cachetools.LRUCache[str, tuple[Any, ...]] = cachetools.LRUCache(_CHECKED_ROWS)
        self._checked_passages: cachetools.LRUCache[int, tuple[Any, ...]] = cachetools.LRUCache(_CHECKED_ROWS)
        self._info = self._read_info()

    # ----- opening ------------------------------------------------------------------------------

    @classmethod
    def open(cls, directory: Path, *, model: str | None = None, dimension: int | None = None,
             lock_timeout: float = 600.0, vectors: VectorSettings | None = None) -> "Store":
        """Open an existing index; with `model`/`dimension`, refuse one built with another model.

        `vectors` says which vector index commits build and how searches probe it (default: VectorSettings()).
        """
        if not (directory / DB_NAME).is_file():
            raise StoreNotFound(f"no index at {directory}; run citeqa ingest first")
        store = cls(directory, lock_timeout=lock_timeout, vectors=vectors)
        store._check_model(model, dimension)
        return store

    @classmethod
    def open_or_create(cls, directory: Path, *, model: str, dimension: int,
                       lock_timeout: float = 600.0, vectors: VectorSettings | None = None) -> "Store":
        """Open the index at `directory`, creating an empty one for `model` if there is none."""
        if not (directory / DB_NAME).is_file():
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise _os_error(directory, exc) from exc
            with _writer_lock(directory, lock_timeout):
                if not (directory / DB_NAME).is_file():
                    _create_database(directory, model=model, dimension=dimension)
        return cls.open(directory, model=model, dimension=dimension, lock_timeout=lock_timeout, vectors=vectors)

    def close(self) -> None:
        """Close the database connection."""
        with self._mutex:
            self._conn.close()

    def _connect(self) -> sqlite3.Connection:
        writable = os.access(self.directory, os.W_OK) and os.access(self._db_path, os.W_OK)
        wal = Path(f"{self._db_path}-wal")
        pending = not writable and _nonempty(wal)
        # A read-only directory cannot hold WAL's shared-memory file; `immutable` reads without it, but would
        # miss commits still in a WAL that no writer checkpointed (it was killed, or the disk filled up):
        # `mode=ro` reads those through the -shm file the writer left.
        mode = "mode=rw" if writable else "mode=ro" if pending else "immutable=1"
        try:
            conn = sqlite3.connect(f"file:{self._db_path}?{mode}", uri=True, isolation_level=None,
                                   check_same_thread=False, timeout=30)
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            if pending:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as exc:
            if pending:
                raise StoreReadOnly(f"{wal} holds commits that cannot be read while {self.directory} is read-only "
                                    f"({exc}); open the index once with write access") from exc
            raise _db_error(self._db_path, exc) from exc
        return conn

    def _check_structure(self) -> None:
        """Refuse a database whose SQLite structure is damaged, e.g. an index entry that no longer matches its
        row: the checksums cover the rows' contents, but lookups go through SQLite's indexes."""
        try:
            problems = [row[0] for row in self._conn.execute("PRAGMA integrity_check(1)")]
        except sqlite3.Error as exc:
            self._conn.close()
            raise _db_error(self._db_path, exc) from exc
        if problems != ["ok"]:
            self._conn.close()
            detail = str(problems[0]).splitlines()[0] if problems else "no result"
            raise StoreCorrupt(f"{self._db_path} is damaged ({detail}); rebuild the index")

    def _check_model(self, model: str | None, dimension: int | None) -> None:
        info = self._info
        if (model is not None and model != info.model) or (dimension is not None and dimension != info.dimension):
            raise ModelMismatch(
                f"the index at {self.directory} was built with {info.model} (dimension {info.dimension}), "
                f"but the settings ask for {model} (dimension {dimension}); use the same model or another --index"
            )

    # ----- reading ------------------------------------------------------------------------------

    def info(self) -> StoreInfo:
        """The manifest and counts as of the latest commit."""
        with self._snapshot():
            self._info = self._read_info()
            return self._info

    @contextlib.contextmanager
    def reading(self) -> Iterator["StoreView"]:
        """A view of one commit: rank first, then read only the passages kept (see StoreView)."""
        with self._snapshot():
            yield StoreView(self)

    def search(self, query: np.ndarray, k: int, *, filters: PassageFilter | None = None) -> list[SearchHit]:
        """The k passages nearest to the unit vector `query`, best first (cosine similarity)."""
        with self.reading() as view:
            return view.hits(view.dense(query, k, filters=filters))

    def lexical_search(self, query: str, k: int, *, filters: PassageFilter | None = None) -> list[SearchHit]:
        """The k passages with the highest BM25 score for `query` (title included), best first."""
        with self.reading() as view:
            return view.hits(view.lexical(query, k, filters=filters))

    def _dense_ranking(self, query: np.ndarray, k: int, filters: PassageFilter | None) -> list[tuple[int, float]]:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        vectors = self._current_vectors()
        allowed = self._allowed_vids(filters)
        if vectors.size == 0 or (allowed is not None and not len(allowed)):
            return []
        scores, ids = vectors.search(query.reshape(1, -1), vectors.candidates(k), allowed=allowed)
        ranked = [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
        if vectors.quantize != "none":
            ranked = self._rescored(query, ranked)[:k]
        return ranked

    def _lexical_ranking(self, query: str, k: int, filters: PassageFilter | None) -> list[tuple[int, float]]:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        lexical = self._current_lexical()
        allowed = self._allowed_vids(filters)
        if allowed is not None and not len(allowed):
            return []
        ids, scores = lexical.search(query, k, allowed=allowed)
        return [(int(i), float(s)) for i, s in zip(ids, scores, strict=True)]

    def _passage_ids(self, vids: Sequence[int]) -> dict[int, str]:
        """Passage ids by key, unchecked (for ordering only: the passages returned are checked when read)."""
        found: dict[int, str] = dict(self._rows_in("SELECT vid, passage_id FROM passages WHERE vid IN ({})", vids))
        if len(found) != len(set(vids)):
            raise StoreCorrupt(f"the index names passages that {self._db_path} does not hold")
        return found

    def _vectors_of(self, vids: Sequence[int]) -> np.ndarray:
        rows = {r[0]: r for r in self._passages_with_vids(vids)}
        if len(rows) != len(set(vids)):
            raise StoreCorrupt(f"the index names passages that {self._db_path} does not hold")
        return np.stack([np.frombuffer(rows[v][6], dtype=np.float32) for v in vids]) if vids else \
            np.empty((0, self._info.dimension), dtype=np.float32)

    def _rescored(self, query: np.ndarray, ranked: list[tuple[int, float]]) -> list[tuple[int, float]]:
        """Candidates of a quantized index scored again with their exact vectors from SQLite, best first.

        Only the vectors are read, without the row checksums: a candidate's score only orders it among the
        others, and every passage returned is read whole and checked afterwards, in the same snapshot (its
        score then comes from checked bytes). Checking all ⌈RESCORE_FACTOR·k⌉ rows cost more than the search.
        """
        if not ranked:
            return ranked
        rows = list(self._rows_in("SELECT vid, vector FROM passages WHERE vid IN ({})", [vid for vid, _ in ranked]))
        width = 4 * self._info.dimension
        if len(rows) != len(ranked) or any(len(r[1]) != width for r in rows):
            raise StoreCorrupt(f"the vector index names passages that {self._db_path} does not hold whole")
        matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
        scores = matrix @ np.asarray(query, dtype=np.float32).reshape(-1)
        return sorted(((int(r[0]), float(score)) for r, score in zip(rows, scores, strict=True)),
                      key=lambda hit: (-hit[1], hit[0]))

    def _hits(self, ranked: Sequence[tuple[int, float]]) -> list[SearchHit]:
        passages = self._passages_by_vid([vid for vid, _ in ranked])
        return [SearchHit(passage=passages[vid], score=score) for vid, score in ranked]

    def _allowed_vids(self, filters: PassageFilter | None) -> np.ndarray | None:
        """The passage ids a filter lets through, or None when it lets everything through.

        Documents are matched in Python, not in one SQL expression: a filter may name thousands of
        documents or sources, more than SQLite's expression depth and variable limits allow.
        """
        if filters is None or filters.is_empty:
            return None
        sources = [s.rstrip("/") for s in filters.sources] if filters.sources is not None else None
        columns = "SELECT doc_id, source, published FROM documents"
        rows = (self._conn.execute(columns) if filters.doc_ids is None
                else self._rows_in(columns + " WHERE doc_id IN ({})", list(dict.fromkeys(filters.doc_ids))))
        doc_ids = []
        for doc_id, source, published in rows:
            day = (published or "")[:10]
            if filters.published_from and (not day or day < filters.published_from[:10]):
                continue
            if filters.published_to and (not day or day > filters.published_to[:10]):
                continue
            # A source matches itself, the files of a folder (`dir/…`) and the records of a file (`file:N`).
            if sources is not None and not any(
                    source == s or source.startswith((s + "/", s + ":")) for s in sources):
                continue
            doc_ids.append(doc_id)
        vids = [r[0] for r in self._rows_in("SELECT vid FROM passages WHERE doc_id IN ({})", doc_ids)]
        return np.array(sorted(vids), dtype=np.int64)

    def _rows_in(self, sql: str, keys: Sequence[object]) -> Iterator[tuple]:
        """Rows of `sql`, whose `{}` is an IN list, for every key: 500 at a time, within SQLite's variable limit."""
        for start in range(0, len(keys), 500):
            batch = list(keys[start:start + 500])
            yield from self._conn.execute(sql.format(",".join("?" * len(batch))), batch)

    def list_documents(self) -> list[DocumentSummary]:
        """Every document, sorted by id, each checked against its checksum as `get_document` does."""
        with self._snapshot():
            rows = self._conn.execute(
                f"SELECT {_DOC_COLUMNS}, (SELECT count(*) FROM passages p WHERE p.doc_id = d.doc_id)"
                " FROM documents d ORDER BY d.doc_id"
            ).fetchall()
            for row in rows:
                _verify_document_row(row)
        return [DocumentSummary(doc_id=r[0], title=r[1], url=r[2], published=r[3], source=r[4],
                                chars=len(r[6]), passages=r[10]) for r in rows]

    def get_document(self, doc_id: str) -> StoredDocument:
        """One document with its exact, checksum-verified text and its passage spans."""
        with self._snapshot():
            row = self._conn.execute(f"SELECT {_DOC_COLUMNS} FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
            if row is None:
                raise DocumentNotFound(f"no document {doc_id!r} in the index")
            _verify_document_row(row)
            spans = [
                PassageSpan(passage_id=p[1], char_start=p[4], char_end=p[5])
                for p in self._passage_rows("WHERE doc_id = ? ORDER BY ordinal", (doc_id,))
            ]
        return StoredDocument(doc_id=row[0], title=row[1], url=row[2], published=row[3], source=row[4],
                              metadata=json.loads(row[5]), text=row[6], passages=tuple(spans))

    def document_states(self, doc_ids: Sequence[str]) -> dict[str, tuple[str, int]]:
        """(content hash, passage count) of each of these documents that is indexed."""
        found: dict[str, tuple[str, int]] = {}
        with self._snapshot():
            for doc_id, content_hash, passages in self._rows_in(
                    "SELECT d.doc_id, d.content_hash, (SELECT count(*) FROM passages p WHERE p.doc_id = d.doc_id)"
                    " FROM documents d WHERE d.doc_id IN ({})", doc_ids):
                found[doc_id] = (content_hash, passages)
        return found

    # ----- writing ------------------------------------------------------------------------------

    def commit(self, *, upserts: Sequence[PreparedDocument] = (), deletes: Sequence[str] = ()) -> CommitResult:
        """Apply upserts and deletes as one atomic commit; unchanged documents are left as they are.

        Raises:
            DocumentNotFound: a document to delete does not exist (nothing is committed).
            StoreBusy, StoreReadOnly, StoreError: the commit could not be written (nothing is committed).
        """
        ids = [doc.article.doc_id for doc in upserts]
        if len(set(ids)) != len(ids):
            raise ValueError("a commit may hold each doc_id once")
        for doc in upserts:
            if len(doc.chunks) != len(doc.vectors):
                raise ValueError(f"{doc.article.doc_id}: {len(doc.chunks)} chunks but {len(doc.vectors)} vectors")
        # The writer lock before `_mutex`: every read of this store takes `_mutex`, so waiting for another
        # process's commit while holding it would stall this process's reads (a server worker's) as long.
        with _writer_lock(self.directory, self._lock_timeout), self._mutex:
            remove_temp_files(self.directory)
            new_files: list[Path] = []
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                vectors = self._current_vectors()
                lexical = self._current_lexical()  # before the rows change: a rebuild reads them
                statuses, removed, added_ids, added_vectors, added_texts = self._apply_rows(upserts, deletes)
                if not removed and not added_ids and not deletes:
                    self._conn.execute("ROLLBACK")
                    return CommitResult(statuses=statuses)
                count = self._conn.execute("SELECT count(*) FROM passages").fetchone()[0]
                if vectors.suits(self._vector_settings, count):
                    vectors = vectors.writable()
                    vectors.remove(np.asarray(removed, dtype=np.int64))
                    if added_ids:
                        vectors.add(np.asarray(added_ids, dtype=np.int64), np.concatenate(added_vectors))
                else:  # another kind, or one trained on too few of the vectors: build it again
                    vectors = self._build_vectors(current=vectors.kind)
                lexical = lexical.updated(remove=np.asarray(removed, dtype=np.int64),
                                          add_ids=np.asarray(added_ids, dtype=np.int64), add_texts=added_texts)
                if lexical.size != vectors.size:  # cannot happen unless the snapshot lied: start from the rows
                    log.warning("the updated BM25 index holds %d passages, the vectors %d; rebuilding it",
                                lexical.size, vectors.size)
                    lexical = self._rebuild_lexical()
                generation = self._info.generation + 1
                meta: dict[str, object] = {"generation": generation, "passages": vectors.size,
                                           "vectors_kind": vectors.kind, "vectors_quantize": vectors.quantize,
                                           "vectors_trained_on": vectors.trained_on}
                for kind, snapshot in (("vectors", vectors), ("lexical", lexical)):
                    path, digest = write_snapshot(self.directory, kind, generation, snapshot.to_bytes())
                    new_files.append(path)
                    meta[f"{kind}_file"], meta[f"{kind}_sha256"] = path.name, digest
                self._write_meta(meta)
                self._conn.execute("COMMIT")
                new_files = []
                self._vectors = self._mapped(vectors, self.directory / str(meta["vectors_file"]))
                self._vectors_generation = self._lexical_generation = generation
                self._lexical = lexical
                self._info = self._read_info()
            except BaseException as exc:
                self._abort(new_files)
                if isinstance(exc, sqlite3.Error):
                    raise _db_error(self._db_path, exc) from exc
                if isinstance(exc, OSError):
                    raise _os_error(self.directory, exc) from exc
                raise
            remove_stale_snapshots(self.directory, self._info.generation)
            return CommitResult(statuses=statuses, deleted=tuple(deletes))

    def delete(self, doc_id: str) -> None:
        """Delete one document and its passages."""
        self.commit(deletes=[doc_id])

    def _apply_rows(self, upserts: Sequence[PreparedDocument], deletes: Sequence[str]
                    ) -> tuple[dict[str, Status], list[int], list[int], list[np.ndarray], list[str]]:
        """Write the rows; return the statuses, the removed passage ids, and the added ids, vectors and texts
        (with their titles, as BM25 indexes them)."""
        statuses: dict[str, Status] = {}
        removed: list[int] = []
        added_ids: list[int] = []
        added_vectors: list[np.ndarray] = []
        added_texts: list[str] = []
        next_vid = self._conn.execute(
            "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'passages'), 0)").fetchone()[0] + 1
        now = datetime.now(UTC).isoformat(timespec="seconds")
        for doc in upserts:
            article = doc.article
            row = self._conn.execute("SELECT content_hash FROM documents WHERE doc_id = ?",
                                     (article.doc_id,)).fetchone()
            if row is not None and row[0] == doc.content_hash:
                statuses[article.doc_id] = "unchanged"
                continue
            if row is not None:
                removed.extend(self._drop_document(article.doc_id))
            statuses[article.doc_id] = "replaced" if row is not None else "created"
            values = (article.doc_id, article.title, article.url, article.published, article.source,
                      json.dumps(dict(article.metadata), ensure_ascii=False, sort_keys=True), article.text,
                      doc.content_hash, now)
            self._conn.execute(f"INSERT INTO documents ({_DOC_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                               (*values, _document_checksum(values)))
            vectors = np.ascontiguousarray(doc.vectors, dtype=np.float32)
            rows = []
            for ordinal, (chunk, vector) in enumerate(zip(doc.chunks, vectors, strict=True)):
                fields = (next_vid, f"{article.doc_id}#{ordinal}", article.doc_id, ordinal,
                          chunk.char_start, chunk.char_end, vector.tobytes())
                rows.append((*fields, _passage_checksum(fields)))
                added_ids.append(next_vid)
                added_texts.append(with_title(article.title, article.text[chunk.char_start:chunk.char_end]))
                next_vid += 1
            self._conn.executemany("INSERT INTO passages VALUES (?,?,?,?,?,?,?,?)", rows)
            added_vectors.append(vectors)
        for doc_id in deletes:
            if self._conn.execute("SELECT 1 FROM documents WHERE doc_id = ?", (doc_id,)).fetchone() is None:
                raise DocumentNotFound(f"no document {doc_id!r} in the index")
            removed.extend(self._drop_document(doc_id))
        return statuses, removed, added_ids, added_vectors, added_texts

    def _drop_document(self, doc_id: str) -> list[int]:
        vids = [r[0] for r in self._conn.execute("SELECT vid FROM passages WHERE doc_id = ?", (doc_id,))]
        self._conn.execute("DELETE FROM passages WHERE doc_id = ?", (doc_id,))
        self._conn.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,))
        return vids

    def _write_meta(self, values: dict[str, object]) -> None:
        values = {**values, "documents": self._conn.execute("SELECT count(*) FROM documents").fetchone()[0]}
        self._conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                               [(key, str(value)) for key, value in values.items()])

    def _abort(self, new_files: list[Path]) -> None:
        with contextlib.suppress(sqlite3.Error):
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        for path in new_files:
            with contextlib.suppress(OSError):
                path.unlink()
        # The in-memory copies may hold half a change.
        self._vectors, self._vectors_generation = None, -1
        self._lexical, self._lexical_generation = None, -1

    # ----- snapshots and the FAISS copy ---------------------------------------------------------

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[None]:
        """Run reads in one SQLite read transaction, so they see a single commit."""
        with self._mutex:
            try:
                self._conn.execute("BEGIN")
                try:
                    yield
                finally:
                    if self._conn.in_transaction:
                        self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise _db_error(self._db_path, exc) from exc

    def _read_info(self) -> StoreInfo:
        try:
            meta = dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.Error as exc:
            raise _db_error(self._db_path, exc) from exc
        try:
            version = int(meta["format_version"])
            info = StoreInfo(format_version=version, model=meta["model"], dimension=int(meta["dimension"]),
                             documents=int(meta["documents"]), passages=int(meta["passages"]),
                             generation=int(meta["generation"]), vector_kind=meta.get("vectors_kind", "flat"),
                             vector_quantize=meta.get("vectors_quantize", "none"))
        except (KeyError, ValueError) as exc:
            raise StoreCorrupt(f"the manifest in {self._db_path} is damaged ({exc!r}); rebuild the index") from exc
        if version != FORMAT_VERSION:
            raise StoreError(f"the index at {self.directory} has format {version}; this citeqa reads "
                             f"format {FORMAT_VERSION}")
        return info

    def _snapshot_meta(self, kind: str) -> tuple[str, str]:
        meta = dict(self._conn.execute("SELECT key, value FROM meta WHERE key IN (?, ?)",
                                       (f"{kind}_file", f"{kind}_sha256")).fetchall())
        return meta.get(f"{kind}_file", ""), meta.get(f"{kind}_sha256", "")

    def _current_vectors(self) -> VectorIndex:
        """The FAISS index of the commit this snapshot sees (call inside a snapshot or a write)."""
        self._info = self._read_info()
        if self._vectors is not None and self._vectors_generation == self._info.generation:
            return self._vectors
        count = self._conn.execute("SELECT count(*) FROM passages").fetchone()[0]
        settings, vectors = self._vector_settings, None
        with verified_snapshot(self.directory, "vectors", *self._snapshot_meta("vectors")) as path:
            if path is not None:
                try:
                    vectors = VectorIndex.open(path, self._info.dimension, mmap=settings.mmap,
                                               nprobe=settings.nprobe, trained_on=self._trained_on())
                except ValueError as exc:
                    log.warning("the vector snapshot is unreadable (%s); rebuilding it from %s", exc, DB_NAME)
        if vectors is not None and not vectors.size == count == self._info.passages:
            log.warning("the vector snapshot holds %d vectors but %s has %d passages; rebuilding it",
                        vectors.size, DB_NAME, count)
            vectors = None
        if vectors is None:
            vectors = self._rebuild_vectors(count)
        self._vectors, self._vectors_generation = vectors, self._info.generation
        return vectors

    def _trained_on(self) -> int | None:
        """How many vectors the committed index was trained on (None: an older store did not say)."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'vectors_trained_on'").fetchone()
        try:
            return int(row[0]) if row else None
        except ValueError:
            return None

    def _mapped(self, vectors: VectorIndex, path: Path) -> VectorIndex:
        """After a commit: the snapshot just written, memory-mapped, in place of the private copy (if mmap)."""
        if not self._vector_settings.mmap:
            return vectors
        try:
            return VectorIndex.open(str(path), vectors.dimension, mmap=True, nprobe=vectors.nprobe,
                                    trained_on=vectors.trained_on)
        except (ValueError, RuntimeError, OSError) as exc:
            log.warning("cannot map %s (%s); keeping the index in memory", path, exc)
            return vectors

    def _current_lexical(self) -> LexicalIndex:
        """The BM25 index of the commit this snapshot sees (call inside a snapshot)."""
        self._info = self._read_info()
        if self._lexical is not None and self._lexical_generation == self._info.generation:
            return self._lexical
        lexical = None
        data = read_snapshot(self.directory, "lexical", *self._snapshot_meta("lexical"))
        if data is not None:
            try:
                lexical = LexicalIndex.from_bytes(data)
            except ValueError as exc:
                log.warning("the BM25 snapshot is unreadable (%s); rebuilding it from %s", exc, DB_NAME)
            if lexical is not None and lexical.size != self._info.passages:
                log.warning("the BM25 snapshot holds %d passages, the manifest %d; rebuilding it",
                            lexical.size, self._info.passages)
                lexical = None
        if lexical is None:
            lexical = self._rebuild_lexical()
        self._lexical, self._lexical_generation = lexical, self._info.generation
        return lexical

    def _rebuild_lexical(self) -> LexicalIndex:
        """BM25 over every passage (with its title), from the checksummed document texts."""
        docs = {row[0]: _verify_document_row(row) for row in
                self._conn.execute(f"SELECT {_DOC_COLUMNS} FROM documents")}
        rows = self._passage_rows("ORDER BY vid", ())
        texts = []
        for row in rows:
            doc = docs.get(row[2])
            if doc is None or not 0 <= row[4] < row[5] <= len(doc[6]):
                raise StoreCorrupt(f"passage {row[1]!r} does not fit its document in {self._db_path}")
            texts.append(with_title(doc[1], doc[6][row[4]:row[5]]))
        return LexicalIndex.build(np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)), texts)

    def _rebuild_vectors(self, count: int) -> VectorIndex:
        """The vector index made again from the checksummed vectors kept in SQLite."""
        if count != self._info.passages:
            raise StoreCorrupt(f"{self._db_path} has {count} passages but its manifest says {self._info.passages}; "
                               "rebuild the index")
        kind = self._info.vector_kind
        return self._build_vectors(current=cast(Kind, kind) if kind in ("flat", "ivf") else None)

    def _build_vectors(self, *, current: Kind | None) -> VectorIndex:
        """A vector index of the configured kind over every passage vector in SQLite (as this transaction sees)."""
        dimension = self._info.dimension
        rows = self._passage_rows("ORDER BY vid", ())
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        matrix = np.empty((0, dimension), dtype=np.float32)
        if rows:
            try:
                matrix = np.stack([np.frombuffer(r[6], dtype=np.float32) for r in rows])
            except ValueError as exc:
                raise StoreCorrupt(f"passage vectors in {self._db_path} are damaged: {exc}") from exc
            if matrix.shape[1] != dimension:
                raise StoreCorrupt(f"passage vectors in {self._db_path} have dimension {matrix.shape[1]}, "
                                   f"expected {dimension}")
        del rows
        if len(ids) > 1000:
            log.info("building the %s vector index over %d passages", self._vector_settings.kind, len(ids))
        return build(self._vector_settings, dimension, ids, matrix, current=current)

    def _passage_rows(self, where: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
        return self._checked_passage_rows(self._conn.execute(_PASSAGE_SELECT + where, tuple(params)).fetchall())

    def _passages_with_vids(self, vids: Sequence[int]) -> list[tuple[Any, ...]]:
        return self._checked_passage_rows(list(self._rows_in(_PASSAGE_SELECT + "WHERE vid IN ({})", vids)))

    def _checked_passage_rows(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        checked = self._checked_passages
        for row in rows:
            if checked.get(row[0]) != row:
                if _passage_checksum(row[:7]) != row[7]:
                    raise StoreCorrupt(f"passage {row[1]!r} in {self._db_path} fails its checksum; rebuild the index")
                checked[row[0]] = row
        return rows

    def _document_rows(self, doc_ids: Sequence[str]) -> dict[str, tuple[Any, ...]]:
        """The checked rows of these documents, by id (absent ids are left out)."""
        found: dict[str, tuple[Any, ...]] = {}
        checked = self._checked_documents
        for row in self._rows_in(f"SELECT {_DOC_COLUMNS} FROM documents WHERE doc_id IN ({{}})", doc_ids):
            if checked.get(row[0]) != row:
                checked[row[0]] = _verify_document_row(row)
            found[row[0]] = row
        return found

    def _passages_by_vid(self, vids: Sequence[int]) -> dict[int, Passage]:
        if not vids:
            return {}
        rows = self._passages_with_vids(vids)
        doc_ids = sorted({r[2] for r in rows})
        docs = self._document_rows(doc_ids)
        for doc_id in doc_ids:
            if doc_id not in docs:
                raise StoreCorrupt(f"passages of {doc_id!r} have no document row in {self._db_path}")
        found = {}
        for vid, passage_id, doc_id, _ordinal, start, end, _vector, _sum in rows:
            doc = docs[doc_id]
            if not 0 <= start < end <= len(doc[6]):
                raise StoreCorrupt(f"passage {passage_id!r} lies outside its document in {self._db_path}")
            found[vid] = Passage(passage_id=passage_id, doc_id=doc_id, char_start=start, char_end=end,
                                 text=doc[6][start:end], title=doc[1], url=doc[2], published=doc[3], source=doc[4])
        missing = [vid for vid in vids if vid not in found]
        if missing:
            raise StoreCorrupt(f"the vector index names passages that {self._db_path} does not hold: {missing[:5]}")
        return found



class StoreView:
    """Reads from one commit of a store (`with store.reading() as view`), only while the `with` lasts.

    Rankings come as (key, score) pairs, best first, where a key is the store's own passage number: a caller
    that fuses or cuts rankings reads whole passages (each row checked) only for the keys it keeps, instead
    of for every candidate of every ranker.
    Usage: with store.reading() as view: best = view.dense(vector, 30)[:5]; hits = view.hits(best)
    """

    def __init__(self, store: Store) -> None:
        self._store = store

    def dense(self, query: np.ndarray, k: int, *, filters: PassageFilter | None = None) -> list[tuple[int, float]]:
        """The k keys nearest to the unit vector `query` and their cosines, best first."""
        return self._store._dense_ranking(query, k, filters)

    def lexical(self, query: str, k: int, *, filters: PassageFilter | None = None) -> list[tuple[int, float]]:
        """The k keys with the highest BM25 score for `query` (title included) and their scores, best first."""
        return self._store._lexical_ranking(query, k, filters)

    def passage_ids(self, keys: Sequence[int]) -> dict[int, str]:
        """The passage id of each key (cheap: for ordering; not checked until the passage itself is read)."""
        return self._store._passage_ids(keys)

    def vectors(self, keys: Sequence[int]) -> np.ndarray:
        """The stored unit vectors of these keys, in the order given."""
        return self._store._vectors_of(keys)

    def hits(self, ranked: Sequence[tuple[int, float]]) -> list[SearchHit]:
        """The passages of (key, score) pairs with their scores, in the order given."""
        return self._store._hits(ranked)

def _nonempty(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except OSError:
        return False


def _create_database(directory: Path, *, model: str, dimension: int) -> None:
    """Build the empty database under a temp name and rename it, so a kill never leaves half of one."""
    remove_temp_files(directory)
    tmp = directory / ".tmp-create.sqlite"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.executescript(_SCHEMA)
            meta = {"format_version": FORMAT_VERSION, "model": model, "dimension": dimension, "generation": 0,
                    "vectors_file": "", "vectors_sha256": "", "lexical_file": "", "lexical_sha256": "",
                    "documents": 0, "passages": 0,
                    "created_at": datetime.now(UTC).isoformat(timespec="seconds")}
            conn.executemany("INSERT INTO meta VALUES (?, ?)", [(k, str(v)) for k, v in meta.items()])
            conn.execute("PRAGMA journal_mode=WAL")
        finally:
            conn.close()
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, directory / DB_NAME)
        fsync_dir(directory)
    except (OSError, sqlite3.Error) as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, sqlite3.Error):
            raise _db_error(directory / DB_NAME, exc) from exc
        raise _os_error(directory, exc) from exc


@contextlib.contextmanager
def _writer_lock(directory: Path, timeout: float) -> Iterator[None]:
    lock = FileLock(directory / LOCK_NAME, timeout=timeout)
    try:
        lock.acquire()
    except Timeout as exc:
        raise StoreBusy(f"another process is writing to {directory}; waited {timeout:g} s") from exc
    except OSError as exc:
        raise _os_error(directory, exc) from exc
    try:
        yield
    finally:
        lock.release()


def _document_checksum(values: Sequence[object]) -> str:
    return hashlib.sha256(json.dumps(list(values), ensure_ascii=False).encode("utf-8")).hexdigest()


def _verify_document_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    if _document_checksum(row[:9]) != row[9]:
        raise StoreCorrupt(f"document {row[0]!r} fails its checksum; the index file is damaged, rebuild it")
    return row


def _passage_checksum(fields: tuple[Any, ...]) -> int:
    head = json.dumps([fields[i] for i in range(1, 6)], ensure_ascii=False).encode("utf-8")
    return zlib.crc32(bytes(fields[6]), zlib.crc32(head, int(fields[0]) & 0xFFFFFFFF))


def _db_error(path: Path, exc: sqlite3.Error) -> StoreError:
    message = str(exc)
    if "locked" in message or "busy" in message:
        return StoreBusy(f"{path} is locked by another process: {message}")
    if "readonly" in message or "read-only" in message:
        return StoreReadOnly(f"{path} is read-only: {message}")
    if isinstance(exc, sqlite3.OperationalError) and ("full" in message or "I/O" in message):
        return StoreError(f"cannot write {path}: {message}")
    return StoreCorrupt(f"{path} is damaged ({message}); rebuild the index")


def _os_error(directory: Path, exc: OSError) -> StoreError:
    if isinstance(exc, PermissionError) or exc.errno == 30:  # EROFS
        return StoreReadOnly(f"cannot write to {directory}: {exc.strerror or exc}")
    return StoreError(f"cannot write to {directory}: {exc.strerror or exc}")
