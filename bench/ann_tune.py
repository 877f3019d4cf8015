"""Vector index tuning: recall@10 against exact search, latency and memory of IVF and HNSW settings.

Justifies the defaults of `VectorSettings` (index/config.py). Vectors are real all-MiniLM-L6-v2 embeddings
(citeqa's own embedder) of dataset text from ../shared/datasets: every paragraph with its title and every
sentence (~26k distinct texts); queries are embedded dataset questions. They are cached under
.citeqa/bench/ann-<key>.npz (the key covers the dataset files and the model). Larger tiers (`--sizes`
above the real count) add seeded variations of the real vectors (a real vector plus Gaussian noise of
norm ~0.5, normalised): the neighbourhood structure is real-ish, the count is not; rows say which they are.
`--vectors FILE.npy` uses another (n, 384) float32 matrix (e.g. bench/scale_corpus.py's real/vectors.npy).

For each size: exact top-10 by brute force (the truth), then per setting recall@10 (mean share of the true
top 10 found), single-thread ms per query (one query at a time, as the store searches), build seconds, and
bytes per vector (serialized size / n). IVF rows are built with citeqa's own `index.vectors.build`, so the
nlist rule and the SQ8 training are the store's; SQ8 rows score the index's 2k candidates again with the
exact vectors, as the store does (from SQLite there, whose read is not timed here). HNSW rows are
faiss.IndexHNSWFlat for comparison.
`--filtered` adds recall with an `allowed` filter of 10% and 1% of the ids (IVF widens nprobe by the
inverse of the share let through, capped at nlist).

`--memory` instead measures what two processes that open the same snapshot each pay (psutil RSS, PSS, USS
growth after 200 searches), memory-mapped and read into memory, per kind.

Usage: .venv/bin/python bench/ann_tune.py [--sizes 22270,100000] [--queries 500] [--hnsw] [--filtered]
       [--nprobe 16,32,64,96,128,192] [--nlist-factors 0.5,2] [--memory] [--json]
Timings are noisy on a shared machine; compare rows of one run (ratios to the flat row), not runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import CACHE, DATASETS, HOTPOT, ROOT, SQUAD1, SQUAD2, dataset_files

CORPORA = (SQUAD2, SQUAD1, HOTPOT)  # in dataset_files' order, which the cache key hashes
RECIPE = 1  # bump when the text recipe changes: it is part of the cache key
SEED = 20240611
K = 10

sys.path.insert(0, str(ROOT))  # citeqa's packages, also when it is not installed


# ----- vectors ---------------------------------------------------------------------------------------


def dataset_texts() -> tuple[list[str], list[str]]:
    """Distinct passage-like texts (title + paragraph, and every sentence) and distinct questions."""
    from index.articles import with_title
    from index.sentences import SentenceSplitter

    splitter = SentenceSplitter()
    texts: dict[str, None] = {}
    questions: dict[str, None] = {}
    for directory in CORPORA:
        for line in (directory / "corpus.jsonl").read_text(encoding="utf-8").splitlines():
            doc = json.loads(line)
            for paragraph in doc["text"].split("\n\n"):
                if paragraph.strip():
                    texts[with_title(doc.get("title"), paragraph.strip())] = None
                    for start, end in splitter.spans(paragraph):
                        texts[paragraph[start:end]] = None
        for line in (directory / "qa.jsonl").read_text(encoding="utf-8").splitlines():
            questions[json.loads(line)["question"]] = None
    return list(texts), list(questions)


def real_vectors(max_queries: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """(base, queries): MiniLM vectors of the dataset texts and of up to `max_queries` questions (cached)."""
    from api.settings import Settings
    from index.embedding import make_embedder

    settings = Settings()
    digest = hashlib.sha256(json.dumps([RECIPE, SEED, max_queries, settings.embedding.model]).encode())
    for path in dataset_files():
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    cache = CACHE / f"ann-{digest.hexdigest()[:16]}.npz"
    if cache.is_file():
        with np.load(cache) as data:
            return data["base"], data["queries"]
    texts, questions = dataset_texts()
    rng = np.random.default_rng(SEED)
    questions = [questions[i] for i in sorted(rng.choice(len(questions), min(max_queries, len(questions)),
                                                         replace=False))]
    print(f"ann_tune: embedding {len(texts)} texts and {len(questions)} questions (cached in {cache})",
          file=sys.stderr)
    embedder = make_embedder(settings.embedding)
    started = time.perf_counter()
    base = embedder.embed(texts, progress=True)
    queries = embedder.embed(questions)
    print(f"ann_tune: embedded in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, base=base, queries=queries)
    os.replace(tmp, cache)
    return base, queries


def grow(base: np.ndarray, size: int, seed: int = SEED) -> np.ndarray:
    """`size` vectors: the real ones first, then seeded noisy copies of them (unit norm)."""
    if size <= len(base):
        return base[:size]
    rng = np.random.default_rng(seed)
    extra = size - len(base)
    parents = base[rng.integers(0, len(base), extra)]
    noise = rng.standard_normal(parents.shape).astype(np.float32) * (0.5 / np.sqrt(base.shape[1]))
    grown = parents + noise
    grown /= np.linalg.norm(grown, axis=1, keepdims=True)
    return np.concatenate([base, grown.astype(np.float32)])


# ----- measuring -------------------------------------------------------------------------------------


def exact_top(base: np.ndarray, ids: np.ndarray, queries: np.ndarray, allowed: np.ndarray | None = None
              ) -> np.ndarray:
    """The true top-K ids (brute force, every core), among `allowed` ids if given."""
    import faiss

    faiss.omp_set_num_threads(os.cpu_count() or 1)
    keep = np.isin(ids, allowed) if allowed is not None else np.ones(len(ids), dtype=bool)
    flat = faiss.IndexFlatIP(base.shape[1])
    flat.add(np.ascontiguousarray(base[keep]))
    _, rows = flat.search(queries, K)
    return np.where(rows >= 0, ids[keep][np.maximum(rows, 0)], -1)


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f.tolist()) & set(t[t >= 0].tolist())) / max(1, int((t >= 0).sum()))
                          for f, t in zip(found, truth, strict=True)]))


def one_at_a_time(search: Any, queries: np.ndarray) -> tuple[np.ndarray, float]:
    """Found ids, searching one query per call as the store does, and the median ms per query."""
    found, times = [], []
    for query in queries:
        start = time.perf_counter()
        _, got = search(query.reshape(1, -1))
        times.append(time.perf_counter() - start)
        found.append(got[0])
    return np.stack(found), 1000 * float(np.median(times))


def citeqa_rows(base: np.ndarray, ids: np.ndarray, queries: np.ndarray, truth: np.ndarray, label: str,
                args: argparse.Namespace) -> list[dict[str, Any]]:
    """Flat and IVF rows built by citeqa's own index/vectors.py."""
    from index.config import VectorSettings
    from index.vectors import build, choose_nlist

    rows = []
    auto = choose_nlist(VectorSettings(), len(base))
    layouts: list[tuple[str, str, int | None, list[int]]] = [("flat", "none", None, [0]), ("flat", "sq8", None, [0])]
    for quantize in ("none", "sq8"):
        layouts.append(("ivf", quantize, None, args.nprobe))
    for factor in args.nlist_factors:
        layouts.append(("ivf", "none", max(1, int(auto * factor)), args.nprobe))
    for kind, quantize, nlist, probes in layouts:
        settings = VectorSettings(kind=kind, quantize=quantize, nlist=nlist)
        start = time.perf_counter()
        index = build(settings, base.shape[1], ids, base)
        seconds = time.perf_counter() - start
        per_vector = len(index.to_bytes()) / len(base)
        def rescored(query: np.ndarray, index: Any = index) -> tuple[None, np.ndarray]:
            """As the store searches SQ8: candidates(K) from the index, scored again with the exact vectors."""
            _, got = index.search(query, index.candidates(K))
            got = got[0][got[0] >= 0]
            exact = base[np.searchsorted(ids, got)] @ query[0]  # ids are sorted: position = row of `base`
            return None, got[np.argsort(-exact, kind="stable")][:K].reshape(1, -1)

        for nprobe in probes:
            index.nprobe = nprobe
            search = rescored if quantize == "sq8" else (lambda q, index=index: index.search(q, K))
            found, ms = one_at_a_time(search, queries)
            rows.append({"size": len(base), "vectors": label,
                         "index": f"{kind}{'-sq8 rescored' if quantize == 'sq8' else ''}",
                         "nlist": index.nlist or None, "param": f"nprobe={nprobe}" if kind == "ivf" else "",
                         "recall@10": round(recall_at_k(found, truth), 4), "ms/query": round(ms, 3),
                         "build_s": round(seconds, 1), "bytes/vector": round(per_vector)})
            print(format_row(rows[-1]), file=sys.stderr, flush=True)
    return rows


