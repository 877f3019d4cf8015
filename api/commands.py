"""What each CLI command does: build components from settings, call them, print the result."""

import os
import sys
from dataclasses import asdict
from pathlib import Path

from api.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, emit_json, wrap
from api.settings import Settings
from api.wiring import (
    make_answerer,
    make_pipeline,
    make_retriever,
    make_rewriter,
    open_or_create_store,
    open_store,
)
from index.chunking import Chunker
from index.embedding import Embedder, make_embedder
from index.ingest import Indexer
from qa.records import Answer


def ingest(settings: Settings, paths: list[Path], *, as_json: bool) -> int:
    embedder = make_embedder(settings.embedding)
    store = open_or_create_store(settings, embedder)
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
    document = {"question": answer.question, "answer": answer.answer, "short_answer": answer.short_answer,
                "refused": answer.refused, "confidence": answer.confidence, "answer_type": answer.answer_type,
                "citations": [asdict(c) for c in answer.citations], "timings_ms": dict(answer.timings_ms)}
    if answer.standalone_question is not None:  # chat turns: the follow-up as rewritten to stand alone
        document["standalone_question"] = answer.standalone_question
    return document


def format_answer(answer: Answer) -> str:
    """The answer, then its numbered sources with title and quote."""
    lines = [answer.answer, ""]
    if answer.citations:
        lines.append("Sources:" if not answer.refused else "Closest passages (they do not answer it):")
    for c in answer.citations:
        lines.append(f"[{c.n}] {c.title or c.doc_id}  ({c.doc_id}, chars {c.char_start}-{c.char_end})")
        lines.append(wrap(f"\u201c{c.quote}\u201d"))
    return "\n".join(lines).rstrip()


def evaluate(settings: Settings, gold_path: Path, *, corpus: Path | None, generator: str | None,
             baseline: str | None, k: int | None, limit: int | None, seed: int | None, report: Path | None,
             as_json: bool) -> int:
    """`citeqa eval GOLD`: optionally ingest a corpus, ask every gold question, print and write the scores."""
    import datetime
    import platform
    import tempfile

    import spacy

    from qa.baselines import FirstSentenceAnswerer
    from qa.chat import ChatPipeline, ChatStore
    from qa.evaluation import Evaluator, PipelineChat, StorePassages
    from qa.gold import load_gold, sample
    from qa.pipeline import QAPipeline
    from qa.report import format_summary, write_report

    gold = load_gold(gold_path)
    embedder = make_embedder(settings.embedding)
    if corpus is not None and not _ingest_corpus(settings, embedder, corpus, progress=not as_json):
        print(f"citeqa: error: nothing could be ingested from {corpus}", file=sys.stderr)
        return EXIT_USAGE
    store = open_store(settings, embedder)
    if baseline in ("bm25", "dense"):
        settings = settings.model_copy(update={"retrieval": settings.retrieval.model_copy(update={"mode": baseline})})
    retriever = make_retriever(settings, store, embedder)
    answerer = (FirstSentenceAnswerer(nlp=spacy.blank("en")) if baseline == "first-sentence"
                else make_answerer(settings, embedder, generator))
    pipeline = QAPipeline(retriever=retriever, answerer=answerer,
                          max_question_chars=settings.answer.max_question_chars)
    threshold = getattr(answerer, "refusal_threshold", None)
    chat_dir = tempfile.TemporaryDirectory(prefix="citeqa-eval-chat-")  # eval sessions never reach the user's
    chats = ChatPipeline(pipeline=pipeline, rewriter=make_rewriter(settings, generator),
                         store=ChatStore(path=Path(chat_dir.name) / "chat.sqlite"),
                         context_turns=settings.chat.context_turns) if gold.conversations else None
    info = {"gold": str(gold_path), "format": gold.format, "index": str(settings.index.dir),
            "generator": "first-sentence" if baseline == "first-sentence" else generator or settings.answer.generator,
            "baseline": baseline, "retrieval_mode": settings.retrieval.mode, "limit": limit, "seed": seed,
            "chat": "qa.chat.ChatPipeline (follow-ups rewritten against the earlier turns)" if chats else None,
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} cores, Python "
                       f"{platform.python_version()}"}
    k = k or settings.retrieval.k
    evaluator = Evaluator(pipeline=pipeline, passages=StorePassages(store), k=k,
                          refusal_threshold=threshold, info=info,
                          chat=(lambda: PipelineChat(chats=chats, k=k)) if chats else None)
    with chat_dir:
        result = evaluator.run(sample(gold.questions, limit=limit, seed=seed),
                               sample(gold.conversations, limit=limit, seed=seed), progress=not as_json)
    if report is not None:
        for path in write_report(result, report):
            print(f"citeqa: wrote {path}", file=sys.stderr)
    if as_json:
        emit_json({**result.summary, "per_question": [row.to_json() for row in result.rows]})
    else:
        print(format_summary(result.summary))
    return EXIT_OK


