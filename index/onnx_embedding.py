"""The `onnx-int8` embedding backend: a cached int8 ONNX export (index/onnx_export.py) run by onnxruntime.

Neither torch nor sentence-transformers is loaded: the export holds the whole model (transformer, pooling,
normalize) and its tokenizer. The embedder's name is the model's, as with the torch backend, so an index
built by one backend is searched by the other (the quality check measures that mixed retrieval).
"""

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tokenizers import Encoding

from index.config import DEFAULT_BATCH_SIZE
from index.embedding import RecentQueries, in_length_order
from index.errors import EmbedderUnavailable
from index.wordpieces import WordPieces

# onnxruntime's own graph optimizations that must stay off: its SkipLayerNormalization and BiasGelu kernels are
# slower than the plain ops they replace (index/onnx_export.py, step 2, has the figures).
RUNTIME_FUSIONS_OFF = ["SkipLayerNormFusion", "BiasGeluFusion"]


class OnnxEmbedder:
    """An exported model directory (model.onnx, tokenizer/, export.json) behind the `Embedder` protocol.

    Usage: OnnxEmbedder(model_dir=checked_model_dir(settings), name=settings.model).embed(["text"])
    """

    def __init__(self, *, model_dir: Path, name: str, batch_size: int = DEFAULT_BATCH_SIZE,
                 threads: int | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        try:
            import onnxruntime
            from transformers import AutoTokenizer
        except ImportError as exc:
            raise EmbedderUnavailable(f"the onnx-int8 backend needs the onnx extra ({exc.name} is missing): "
                                      "pip install 'citeqa[onnx]'") from exc
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        try:
            info = json.loads((model_dir / "export.json").read_text(encoding="utf-8"))
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads or 0  # 0: onnxruntime's choice (the physical cores)
            options.inter_op_num_threads = 1
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
            # Dynamic block sizing splits uneven attention work more evenly between threads. Denormal floats are
            # flushed to zero in onnxruntime's worker threads (slow paths in fp32 kernels; vectors unchanged).
            # onnxruntime also flushes them for good in the thread that creates a process's first session, so
            # the session is made in a thread of its own: the caller's floating point (Python's, numpy's) keeps
            # IEEE denormals, and its share of each run goes without the flag. Measured 2026-11-28, 512
            # passages, each variant three times in its own process: flag off 126-135 passages/s, flag on with
            # the caller flushing too 132-140, flag on made in its own thread 131-136.
            options.add_session_config_entry("session.set_denormal_as_zero", "1")
            options.add_session_config_entry("session.dynamic_block_base", "4")
            options.add_session_config_entry("optimization.disable_specified_optimizers", ";".join(RUNTIME_FUSIONS_OFF))
            with ThreadPoolExecutor(1, thread_name_prefix="citeqa-onnx-load") as loader:
                self._session = loader.submit(onnxruntime.InferenceSession, str(model_dir / "model.onnx"),
                                              options, providers=["CPUExecutionProvider"]).result()
            tokenizer = AutoTokenizer.from_pretrained(str(model_dir / "tokenizer"))
            self._pieces = WordPieces(tokenizer, max_length=int(info["max_seq_length"]) or None)
            if not self._pieces.can_pad:
                raise ValueError("its tokenizer has no pad token, which batches of passages need")
        except Exception as exc:  # OSError, JSON errors, onnxruntime's and transformers' own…
            raise EmbedderUnavailable(f"cannot load the ONNX model in {model_dir}: {exc}") from exc
        self._name = name
        self._batch_size = batch_size
        self._dimension = int(info["dimension"])
        self._inputs = [i.name for i in self._session.get_inputs()]
        self._recent = RecentQueries(self._dimension)

    @property
    def name(self) -> str:
        return self._name

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        return self._recent.embed(texts, lambda some: self._encode(some, progress=progress))

    def token_spans(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        return self._pieces.spans(texts)

    def _encode(self, texts: Sequence[str], *, progress: bool) -> np.ndarray:
        encodings = self._pieces.encode(texts)  # once: sorted by length, then padded batch by batch
        return in_length_order(encodings, lambda: [len(e.ids) for e in encodings], self._run,
                               dimension=self._dimension, batch_size=self._batch_size, progress=progress)

    def _run(self, batch: list[Encoding]) -> np.ndarray:
        """One forward pass: unit vectors of `batch` (at most batch_size texts)."""
        features = self._pieces.model_inputs(batch)
        (vectors,) = self._session.run(None, {name: features[name] for name in self._inputs})
        vectors = np.asarray(vectors, dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)