def hnsw_rows(base: np.ndarray, ids: np.ndarray, queries: np.ndarray, truth: np.ndarray, label: str,
              args: argparse.Namespace) -> list[dict[str, Any]]:
    """faiss.IndexHNSWFlat for comparison (it cannot remove ids; citeqa does not use it)."""
    import faiss

    rows = []
    for m in args.hnsw_m:
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        start = time.perf_counter()
        hnsw = faiss.IndexHNSWFlat(base.shape[1], m, faiss.METRIC_INNER_PRODUCT)
        index = faiss.IndexIDMap(hnsw)
        index.add_with_ids(base, ids)
        seconds = time.perf_counter() - start
        per_vector = len(faiss.serialize_index(index)) / len(base)
        faiss.omp_set_num_threads(1)
        for ef in args.ef_search:
            params = faiss.SearchParametersHNSW()
            params.efSearch = ef
            found, ms = one_at_a_time(lambda q, p=params, i=index: i.search(q, K, params=p), queries)
            rows.append({"size": len(base), "vectors": label, "index": f"hnsw M={m}", "nlist": None,
                         "param": f"efSearch={ef}", "recall@10": round(recall_at_k(found, truth), 4),
                         "ms/query": round(ms, 3), "build_s": round(seconds, 1), "bytes/vector": round(per_vector)})
            print(format_row(rows[-1]), file=sys.stderr, flush=True)
    return rows