def _ingest_corpus(settings: Settings, embedder: Embedder, corpus: Path, *, progress: bool) -> bool:
    """Ingest `eval --corpus` (unchanged articles are left alone); False when nothing could be read."""
    from qa.gold import is_squad_json, load_gold

    store = open_or_create_store(settings, embedder)
    chunker = Chunker(max_tokens=settings.chunk.max_tokens, overlap_tokens=settings.chunk.overlap_tokens,
                      token_spans=embedder.token_spans)
    indexer = Indexer(store=store, embedder=embedder, chunker=chunker, commit_every=settings.index.commit_every)
    # A SQuAD JSON file carries its own articles (one per context); anything else is read like `ingest`.
    report = (indexer.ingest(load_gold(corpus).articles, progress=progress) if is_squad_json(corpus)
              else indexer.ingest_paths([corpus], progress=progress))
    for skipped in report.skipped:
        print(f"citeqa: skipped {skipped.source}: {skipped.reason}", file=sys.stderr)
    return bool(report.documents)


def compare(report_a: Path, report_b: Path, *, as_json: bool) -> int:
    """`citeqa eval --compare A B`: metric deltas and the questions that got better or worse."""
    from qa.report import compare_reports, format_comparison, load_report

    comparison = compare_reports(load_report(report_a), load_report(report_b))
    if as_json:
        emit_json(comparison.to_json())
    else:
        print(format_comparison(comparison))
    return EXIT_OK


def export_onnx(settings: Settings, *, check_data: Path, quantization: str | None, force: bool,
                as_json: bool) -> int:
    """`citeqa model export-onnx`: export and quantize the model, check it against fp32, record the result."""
    import datetime

    from index.embedding import HASH_MODEL, SentenceTransformerEmbedder
    from index.onnx_check import K, load_check_data, run_check
    from index.onnx_embedding import OnnxEmbedder
    from index.onnx_export import default_cache_dir, record_check, resolve_quantization
    from index.onnx_export import export_onnx as export

    e = settings.embedding
    if e.model == HASH_MODEL:
        raise ValueError("the hash embedder has no model to export; set CITEQA_EMBEDDING__MODEL")
    data = load_check_data(check_data)  # bad check data fails before minutes of export
    preset = resolve_quantization(quantization or e.onnx_quantization)
    directory = export(e.model, quantization=preset, cache_dir=e.onnx_dir or default_cache_dir(), force=force)
    print(f"citeqa: int8 ONNX model at {directory}; checking it against fp32 on {len(data.passages)} paragraphs "
          f"and {len(data.questions)} questions", file=sys.stderr)
    reference = SentenceTransformerEmbedder(model=e.model, batch_size=e.batch_size, device=e.device,
                                            threads=e.threads)
    candidate = OnnxEmbedder(model_dir=directory, name=e.model, batch_size=e.batch_size, threads=e.threads)
    result = run_check(reference=reference, candidate=candidate, data=data, progress=not as_json)
    record = {**result.to_json(), "model": e.model, "quantization": preset, "model_dir": str(directory),
              "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
    record_check(directory, record)
    if as_json:
        emit_json(record)
    else:
        print(f"int8 ONNX model ({preset}): {directory}")
        print(f"cosine to fp32 over {result.passages} paragraphs: mean {result.cosine_mean:.4f}, "
              f"min {result.cosine_min:.4f}; over the questions: mean {result.question_cosine_mean:.4f}, "
              f"min {result.question_cosine_min:.4f}")
        print(f"recall@{K} over {result.questions} questions: "
              + ", ".join(f"{name} {value:.4f}" for name, value in result.recall.items()))
        print("check passed: CITEQA_EMBEDDING__BACKEND=onnx-int8 uses this model" if result.passed
              else "check FAILED: " + "; ".join(result.failures))
    if not result.passed:
        print(f"citeqa: error: the int8 model failed its quality check; the onnx-int8 backend refuses it "
              f"(recorded in {directory})", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK
