"""What each CLI command does: build components from settings, call them, print the result."""

import sys
from dataclasses import asdict
from pathlib import Path

from api.cli import EXIT_OK, EXIT_USAGE, emit_json, wrap
from api.settings import Settings
from api.wiring import make_pipeline, make_retriever, open_store
from index.chunking import Chunker
from index.embedding import make_embedder
from index.ingest import Indexer
from index.store import Store
from qa.records import Answer


def ingest(settings: Settings, paths: list[Path], *, as_json: bool) -> int:
    embedder = make_embedder(settings.embedding)
    store = Store.open_or_create(settings.index.dir, model=embedder.name, dimension=embedder.dimension,
                                 lock_timeout=settings.index.lock_timeout)
    chunker = Chunker(max_tokens=settings.chunk.max_tokens, overlap_tokens=settings.chunk.overlap_tokens,
                      token_spans=embedder.token_spans)
    indexer = Indexer(store=store, embedder=embedder, chunker=chunker, commit_every=settings.index.commit_every)
    report = indexer.ingest_paths(paths, progress=not as_json)
    for skipped in report.skipped:
        print(f"citeqa: skipped {skipped.source}: {skipped.reason}", file=sys.stderr)
    if as_json:
        emit_json({"documents": [asdict(d) for d in report.documents],
                   "skipped": [asdict(s) for s in report.skipped]})
    else:
        for doc in report.documents:
            print(f"{doc.status:<10} {doc.doc_id}  ({doc.passages} passages)  {doc.source}")
        counts = {s: sum(d.status == s for d in report.documents) for s in ("created", "replaced", "unchanged")}
        print(f"{counts['created']} created, {counts['replaced']} replaced, {counts['unchanged']} unchanged, "
              f"{len(report.skipped)} skipped; index at {settings.index.dir}")
    if not report.documents:
        print("citeqa: error: nothing could be ingested", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def documents(settings: Settings, action: str, doc_id: str | None, *, as_json: bool) -> int:
    store = open_store(settings)
    if action == "list":
        docs = store.list_documents()
        if as_json:
            emit_json({"documents": [{"doc_id": d.doc_id, "title": d.title, "url": d.url, "published": d.published,
                                      "passages": d.passages, "chars": d.chars, "source": d.source} for d in docs]})
        else:
            for d in docs:
                print(f"{d.doc_id}  {d.published or '-':<10}  {d.passages:>3} passages  {d.title or '(untitled)'}")
            print(f"{len(docs)} documents in {settings.index.dir}")
    elif action == "show":
        assert doc_id is not None
        doc = store.get_document(doc_id)
        if as_json:
            emit_json({"doc_id": doc.doc_id, "title": doc.title, "url": doc.url, "published": doc.published,
                       "source": doc.source, "metadata": dict(doc.metadata), "text": doc.text,
                       "passages": [asdict(p) for p in doc.passages]})
        else:
            print(doc.title or "(untitled)")
            print(f"id: {doc.doc_id}   published: {doc.published or '-'}   url: {doc.url or '-'}")
            print(f"source: {doc.source}   {len(doc.passages)} passages, {len(doc.text)} characters\n")
            print(doc.text)
    else:  # delete
        assert doc_id is not None
        store.delete(doc_id)
        if as_json:
            emit_json({"deleted": doc_id})
        else:
            print(f"deleted {doc_id}")
    return EXIT_OK


def search(settings: Settings, query: str, *, k: int, as_json: bool) -> int:
    embedder = make_embedder(settings.embedding)
    store = open_store(settings, embedder)
    passages = make_retriever(settings, store, embedder).retrieve(query, k=k)
    if as_json:
        emit_json({"query": query, "results": [
            {"rank": p.rank, "score": round(p.score, 6), "doc_id": p.doc_id, "passage_id": p.passage_id,
             "title": p.title, "url": p.url, "published": p.published, "char_start": p.char_start,
             "char_end": p.char_end, "text": p.text, **p.signals}
            for p in passages]})
    else:
        if not passages:
            print("no passages match")
        for p in passages:
            why = ", ".join(f"{name} #{p.signals[name + '_rank']} ({p.signals[name + '_score']:.3f})"
                            for name in ("dense", "bm25") if p.signals.get(name + "_rank") is not None)
            print(f"[{p.rank}] {p.title or p.doc_id}  ({p.passage_id}, chars {p.char_start}-{p.char_end}; {why})")
            print(wrap(p.text[:400] + ("…" if len(p.text) > 400 else "")))
    return EXIT_OK


def ask(settings: Settings, question: str, *, k: int | None, generator: str | None, as_json: bool) -> int:
    answer = make_pipeline(settings, generator).ask(question, k=k)
    if as_json:
        emit_json(answer_json(answer))
    else:
        print(format_answer(answer))
    return EXIT_OK


def answer_json(answer: Answer) -> dict:
    """The answer object of the contract."""
    return {"question": answer.question, "answer": answer.answer, "short_answer": answer.short_answer,
            "refused": answer.refused, "confidence": answer.confidence, "answer_type": answer.answer_type,
            "citations": [asdict(c) for c in answer.citations], "timings_ms": dict(answer.timings_ms)}


def format_answer(answer: Answer) -> str:
    """The answer, then its numbered sources with title and quote."""
    lines = [answer.answer, ""]
    if answer.citations:
        lines.append("Sources:" if not answer.refused else "Closest passages (they do not answer it):")
    for c in answer.citations:
        lines.append(f"[{c.n}] {c.title or c.doc_id}  ({c.doc_id}, chars {c.char_start}-{c.char_end})")
        lines.append(wrap(f"\u201c{c.quote}\u201d"))
    return "\n".join(lines).rstrip()