def filtered_rows(base: np.ndarray, ids: np.ndarray, queries: np.ndarray, label: str,
                  args: argparse.Namespace) -> list[dict[str, Any]]:
    """Recall with an `allowed` filter (IVF widens nprobe for it), and HNSW with the same filter."""
    import faiss

    from index.config import VectorSettings
    from index.vectors import build

    rng = np.random.default_rng(SEED)
    ivf = build(VectorSettings(kind="ivf"), base.shape[1], ids, base)
    hnsw = faiss.IndexIDMap(faiss.IndexHNSWFlat(base.shape[1], 32, faiss.METRIC_INNER_PRODUCT))
    if args.hnsw:
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        hnsw.add_with_ids(base, ids)
    rows = []
    for share in (0.1, 0.01):
        allowed = np.sort(rng.choice(ids, max(K, int(len(ids) * share)), replace=False))
        truth = exact_top(base, ids, queries, allowed)
        found, ms = one_at_a_time(lambda q, a=allowed: ivf.search(q, K, allowed=a), queries)
        rows.append({"size": len(base), "vectors": label, "index": f"ivf, {share:.0%} allowed", "nlist": ivf.nlist,
                     "param": f"nprobe={ivf.probes(len(allowed))}", "recall@10": round(recall_at_k(found, truth), 4),
                     "ms/query": round(ms, 3), "build_s": None, "bytes/vector": None})
        print(format_row(rows[-1]), file=sys.stderr, flush=True)
        if args.hnsw:
            faiss.omp_set_num_threads(1)
            selector = faiss.IDSelectorBatch(allowed)
            params = faiss.SearchParametersHNSW()
            params.efSearch, params.sel = 128, selector
            found, ms = one_at_a_time(lambda q, p=params: hnsw.search(q, K, params=p), queries)
            rows.append({"size": len(base), "vectors": label, "index": f"hnsw M=32, {share:.0%} allowed",
                         "nlist": None, "param": "efSearch=128", "recall@10": round(recall_at_k(found, truth), 4),
                         "ms/query": round(ms, 3), "build_s": None, "bytes/vector": None})
            print(format_row(rows[-1]), file=sys.stderr, flush=True)
    return rows


_MEMORY_CHILD = """
import sys
import numpy as np, psutil
from index.vectors import VectorIndex
me = psutil.Process()
before = me.memory_full_info()
index = VectorIndex.open(sys.argv[1], int(sys.argv[2]), mmap=sys.argv[3] == "1", nprobe=int(sys.argv[4]))
index.search(np.ones((1, index.dimension), dtype=np.float32), 10)
for row in np.random.default_rng(0).standard_normal((200, index.dimension)).astype(np.float32):
    index.search(row.reshape(1, -1), 10)
print("ready", flush=True)
sys.stdin.readline()
after = me.memory_full_info()
print(after.rss - before.rss, after.pss - before.pss, after.uss - before.uss, flush=True)
sys.stdin.readline()
"""


