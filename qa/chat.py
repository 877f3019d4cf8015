"""Chat sessions: multi-turn question answering with follow-ups resolved against the stored history.

Usage:
    store = ChatStore(path=index_dir / "chat.sqlite")             # created on first use (SQLite, WAL)
    chat = ChatPipeline(pipeline=qa_pipeline, rewriter=RuleRewriter(nlp=nlp), store=store)
    session_id = chat.start()
    chat.ask(session_id, "Who won the Northmoor governor race?")   # → Answer
    answer = chat.ask(session_id, "When will she be sworn in?")
    answer.question             # "When will she be sworn in?"  (what the user typed)
    answer.standalone_question  # "When will Amara Kessling be sworn in?"  (what was answered)
    chat.turns(session_id)      # [ChatTurn(...), ...], oldest first, each with its answer and citations
    chat.reset(session_id)      # forget the turns, keep the session; store.delete(session_id) removes it

`ChatStore` is the storage (sessions and turns; every call opens its own short-lived connection, so one store
may be shared by threads and several processes may use one file). `ChatPipeline` answers a turn: rewrite the
follow-up → `QAPipeline.ask(standalone)` → store the turn → return the answer. An unknown session id raises
`qa.errors.UnknownSession`; an empty or too long question raises `qa.errors.BadQuestion` and stores nothing.

Concurrency: the database is in WAL mode, so readers never block; writers take SQLite's write lock with
`BEGIN IMMEDIATE` (the turn number is read and written in one transaction, so two writers appending to one
session never get the same number) and wait up to `busy_timeout` seconds for each other.
"""

import json
import logging
import sqlite3
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from index.records import PassageFilter
from qa.errors import BadQuestion, ChatStoreCorrupt, UnknownSession
from qa.followups import FollowUpRewriter, HistoryTurn
from qa.pipeline import QAPipeline, TracedAnswer
from qa.records import Answer, Citation

log = logging.getLogger(__name__)

