"""All of citeqa's settings: environment variables with the prefix `CITEQA_`, groups joined by `__`.

Examples: `CITEQA_INDEX__DIR=/data/index` (or its shorthand `CITEQA_INDEX_DIR`),
`CITEQA_EMBEDDING__MODEL=hash`, `CITEQA_CHUNK__MAX_TOKENS=180`, `CITEQA_VECTORS__KIND=ivf`.
"""

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from index.config import ChunkSettings, EmbeddingSettings, IndexSettings, VectorSettings
from qa.config import AnswerSettings, ChatSettings, LLMSettings, RetrievalSettings


class HttpSettings(BaseModel):
    """Limits of the HTTP API (`citeqa serve`)."""

    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, description="Larger request bodies get 413.")
    max_top_k: int = Field(default=20, ge=1, le=100, description="Largest `top_k`/`k` a request may ask for.")
    auth_reads: bool = Field(default=False, description="Require the API key on read routes too.")
    rate_limit: int = Field(default=600, ge=0, description="Requests per minute per client on /v1 (0 = no limit).")
    request_timeout_s: float = Field(default=60.0, ge=0, description="504 when no response has started by then "
                                     "(0 = no limit).")


class Settings(BaseSettings):
    """Built once by an entry point and passed down; tests construct it directly."""

    model_config = SettingsConfigDict(env_prefix="CITEQA_", env_nested_delimiter="__", extra="ignore")

    index: IndexSettings = Field(default_factory=IndexSettings)
    chunk: ChunkSettings = Field(default_factory=ChunkSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    vectors: VectorSettings = Field(default_factory=VectorSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    answer: AnswerSettings = Field(default_factory=AnswerSettings)
    chat: ChatSettings = Field(default_factory=ChatSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    api_key: SecretStr | None = Field(default=None, description="CITEQA_API_KEY: Bearer key for HTTP write routes.")
    index_dir: Path | None = Field(default=None, description="Shorthand for CITEQA_INDEX__DIR.")

    @model_validator(mode="after")
    def _index_dir_shorthand(self) -> "Settings":
        if self.index_dir is not None and "dir" not in self.index.model_fields_set:
            self.index = self.index.model_copy(update={"dir": self.index_dir})
        return self
