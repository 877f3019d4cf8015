"""Shared fixtures: the real bundled model is loaded once per session; a hash embedder for store logic."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from index.chunking import Chunker  # noqa: E402
from index.embedding import HashEmbedder, SentenceTransformerEmbedder  # noqa: E402
from index.ingest import Indexer  # noqa: E402
from index.store import Store  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ARTICLES = ROOT / "examples" / "articles"
SHARED_DATASETS = ROOT.parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def minilm() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


@pytest.fixture
def hash_embedder() -> HashEmbedder:
    return HashEmbedder()


@pytest.fixture(params=["hash", "minilm"])
def embedder(request: pytest.FixtureRequest):
    """The contract suite runs over both embedders."""
    if request.param == "hash":
        return HashEmbedder()
    return request.getfixturevalue("minilm")


def make_indexer(directory: Path, embedder, *, max_tokens: int = 200, overlap_tokens: int = 40,
                 commit_every: int = 4096) -> Indexer:
    store = Store.open_or_create(directory, model=embedder.name, dimension=embedder.dimension)
    chunker = Chunker(max_tokens=max_tokens, overlap_tokens=overlap_tokens, token_spans=embedder.token_spans)
    return Indexer(store=store, embedder=embedder, chunker=chunker, commit_every=commit_every)