_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS turns (
    session_id TEXT NOT NULL REFERENCES sessions(session_id) ON DELETE CASCADE,
    n INTEGER NOT NULL,
    question TEXT NOT NULL,
    standalone_question TEXT NOT NULL,
    answer_json TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (session_id, n)
);
"""


@dataclass(frozen=True)
class ChatTurn:
    """One stored exchange. `answer` is the full answer object, citations included."""

    n: int  # 1, 2, … within the session (numbers of dropped old turns are not reused)
    question: str
    standalone_question: str
    answer: Answer
    created_at: str  # ISO 8601, UTC


@dataclass(frozen=True)
class SessionInfo:
    """A session as listed: its id, when it began and last changed, and how many turns it holds."""

    session_id: str
    created_at: str
    updated_at: str
    turns: int


def answer_to_dict(answer: Answer) -> dict[str, Any]:
    """The answer as plain JSON-able data (every field, citations as dicts)."""
    data = asdict(answer)
    data["citations"] = [asdict(c) for c in answer.citations]
    data["timings_ms"] = dict(answer.timings_ms)
    return data


def answer_from_dict(data: Mapping[str, Any]) -> Answer:
    """The inverse of `answer_to_dict`; unknown keys (from a newer version) are ignored."""
    fields = set(Answer.__dataclass_fields__)
    citation_fields = set(Citation.__dataclass_fields__)
    values = {k: v for k, v in data.items() if k in fields}
    values["citations"] = tuple(Citation(**{k: v for k, v in c.items() if k in citation_fields})
                                for c in data.get("citations", ()))
    return Answer(**values)


class ChatStore:
    """Chat sessions and their turns in one SQLite file.

    Usage: store = ChatStore(path=Path("chat.sqlite")); sid = store.create(); store.append(sid, ...)
    """

    def __init__(self, *, path: Path, busy_timeout: float = 30.0, max_turns: int = 100) -> None:
        if busy_timeout <= 0:
            raise ValueError(f"busy_timeout must be positive, got {busy_timeout}")
        if max_turns < 1:
            raise ValueError(f"max_turns must be at least 1, got {max_turns}")
        self.path = Path(path)
        if self.path.exists() and self.path.is_dir():
            raise ValueError(f"the chat database path is a directory: {self.path}")
        self._busy_timeout = busy_timeout
        self._max_turns = max_turns
        self._ready = False

    # -- sessions -----------------------------------------------------------------------------------------

    def create(self) -> str:
        """A new empty session; returns its id."""
        session_id = uuid.uuid4().hex
        now = _now()
        with self._write() as db:
            db.execute("INSERT INTO sessions (session_id, created_at, updated_at) VALUES (?, ?, ?)",
                       (session_id, now, now))
        return session_id

    def exists(self, session_id: str) -> bool:
        """Whether a session with this id is stored."""
        with self._read() as db:
            return db.execute("SELECT 1 FROM sessions WHERE session_id = ?", (session_id,)).fetchone() is not None

    def sessions(self) -> list[SessionInfo]:
        """Every session, the most recently changed first."""
        with self._read() as db:
            rows = db.execute(
                "SELECT s.session_id, s.created_at, s.updated_at, COUNT(t.n) FROM sessions s "
                "LEFT JOIN turns t ON t.session_id = s.session_id GROUP BY s.session_id "
                "ORDER BY s.updated_at DESC, s.created_at DESC").fetchall()
        return [SessionInfo(session_id=r[0], created_at=r[1], updated_at=r[2], turns=r[3]) for r in rows]

    def reset(self, session_id: str) -> None:
        """Forget a session's turns; the session itself (and its id) stays."""
        with self._write() as db:
            self._require(db, session_id)
            db.execute("DELETE FROM turns WHERE session_id = ?", (session_id,))
            db.execute("UPDATE sessions SET updated_at = ? WHERE session_id = ?", (_now(), session_id))

    def delete(self, session_id: str) -> None:
        """Remove a session and its turns."""
        with self._write() as db:
            self._require(db, session_id)
            db.execute("DELETE FROM turns WHERE session_id = ?", (session_id,))
            db.execute("DELETE FROM sessions WHERE session_id = ?", (session_id,))

    # -- turns --------------------------------------------------------------------------------------------

    def append(self, session_id: str, *, question: str, standalone_question: str, answer: Answer) -> ChatTurn:
        """Store one turn (with its answer and citations); the oldest turns beyond `max_turns` are dropped."""
        payload = json.dumps(answer_to_dict(answer), ensure_ascii=False)
        now = _now()
        with self._write() as db:
            self._require(db, session_id)
            # Read and write the number in one IMMEDIATE transaction: two writers cannot both take n.
            n = db.execute("SELECT COALESCE(MAX(n), 0) + 1 FROM turns WHERE session_id = ?",
                           (session_id,)).fetchone()[0]
            db.execute("INSERT INTO turns (session_id, n, question, standalone_question, answer_json, created_at) "
                       "VALUES (?, ?, ?, ?, ?, ?)", (session_id, n, question, standalone_question, payload, now))
            db.execute("DELETE FROM turns WHERE session_id = ? AND n <= ?", (session_id, n - self._max_turns))
            db.execute("UPDATE sessions SET updated_at = ? WHERE session_id = ?", (now, session_id))
        return ChatTurn(n=n, question=question, standalone_question=standalone_question, answer=answer,
                        created_at=now)

    def turns(self, session_id: str, *, last: int | None = None) -> list[ChatTurn]:
        """A session's turns, oldest first (only the `last` ones when given)."""
        if last is not None and last < 0:
            raise ValueError(f"last must not be negative, got {last}")
        with self._read() as db:
            self._require(db, session_id)
            if last is None:
                rows = db.execute("SELECT n, question, standalone_question, answer_json, created_at FROM turns "
                                  "WHERE session_id = ? ORDER BY n", (session_id,)).fetchall()
            else:
                rows = db.execute("SELECT n, question, standalone_question, answer_json, created_at FROM turns "
                                  "WHERE session_id = ? ORDER BY n DESC LIMIT ?", (session_id, last)).fetchall()
                rows.reverse()
        turns = []
        for n, question, standalone, payload, created in rows:
            try:
                answer = answer_from_dict(json.loads(payload))
            except (ValueError, TypeError) as exc:
                raise ChatStoreCorrupt(f"turn {n} of session {session_id} in {self.path} is unreadable") from exc
            turns.append(ChatTurn(n=n, question=question, standalone_question=standalone, answer=answer,
                                  created_at=created))
        return turns

    # -- connections --------------------------------------------------------------------------------------

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # isolation_level=None: transactions are ours (BEGIN IMMEDIATE), not the module's implicit ones.
            db = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise ChatStoreCorrupt(f"cannot open the chat database {self.path}: {exc}") from exc
        try:
            db.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            db.execute("PRAGMA foreign_keys = ON")
            if not self._ready:
                self._init(db)
            yield db
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise
            raise ChatStoreCorrupt(f"the chat database {self.path} is damaged: {exc}") from exc
        finally:
            db.close()

    def _init(self, db: sqlite3.Connection) -> None:
        db.execute("PRAGMA journal_mode = WAL")
        # Statement by statement inside our transaction (executescript would commit on its own).
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                db.execute(statement)
            row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(_SCHEMA_VERSION),))
            elif row[0] != str(_SCHEMA_VERSION):
                raise ChatStoreCorrupt(f"{self.path} has chat schema version {row[0]}; this citeqa reads "
                                       f"version {_SCHEMA_VERSION}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        self._ready = True

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as db:
            db.execute("BEGIN")  # one snapshot for the whole read
            try:
                yield db
            finally:
                db.execute("COMMIT")

    @staticmethod
    def _require(db: sqlite3.Connection, session_id: str) -> None:
        if not isinstance(session_id, str) or db.execute(
                "SELECT 1 FROM sessions WHERE session_id = ?", (session_id,)).fetchone() is None:
            raise UnknownSession(f"no chat session {session_id!r}")


class ChatPipeline:
    """Answers the turns of chat sessions: rewrite the follow-up, answer it, store the turn.

    Usage: ChatPipeline(pipeline=p, rewriter=r, store=s).ask(session_id, "When will she be sworn in?")
    """

    def __init__(self, *, pipeline: QAPipeline, rewriter: FollowUpRewriter, store: ChatStore,
                 context_turns: int = 3, max_question_chars: int = 1000) -> None:
        if not hasattr(pipeline, "ask_traced"):
            raise TypeError(f"pipeline must be a QAPipeline, got {type(pipeline).__name__}")
        if not hasattr(rewriter, "rewrite"):
            raise TypeError(f"rewriter must have a rewrite(question, history) method, got {type(rewriter).__name__}")
        if not isinstance(store, ChatStore):
            raise TypeError(f"store must be a ChatStore, got {type(store).__name__}")
        if context_turns < 1:
            raise ValueError(f"context_turns must be at least 1, got {context_turns}")
        if max_question_chars < 1:
            raise ValueError(f"max_question_chars must be positive, got {max_question_chars}")
        self.pipeline = pipeline
        self.rewriter = rewriter
        self.store = store
        self._context_turns = context_turns
        self._max_chars = max_question_chars

    def start(self) -> str:
        """A new session; returns its id."""
        return self.store.create()

    def ask(self, session_id: str, question: str, *, k: int | None = None,
            filters: PassageFilter | None = None) -> Answer:
        """Answer one turn of a session and store it.

        Returns the answer object with `question` as typed and `standalone_question` as answered.

        Raises:
            UnknownSession: no session `session_id`.
            BadQuestion: the question is empty or too long (nothing is stored).
        """
        return self.ask_traced(session_id, question, k=k, filters=filters).answer

    def ask_traced(self, session_id: str, question: str, *, k: int | None = None,
                   filters: PassageFilter | None = None) -> TracedAnswer:
        """`ask`, also returning the passages the answer was made from (what `citeqa eval` scores)."""
        question = " ".join(question.split())
        if not question:
            raise BadQuestion("the question is empty")
        if len(question) > self._max_chars:
            raise BadQuestion(f"the question is longer than {self._max_chars} characters")
        history = self.history(session_id)
        standalone = " ".join(self.rewriter.rewrite(question, history).split()) or question
        if len(standalone) > self._max_chars:
            standalone = question  # a rewrite must never turn a valid question into bad input
        traced = self.pipeline.ask_traced(standalone, k=k, filters=filters)
        answer = replace(traced.answer, question=question, standalone_question=standalone)
        self.store.append(session_id, question=question, standalone_question=standalone, answer=answer)
        return replace(traced, answer=answer)

    def history(self, session_id: str) -> list[HistoryTurn]:
        """What the rewriter reads: the last `context_turns` turns, oldest first."""
        return [HistoryTurn.from_answer(t.answer, question=t.question)
                for t in self.store.turns(session_id, last=self._context_turns)]

    def turns(self, session_id: str) -> Sequence[ChatTurn]:
        """Every stored turn of a session, oldest first."""
        return self.store.turns(session_id)

    def reset(self, session_id: str) -> None:
        """Forget a session's turns (follow-ups then have no history)."""
        self.store.reset(session_id)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
