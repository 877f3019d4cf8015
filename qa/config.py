"""Settings groups of the qa package (composed into `api.settings.Settings`)."""

from typing import Literal

from pydantic import BaseModel, Field


class RetrievalSettings(BaseModel):
    """How passages are chosen for a question."""

    k: int = Field(default=5, ge=1, le=50, description="Passages handed to the answerer.")
    fetch_k: int = Field(default=30, ge=1, le=1000, description="Candidates taken from each ranker before fusion.")
    mode: Literal["hybrid", "dense", "bm25"] = Field(default="hybrid", description="Which rankers to use.")
    mmr: bool = Field(default=False, description="Diversify passages with maximal marginal relevance.")
    mmr_lambda: float = Field(default=0.7, ge=0.0, le=1.0, description="MMR relevance/diversity balance.")


class AnswerSettings(BaseModel):
    """How an answer is produced from the passages."""

    generator: Literal["extractive", "llm"] = Field(default="extractive", description="The answerer.")
    refusal_threshold: float | None = Field(
        default=None, ge=0.0, le=1.0,
        description="Refuse below this confidence (extractive); default: the calibrated value in qa/extractive.py.",
    )
    max_question_chars: int = Field(default=1000, ge=10, description="Longer questions are refused as bad input.")
