"""What the qa package passes around and returns: frozen records (the answer object of the contract)."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RetrievedPassage:
    """A passage chosen for a question. `text == document_text[char_start:char_end]`."""

    passage_id: str
    doc_id: str
    char_start: int
    char_end: int
    text: str
    title: str | None
    url: str | None
    published: str | None
    score: float
    rank: int
    signals: Mapping[str, float | int | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Citation:
    """A quoted sentence: `quote == document_text[char_start:char_end]` exactly."""

    n: int
    doc_id: str
    title: str | None
    url: str | None
    passage_id: str
    char_start: int
    char_end: int
    quote: str
    supports: bool = True


@dataclass(frozen=True)
class Answer:
    """The answer object. Every `[n]` in `answer` has a citation with that `n`, numbered by first use."""

    question: str
    answer: str
    short_answer: str | None
    refused: bool
    citations: Sequence[Citation] = field(default_factory=tuple)
    confidence: float = 0.0
    answer_type: str | None = None
    timings_ms: Mapping[str, float] = field(default_factory=dict)
    # A refused answer's would-be short answer (its confidence is `confidence`), so `citeqa eval` can score
    # lower refusal thresholds; None when answered or when the answerer had no candidate. Not in the contract.
    candidate: str | None = None
    # Chat: the question as rewritten to stand alone (== question when it already did); None outside chat.
    standalone_question: str | None = None
