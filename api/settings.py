"""All of citeqa's settings: environment variables with the prefix `CITEQA_`, groups joined by `__`.

Examples: `CITEQA_INDEX__DIR=/data/index` (or its shorthand `CITEQA_INDEX_DIR`),
`CITEQA_EMBEDDING__MODEL=hash`, `CITEQA_CHUNK__MAX_TOKENS=180`.
"""

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from index.config import ChunkSettings, EmbeddingSettings, IndexSettings
from qa.config import AnswerSettings, RetrievalSettings


class Settings(BaseSettings):
    """Built once by an entry point and passed down; tests construct it directly."""

    model_config = SettingsConfigDict(env_prefix="CITEQA_", env_nested_delimiter="__", extra="ignore")

    index: IndexSettings = Field(default_factory=IndexSettings)
    chunk: ChunkSettings = Field(default_factory=ChunkSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    answer: AnswerSettings = Field(default_factory=AnswerSettings)
    index_dir: Path | None = Field(default=None, description="Shorthand for CITEQA_INDEX__DIR.")

    @model_validator(mode="after")
    def _index_dir_shorthand(self) -> "Settings":
        if self.index_dir is not None and "dir" not in self.index.model_fields_set:
            self.index = self.index.model_copy(update={"dir": self.index_dir})
        return self
