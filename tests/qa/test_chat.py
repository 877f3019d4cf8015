"""Chat sessions: the SQLite store (round trip, reset, unknown ids, concurrent writers, reopening) and the
chat pipeline (rewrite → answer → store), then the whole thing over real indexes (slow)."""

import json
import multiprocessing
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from qa.chat import ChatPipeline, ChatStore, answer_from_dict, answer_to_dict
from qa.errors import BadQuestion, ChatStoreCorrupt, UnknownSession
from qa.followups import HistoryTurn, RuleRewriter
from qa.metrics import exact_match, f1_score
from qa.pipeline import TracedAnswer
from qa.records import Answer, Citation
from tests.conftest import ARTICLES, ROOT, make_indexer
from tests.qa.followup_cases import HELDOUT_ARTICLES, HELDOUT_CHATS


def make_answer(question: str, short: str = "Amara Kessling", n: int = 1) -> Answer:
    quote = f"{short} won the race for governor of Northmoor Province on Sunday."
    citation = Citation(n=n, doc_id="wire-1", title="Kessling wins", url="https://x.example/1",
                        passage_id="wire-1#0", char_start=10, char_end=10 + len(quote), quote=quote)
    return Answer(question=question, answer=f"{short} [1].", short_answer=short, refused=False,
                  citations=(citation,), confidence=0.8, answer_type="person",
                  timings_ms={"retrieve": 1.0, "answer": 2.0, "total": 3.0})


@pytest.fixture
def store(tmp_path: Path) -> ChatStore:
    return ChatStore(path=tmp_path / "chat.sqlite")


def test_answer_round_trips_through_json() -> None:
    answer = make_answer("Who won?")
    assert answer_from_dict(json.loads(json.dumps(answer_to_dict(answer)))) == answer


def test_store_round_trip_with_citations(store: ChatStore) -> None:
    sid = store.create()
    assert store.exists(sid) and store.turns(sid) == []
    first = make_answer("Who won the Northmoor governor race?")
    store.append(sid, question=first.question, standalone_question=first.question, answer=first)
    second = make_answer("When will she be sworn in?", short="June 2")
    store.append(sid, question="When will she be sworn in?", standalone_question="When will Amara Kessling be "
                 "sworn in?", answer=second)
    turns = store.turns(sid)
    assert [t.n for t in turns] == [1, 2]
    assert turns[1].standalone_question == "When will Amara Kessling be sworn in?"
    assert turns[0].answer == first and turns[1].answer.citations[0].quote.startswith("June 2 won")
    assert [t.n for t in store.turns(sid, last=1)] == [2]
    assert turns[0].created_at.endswith("+00:00")
    [info] = store.sessions()
    assert info.session_id == sid and info.turns == 2


def test_reset_keeps_the_session_and_delete_removes_it(store: ChatStore) -> None:
    sid = store.create()
    store.append(sid, question="q", standalone_question="q", answer=make_answer("q"))
    store.reset(sid)
    assert store.exists(sid) and store.turns(sid) == []
    store.delete(sid)
    assert not store.exists(sid)
    with pytest.raises(UnknownSession, match=f"no chat session '{sid}'"):
        store.turns(sid)


@pytest.mark.parametrize("call", ["turns", "reset", "delete", "append"])
def test_unknown_session_is_a_qa_error(store: ChatStore, call: str) -> None:
    with pytest.raises(UnknownSession, match="no chat session 'nope'"):
        if call == "append":
            store.append("nope", question="q", standalone_question="q", answer=make_answer("q"))
        else:
            getattr(store, call)("nope")


def test_history_is_bounded(tmp_path: Path) -> None:
    store = ChatStore(path=tmp_path / "chat.sqlite", max_turns=3)
    sid = store.create()
    for i in range(5):
        store.append(sid, question=f"q{i}", standalone_question=f"q{i}", answer=make_answer(f"q{i}"))
    assert [t.n for t in store.turns(sid)] == [3, 4, 5]


def test_reopening_the_database_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "chat.sqlite"
    sid = ChatStore(path=path).create()
    ChatStore(path=path).append(sid, question="q", standalone_question="q", answer=make_answer("q"))
    reopened = ChatStore(path=path)
    assert [t.question for t in reopened.turns(sid)] == ["q"]
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "chat.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ChatStoreCorrupt, match="damaged"):
        ChatStore(path=path).create()


