"""Settings groups of the index package (composed into `api.settings.Settings`)."""

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# Passages per forward pass. Small batches are fastest on CPU for ~200-word-piece passages: measured with
# bench/embed.py --batch-size, 8 beats 32 by ~17% for fp32 torch and ~35% for the int8 ONNX model, whose
# attention scores (batch x heads x length^2) fall out of cache at larger batches.
DEFAULT_BATCH_SIZE = 8
DEFAULT_NPROBE = 192


class EmbeddingSettings(BaseModel):
    """How passages and queries become vectors."""

    model: str = Field(
        default=DEFAULT_MODEL,
        description="sentence-transformers model: the bundled all-MiniLM-L6-v2 (default), a local folder, "
        "or `hash` (a deterministic test embedder, no model).",
    )
    batch_size: int = Field(default=DEFAULT_BATCH_SIZE, ge=1, le=1024,
                            description="Passages embedded per forward pass.")
    device: str = Field(default="cpu", description="torch device.")
    threads: int | None = Field(default=None, ge=1, description="torch threads (default: torch's own choice).")
    backend: Literal["torch", "onnx-int8"] = Field(
        default="torch",
        description="`onnx-int8`: the model exported to int8 ONNX by `citeqa model export-onnx`, run by "
        "onnxruntime (the `onnx` extra); used only when its quality check passed.",
    )
    onnx_quantization: Literal["auto", "avx512_vnni", "avx2", "arm64"] = Field(
        default="auto",
        description="int8 preset of the ONNX export; `auto` picks it from the CPU (VNNI, else AVX2; arm64).",
    )
    onnx_dir: Path | None = Field(
        default=None,
        description="Where exported ONNX models are cached (default: $XDG_CACHE_HOME/citeqa/onnx, else "
        "~/.cache/citeqa/onnx).",
    )


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


class VectorSettings(BaseModel):
    """Which vector index the store keeps (index/vectors.py) and how it is searched."""

    kind: Literal["auto", "flat", "ivf"] = Field(
        default="auto",
        description="`flat` is exact; `ivf` probes the `nprobe` nearest of its k-means lists; `auto` is flat "
        "up to `exact_up_to` passages, IVF above (back to flat below half of it). Switches happen at a commit.",
    )
    exact_up_to: int = Field(default=50_000, ge=0, description="Passages up to which `auto` searches exactly.")
    quantize: Literal["none", "sq8"] = Field(
        default="none",
        description="`sq8`: one byte per dimension instead of four, trained on the vectors; the 2k best by the "
        "8-bit codes are scored again with the exact vectors kept in SQLite.",
    )
    mmap: bool = Field(
        default=True,
        description="Memory-map the committed snapshot, so processes (server workers) share one copy.",
    )
    nprobe: int = Field(
        default=DEFAULT_NPROBE,
        ge=1,
        description="IVF lists searched per query: recall against speed. 192 gives recall@10 >= 0.99 against "
        "exact search on MiniLM vectors of 22k to 1M passages (bench/ann_tune.py).",
    )
    nlist: int | None = Field(
        default=None, ge=1, description="IVF lists (default: chosen from the passage count when IVF is trained)."
    )
