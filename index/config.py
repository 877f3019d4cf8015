"""Settings groups of the index package (composed into `api.settings.Settings`)."""

from pathlib import Path

from pydantic import BaseModel, Field, model_validator

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


class EmbeddingSettings(BaseModel):
    """How passages and queries become vectors."""

    model: str = Field(
        default=DEFAULT_MODEL,
        description="sentence-transformers model: the bundled all-MiniLM-L6-v2 (default), a local folder, "
        "or `hash` (a deterministic test embedder, no model).",
    )
    batch_size: int = Field(default=32, ge=1, le=1024, description="Passages embedded per forward pass.")
    device: str = Field(default="cpu", description="torch device.")
    threads: int | None = Field(default=None, ge=1, description="torch threads (default: torch's own choice).")


class ChunkSettings(BaseModel):
    """How articles are cut into passages."""

    max_tokens: int = Field(
        default=200,
        ge=16,
        le=4096,
        description="Word pieces per passage. all-MiniLM-L6-v2 reads 256; the rest is left for the title.",
    )
    overlap_tokens: int = Field(
        default=40, ge=0, description="Word pieces of whole trailing sentences repeated in the next passage."
    )

    @model_validator(mode="after")
    def _overlap_below_max(self) -> "ChunkSettings":
        if self.overlap_tokens >= self.max_tokens:
            raise ValueError(
                f"overlap_tokens ({self.overlap_tokens}) must be below max_tokens ({self.max_tokens})"
            )
        return self


class IndexSettings(BaseModel):
    """Where the index lives and how it is written."""

    dir: Path = Field(default=Path(".citeqa/index"), description="Index directory.")
    commit_every: int = Field(
        default=4096,
        ge=1,
        description="Passages per commit during a long ingest: a crash loses at most the batch in flight.",
    )
    lock_timeout: float = Field(
        default=600.0, ge=0, description="Seconds a writer waits for another writer to finish."
    )