def test_bad_arguments_fail_at_construction(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_turns must be at least 1, got 0"):
        ChatStore(path=tmp_path / "c.sqlite", max_turns=0)
    with pytest.raises(ValueError, match="is a directory"):
        ChatStore(path=tmp_path)


def test_concurrent_appends_from_two_threads(store: ChatStore) -> None:
    sid = store.create()
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            for i in range(25):
                store.append(sid, question=f"{name}{i}", standalone_question=f"{name}{i}",
                             answer=make_answer(f"{name}{i}"))
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    turns = store.turns(sid)
    assert [t.n for t in turns] == list(range(1, 51))
    assert sorted(t.question for t in turns) == sorted(f"{n}{i}" for n in "ab" for i in range(25))


def _append_many(path: str, sid: str, name: str) -> None:
    store = ChatStore(path=Path(path))
    for i in range(20):
        store.append(sid, question=f"{name}{i}", standalone_question=f"{name}{i}", answer=make_answer(f"{name}{i}"))


@pytest.mark.slow
def test_concurrent_appends_from_two_processes(tmp_path: Path) -> None:
    path = tmp_path / "chat.sqlite"
    sid = ChatStore(path=path).create()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(str(path), sid, n)) for n in "xy"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    turns = ChatStore(path=path).turns(sid)
    assert [t.n for t in turns] == list(range(1, 41))
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@dataclass
class EchoPipeline:
    """Answers every question with a fixed person, recording what it was asked."""

    asked: list[str]

    def ask_traced(self, question: str, *, k=None, filters=None) -> TracedAnswer:
        self.asked.append(question)
        return TracedAnswer(answer=make_answer(question), passages=())


def test_chat_pipeline_rewrites_answers_and_stores(store: ChatStore, nlp) -> None:
    echo = EchoPipeline(asked=[])
    chat = ChatPipeline(pipeline=echo, rewriter=RuleRewriter(nlp=nlp), store=store)  # type: ignore[arg-type]
    sid = chat.start()
    first = chat.ask(sid, "Who won the Northmoor governor race?")
    assert first.question == first.standalone_question == "Who won the Northmoor governor race?"
    second = chat.ask(sid, "  When will she   be sworn in? ")
    assert second.question == "When will she be sworn in?"
    assert second.standalone_question == "When will Amara Kessling be sworn in?"
    assert echo.asked[-1] == "When will Amara Kessling be sworn in?"
    stored = chat.turns(sid)
    assert [t.standalone_question for t in stored] == [first.standalone_question, second.standalone_question]
    assert stored[1].answer == second and stored[1].answer.citations
    assert chat.history(sid)[-1] == HistoryTurn.from_answer(second)

    chat.reset(sid)
    assert chat.ask(sid, "When will she be sworn in?").standalone_question == "When will she be sworn in?"


def test_chat_pipeline_bad_input_stores_nothing(store: ChatStore, nlp) -> None:
    chat = ChatPipeline(pipeline=EchoPipeline(asked=[]), rewriter=RuleRewriter(nlp=nlp), store=store,  # type: ignore[arg-type]
                        max_question_chars=50)
    sid = chat.start()
    with pytest.raises(BadQuestion, match="empty"):
        chat.ask(sid, "   ")
    with pytest.raises(BadQuestion, match="longer than 50 characters"):
        chat.ask(sid, "x" * 51)
    with pytest.raises(UnknownSession):
        chat.ask("missing", "Who won?")
    assert chat.turns(sid) == []


# -- end to end over real indexes (the figures of the README's chat section) ----------------------------------


def run_chats(chat: ChatPipeline, chats: list[dict]) -> dict:
    """Ask every conversation; score the follow-ups' answers and how close their rewrites are to `standalone`."""
    rows = []
    for conversation in chats:
        sid = chat.start()
        for number, turn in enumerate(conversation["turns"]):
            answer = chat.ask(sid, turn["question"])
            if number == 0:
                continue
            prediction = "" if answer.refused else (answer.short_answer or "")
            golds = turn["answers"]
            right = answer.refused if not golds else (not answer.refused and f1_score(prediction, golds) >= 0.5)
            rows.append({"id": f"{conversation['id']}.{number + 1}", "question": turn["question"],
                         "rewrite": answer.standalone_question, "gold_rewrite": turn.get("standalone"),
                         "prediction": prediction, "right": right,
                         "em": exact_match(prediction, golds) if golds else float(answer.refused),
                         "rewrite_f1": f1_score(answer.standalone_question or "", [turn["standalone"]])})
    n = len(rows)
    return {"n": n, "right": sum(r["right"] for r in rows), "em": sum(r["em"] for r in rows) / n,
            "rewrite_f1": sum(r["rewrite_f1"] for r in rows) / n, "rows": rows}