def memory_rows(base: np.ndarray, ids: np.ndarray, label: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Per kind: what two processes that open the same snapshot (mapped, then read into memory) each pay,
    after 200 searches: RSS, PSS and USS growth over the process before opening, in bytes per vector."""
    import subprocess
    import tempfile

    from index.config import VectorSettings
    from index.vectors import build

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for kind, quantize in (("flat", "none"), ("flat", "sq8"), ("ivf", "none"), ("ivf", "sq8")):
            settings = VectorSettings(kind=kind, quantize=quantize)
            path = Path(scratch) / f"{kind}-{quantize}.faiss"
            path.write_bytes(build(settings, base.shape[1], ids, base).to_bytes())
            for mmap in ("1", "0"):
                argv = [sys.executable, "-c", _MEMORY_CHILD, str(path), str(base.shape[1]), mmap,
                        str(settings.nprobe)]
                children = [subprocess.Popen(argv, cwd=ROOT, text=True, stdin=subprocess.PIPE,
                                             stdout=subprocess.PIPE) for _ in range(2)]
                for child in children:
                    assert child.stdout is not None and child.stdout.readline() == "ready\n"
                got = []
                for child in children:
                    assert child.stdin is not None and child.stdout is not None
                    child.stdin.write("\n")
                    child.stdin.flush()
                    got.append([int(x) for x in child.stdout.readline().split()])
                for child in children:
                    child.communicate("\n", timeout=120)
                rss, pss, uss = (max(g[i] for g in got) / len(base) for i in range(3))
                rows.append({"size": len(base), "vectors": label, "index": f"{kind}-{quantize}",
                             "mmap": mmap == "1", "file_bytes/vector": round(path.stat().st_size / len(base)),
                             "rss/vector": round(rss), "pss/vector": round(pss), "uss/vector": round(uss)})
                print(rows[-1], file=sys.stderr, flush=True)
    return rows


COLUMNS = ("size", "vectors", "index", "nlist", "param", "recall@10", "ms/query", "build_s", "bytes/vector")


def format_row(row: dict[str, Any]) -> str:
    widths = (8, 10, 24, 6, 13, 10, 9, 8, 12)
    return "  ".join(f"{'' if row.get(c) is None else row.get(c)!s:<{w}}" for c, w in zip(COLUMNS, widths,
                                                                                          strict=True))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ints = lambda text: [int(x) for x in text.split(",") if x]  # noqa: E731
    parser.add_argument("--sizes", type=ints, default=None, metavar="N,N",
                        help="index sizes (default: the real count, then 100000)")
    parser.add_argument("--queries", type=int, default=500, help="queries timed and scored (default 500)")
    parser.add_argument("--nprobe", type=ints, default=[16, 32, 64, 96, 128, 192], metavar="N,N")
    parser.add_argument("--nlist-factors", type=lambda text: [float(x) for x in text.split(",") if x],
                        default=[0.5, 2.0], metavar="F,F",
                        help="IVF rows with nlist = F x the automatic one (default 0.5,2; '' for none)")
    parser.add_argument("--hnsw", action="store_true", help="add faiss.IndexHNSWFlat rows for comparison")
    parser.add_argument("--hnsw-m", type=ints, default=[16, 32], metavar="M,M")
    parser.add_argument("--ef-search", type=ints, default=[16, 32, 64, 128], metavar="N,N")
    parser.add_argument("--filtered", action="store_true", help="add rows with a 10%% and a 1%% id filter")
    parser.add_argument("--memory", action="store_true",
                        help="only the memory of two processes opening each kind, mapped and not (psutil)")
    parser.add_argument("--vectors", type=Path, metavar="FILE.npy", help="base vectors instead of the dataset's")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not all(path.is_file() for path in dataset_files()):
        print(f"ann_tune: the shared datasets are missing under {DATASETS}", file=sys.stderr)
        return 2
    real, queries = real_vectors()
    if args.vectors is not None:
        real = np.ascontiguousarray(np.load(args.vectors, mmap_mode="r"), dtype=np.float32)
    queries = queries[:args.queries]
    sizes = args.sizes or [len(real), 100_000]
    print("  ".join(COLUMNS), file=sys.stderr)
    rows: list[dict[str, Any]] = []
    for size in sizes:
        base = grow(real, size)
        label = "real" if size <= len(real) else f"real+{size - len(real)}"
        ids = np.arange(size, dtype=np.int64) * 2 + 1  # sparse, like vids after deletes
        if args.memory:
            rows += memory_rows(base, ids, label, args)
            continue
        truth = exact_top(base, ids, queries)
        rows += citeqa_rows(base, ids, queries, truth, label, args)
        if args.hnsw:
            rows += hnsw_rows(base, ids, queries, truth, label, args)
        if args.filtered:
            rows += filtered_rows(base, ids, queries, label, args)
    meta = {"real_vectors": len(real), "queries": len(queries), "k": K, "cpus": os.cpu_count(),
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None}
    if args.json:
        print(json.dumps({"meta": meta, "rows": rows}, indent=2))
    elif args.memory:
        print(f"# {meta}")
        for row in rows:
            print(row)
    else:
        print(f"# {meta}")
        print("  ".join(COLUMNS))
        for row in rows:
            print(format_row(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
