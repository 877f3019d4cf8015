"""What the store holds and returns: frozen records, no loose dicts."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from index.articles import Article
from index.chunking import Chunk

Status = Literal["created", "unchanged", "replaced"]


@dataclass(frozen=True)
class PreparedDocument:
    """An article with its passages and their vectors, ready to commit."""

    article: Article
    content_hash: str
    chunks: Sequence[Chunk]
    vectors: np.ndarray


@dataclass(frozen=True)
class PassageSpan:
    """Where a passage lies in its document's text."""

    passage_id: str
    char_start: int
    char_end: int


@dataclass(frozen=True)
class Passage:
    """A passage with its text and the metadata of its document."""

    passage_id: str
    doc_id: str
    char_start: int
    char_end: int
    text: str
    title: str | None
    url: str | None
    published: str | None
    source: str


@dataclass(frozen=True)
class SearchHit:
    """A passage and its similarity to the query (cosine, higher is closer)."""

    passage: Passage
    score: float


@dataclass(frozen=True)
class DocumentSummary:
    """One line of `documents list`."""

    doc_id: str
    title: str | None
    url: str | None
    published: str | None
    source: str
    passages: int
    chars: int


@dataclass(frozen=True)
class StoredDocument:
    """A document as indexed: its exact text and where each passage lies in it."""

    doc_id: str
    title: str | None
    url: str | None
    published: str | None
    source: str
    text: str
    metadata: Mapping[str, Any]
    passages: Sequence[PassageSpan] = field(default_factory=tuple)


@dataclass(frozen=True)
class StoreInfo:
    """The manifest: what the index was built with and what it holds."""

    format_version: int
    model: str
    dimension: int
    documents: int
    passages: int
    generation: int
    vector_kind: str = "flat"  # the committed vector index: flat or ivf (index/vectors.py)
    vector_quantize: str = "none"  # none or sq8


@dataclass(frozen=True)
class CommitResult:
    """What a commit did to each document it was given."""

    statuses: Mapping[str, Status]
    deleted: Sequence[str] = ()


@dataclass(frozen=True)
class PassageFilter:
    """Which passages a search may return; every given condition must hold (None = no condition).

    `published_from`/`published_to` are inclusive ISO 8601 dates compared on the first 10 characters, so a
    datetime falls on its date; a document without a date never passes a date condition.
    """

    doc_ids: Sequence[str] | None = None
    published_from: str | None = None
    published_to: str | None = None
    sources: Sequence[str] | None = None

    @property
    def is_empty(self) -> bool:
        return not (self.doc_ids is not None or self.published_from or self.published_to
                    or self.sources is not None)