def report(name: str, result: dict, floor: dict, ceiling: dict) -> None:
    """Printed with `pytest -s`: the figures of the README's chat section."""
    for label, r in (("rules", result), ("historyless", floor), ("gold standalone", ceiling)):
        print(f"{name} {label}: {r['right']}/{r['n']} right, EM {r['em']:.2f}, rewrite F1 {r['rewrite_f1']:.2f}")
    for row, gold_row in zip(result["rows"], ceiling["rows"], strict=True):
        print(f"  {row['id']} {'ok ' if row['right'] else 'BAD'} (gold rewrite {'ok' if gold_row['right'] else 'BAD'})"
              f" {row['rewrite']!r} -> {row['prediction']!r}")


def extractive_chat(index: Path, embedder, nlp, tmp_path: Path, *, rewriter=None) -> ChatPipeline:
    from index.store import Store
    from qa.extractive import DEFAULT_REFUSAL_THRESHOLD, ExtractiveAnswerer
    from qa.pipeline import QAPipeline
    from qa.retriever import Retriever

    store = Store.open(index, model=embedder.name, dimension=embedder.dimension)
    pipeline = QAPipeline(retriever=Retriever(store=store, embedder=embedder),
                          answerer=ExtractiveAnswerer(nlp=nlp, embedder=embedder,
                                                      refusal_threshold=DEFAULT_REFUSAL_THRESHOLD))
    return ChatPipeline(pipeline=pipeline, rewriter=rewriter or RuleRewriter(nlp=nlp),
                        store=ChatStore(path=tmp_path / "chat.sqlite"))


class NoRewrite:
    """The floor: every turn asked as typed."""

    def rewrite(self, question: str, history) -> str:
        return question


class GoldRewrite:
    """The ceiling of rewriting: every follow-up replaced by its gold `standalone` form."""

    def __init__(self, chats: list[dict]) -> None:
        self._gold = {t["question"]: t["standalone"] for c in chats for t in c["turns"] if "standalone" in t}

    def rewrite(self, question: str, history) -> str:
        return self._gold.get(question, question) if history else question


@pytest.mark.slow
def test_demo_chats_end_to_end(tmp_path: Path, minilm, nlp) -> None:
    index = tmp_path / "index"
    make_indexer(index, minilm).ingest_paths([ARTICLES])
    chats = [json.loads(line) for line in (ROOT / "examples" / "gold" / "demo_chat.jsonl").read_text().splitlines()]
    result = run_chats(extractive_chat(index, minilm, nlp, tmp_path), chats)
    floor = run_chats(extractive_chat(index, minilm, nlp, tmp_path, rewriter=NoRewrite()), chats)
    ceiling = run_chats(extractive_chat(index, minilm, nlp, tmp_path, rewriter=GoldRewrite(chats)), chats)
    report("demo", result, floor, ceiling)
    assert result["n"] == 20
    # Measured 11/20 (historyless 11/20): most misses are the answerer's, and the gold rewrites miss too;
    # the floor below is the measured figure, so a rewrite that loses an answer fails here.
    assert result["right"] >= 11 and result["right"] >= floor["right"]
    assert result["rewrite_f1"] > floor["rewrite_f1"]


@pytest.mark.slow
def test_held_out_chats_end_to_end(tmp_path: Path, minilm, nlp) -> None:
    articles = tmp_path / "articles"
    articles.mkdir()
    for name, text in HELDOUT_ARTICLES.items():
        (articles / f"{name}.md").write_text(text)
    index = tmp_path / "index"
    make_indexer(index, minilm).ingest_paths([articles])
    result = run_chats(extractive_chat(index, minilm, nlp, tmp_path), HELDOUT_CHATS)
    floor = run_chats(extractive_chat(index, minilm, nlp, tmp_path, rewriter=NoRewrite()), HELDOUT_CHATS)
    ceiling = run_chats(extractive_chat(index, minilm, nlp, tmp_path, rewriter=GoldRewrite(HELDOUT_CHATS)),
                        HELDOUT_CHATS)
    report("held-out", result, floor, ceiling)
    assert result["n"] == 12
    assert result["right"] >= 11 and result["right"] > floor["right"]  # measured 11/12 (historyless 10/12)
