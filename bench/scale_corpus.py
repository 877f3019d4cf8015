"""The scale benchmark's corpus: dataset text in seeded variations, its passages, and their cached vectors.

Records come from ../shared/datasets (SQuAD 2.0 dev articles, the SQuAD 1.1 dev articles 2.0 lacks, the
HotpotQA distractor paragraphs). Pass 1 holds every distinct text once (SQuAD articles cut into records of
3-6 paragraphs, each HotpotQA paragraph a record); every later pass is a seeded variation of the same
sources: each sentence is dropped with probability 1/4, SQuAD paragraphs are regrouped, and half of the
HotpotQA paragraphs get a second, randomly drawn paragraph appended. A record whose text was already made
is skipped, so passages of distinct text repeat sentences but rarely a whole passage.

Passages are what citeqa makes of the records: `Article` cleaning, its `Chunker` with the model's tokenizer,
`embedding_text` (title + passage). A size tier is a prefix of the records, so the 1k and 10k tiers are
prefixes of the 100k one. Everything is cached under .citeqa/bench/scale-<key>/ (the key covers the dataset
files, this recipe, the model and the chunk settings):

    real/records.jsonl      the records of the largest real tier (what `citeqa ingest` reads)
    real/texts.jsonl        the passage texts citeqa embeds, one JSON string per line, in ingest order
    real/ends.npy           cumulative passage count after each record
    real/vectors.npy        MiniLM vectors of those texts from citeqa's own embedder (filled resumably;
                            real/progress.json says how many rows are done)
    synthetic-<N>/...       the same files for the opt-in synthetic tier (vectors around the real ones)

Usage (the embedding step takes ~30 min for 100k passages on 2 idle cores; run it once, it resumes):
    .venv/bin/python bench/scale_corpus.py embed [--passages 100000] [--threads 2] [--cache DIR]
(bench/scale.py runs it when the vectors it needs are missing.)
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import random
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CACHE, ROOT, dataset_files, group, squad_and_hotpot  # noqa: E402

RECIPE = 1  # bump when the recipe below changes: it is part of the cache key
SEED = 20240611
REAL_PASSAGES = 100_000  # the largest tier embedded with the real model
MIN_PARAGRAPHS, MAX_PARAGRAPHS = 3, 6
DROP_SENTENCE = 0.25
APPEND_PARAGRAPH = 0.5
EMBED_BLOCK = 2048  # texts embedded (and flushed to vectors.npy) per step
RECORDS_PER_FILE = 10_000  # ~10 MB of JSON Lines per corpus file
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")

sys.path.insert(0, str(ROOT))  # citeqa's packages, also when it is not installed


def sentences(paragraph: str) -> list[str]:
    """A rough sentence split, good enough for making variations (citeqa's chunker splits again)."""
    return [s for s in _SENTENCE_END.split(paragraph.strip()) if s]


def vary(paragraph: str, rng: random.Random) -> str:
    """The paragraph with each sentence dropped with probability DROP_SENTENCE (at least one kept)."""
    parts = sentences(paragraph)
    kept = [s for s in parts if rng.random() >= DROP_SENTENCE]
    return " ".join(kept or [rng.choice(parts)])


def iter_records() -> Iterator[dict[str, str]]:
    """Article-sized records: pass 1 holds every distinct text once, later passes seeded variations."""
    squad, hotpot = squad_and_hotpot()
    seen: set[bytes] = set()
    for number in range(1, 100_000):
        rng = random.Random(SEED + number)
        made: list[dict[str, str]] = []
        for doc in squad:
            paragraphs = [p for p in doc["text"].split("\n\n") if p.strip()]
            if number > 1:
                paragraphs = [vary(p, rng) for p in paragraphs]
            for part, paras in enumerate(group(paragraphs, rng, MIN_PARAGRAPHS, MAX_PARAGRAPHS), start=1):
                made.append({"doc_id": f"squad{number}-{doc['doc_id']}-{part:03d}", "title": doc["title"],
                             "text": "\n\n".join(paras)})
        for doc in hotpot:
            text = doc["text"]
            if number > 1:
                text = vary(text, rng)
                if rng.random() < APPEND_PARAGRAPH:
                    text += "\n\n" + vary(rng.choice(hotpot)["text"], rng)
            made.append({"doc_id": f"hotpot{number}-{doc['doc_id']}", "title": doc["title"], "text": text})
        for record in made:
            digest = hashlib.sha1((record["title"] + "\0" + record["text"]).encode("utf-8")).digest()
            if digest not in seen:
                seen.add(digest)
                yield record


def cache_key(settings: Any) -> str:
    digest = hashlib.sha256()
    for path in dataset_files():
        digest.update(path.name.encode() + hashlib.sha256(path.read_bytes()).digest())
    recipe = {"recipe": RECIPE, "seed": SEED, "model": settings.embedding.model,
              "max_tokens": settings.chunk.max_tokens, "overlap_tokens": settings.chunk.overlap_tokens}
    digest.update(json.dumps(recipe, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def cache_dir(settings: Any) -> Path:
    return CACHE / f"scale-{cache_key(settings)}"


# ----- passages -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Passages:
    """Records and the passage texts citeqa makes of them; `ends[i]` passages come from records[:i+1]."""

    directory: Path
    ends: np.ndarray

    @property
    def count(self) -> int:
        return int(self.ends[-1]) if len(self.ends) else 0

    def records_for(self, passages: int) -> int:
        """How many leading records give at least `passages` passages."""
        if passages > self.count:
            raise ValueError(f"the cached corpus has {self.count} passages, fewer than {passages}")
        return int(np.searchsorted(self.ends, passages)) + 1

    def records(self, count: int | None = None) -> Iterator[dict[str, Any]]:
        with open(self.directory / "records.jsonl", encoding="utf-8") as handle:
            for number, line in enumerate(handle):
                if count is not None and number >= count:
                    return
                yield json.loads(line)

    def texts(self, count: int | None = None) -> list[str]:
        texts: list[str] = []
        with open(self.directory / "texts.jsonl", encoding="utf-8") as handle:
            for line in handle:
                if count is not None and len(texts) >= count:
                    break
                texts.append(json.loads(line))
        return texts

    def write_records(self, directory: Path, count: int) -> None:
        """The first `count` records as JSON Lines files `citeqa ingest DIR` reads in this order (sorted
        names, RECORDS_PER_FILE each: citeqa's loader refuses files over 50 MiB)."""
        directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / "records.jsonl", encoding="utf-8") as source:
            for first in range(0, count, RECORDS_PER_FILE):
                lines = itertools.islice(source, min(RECORDS_PER_FILE, count - first))
                (directory / f"articles-{first // RECORDS_PER_FILE:05d}.jsonl").write_text("".join(lines),
                                                                                         encoding="utf-8")


def make_chunker(settings: Any, embedder: Any) -> Any:
    from index.chunking import Chunker

    return Chunker(max_tokens=settings.chunk.max_tokens, overlap_tokens=settings.chunk.overlap_tokens,
                   token_spans=embedder.token_spans)


def build_passages(directory: Path, minimum: int, settings: Any, embedder: Any, *, log: Any = print) -> Passages:
    """Write records until citeqa's chunker gives `minimum` passages (kept when a cached run gave enough)."""
    from index.articles import clean_text, optional_str, with_title

    if (directory / "ends.npy").is_file():
        passages = Passages(directory, np.load(directory / "ends.npy"))
        if passages.count >= minimum:
            return passages
    chunker = make_chunker(settings, embedder)
    directory.mkdir(parents=True, exist_ok=True)
    ends: list[int] = []
    total, started = 0, time.perf_counter()
    with open(directory / "records.jsonl.tmp", "w", encoding="utf-8") as records, \
            open(directory / "texts.jsonl.tmp", "w", encoding="utf-8") as texts:
        for record in iter_records():
            # As citeqa's loader makes an article of a record: cleaned text, cleaned title.
            text, title = clean_text(record["text"]), optional_str("title", record["title"])
            chunks = chunker.chunk(text)
            records.write(json.dumps(record, ensure_ascii=False) + "\n")
            for chunk in chunks:
                texts.write(json.dumps(with_title(title, text[chunk.char_start:chunk.char_end]),
                                       ensure_ascii=False) + "\n")
            total += len(chunks)
            ends.append(total)
            if len(ends) % 2000 == 0:
                log(f"corpus: {len(ends)} records, {total} passages ({time.perf_counter() - started:.0f} s)")
            if total >= minimum:
                break
    os.replace(directory / "records.jsonl.tmp", directory / "records.jsonl")
    os.replace(directory / "texts.jsonl.tmp", directory / "texts.jsonl")
    np.save(directory / "ends.npy", np.asarray(ends, dtype=np.int64))
    return Passages(directory, np.asarray(ends, dtype=np.int64))


# ----- vectors --------------------------------------------------------------------------------------


def vectors_path(directory: Path) -> Path:
    return directory / "vectors.npy"


def done_rows(directory: Path) -> int:
    progress = directory / "progress.json"
    return int(json.loads(progress.read_text())["done"]) if progress.is_file() else 0


def embed_passages(directory: Path, passages: Passages, embedder: Any, upto: int, *, log: Any = print
                   ) -> np.ndarray:
    """Fill the first `upto` rows of vectors.npy with citeqa's embedder, resuming where a previous run stopped.

    When the corpus grew since (a larger tier was asked for), the rows done so far are kept: the corpus is
    made in the same order every time, so they are the vectors of the same leading passages.
    """
    path = vectors_path(directory)
    count = passages.count
    done = done_rows(directory) if path.is_file() else 0
    if path.is_file() and np.load(path, mmap_mode="r").shape != (count, embedder.dimension):
        old = np.load(path, mmap_mode="r")
        done = min(done, count, old.shape[0])
        grown = np.lib.format.open_memmap(directory / "vectors.tmp.npy", mode="w+", dtype=np.float32,
                                          shape=(count, embedder.dimension))
        grown[:done] = old[:done]
        grown.flush()
        del old, grown
        os.replace(directory / "vectors.tmp.npy", path)
        (directory / "progress.json").write_text(json.dumps({"done": done}))
    if not path.is_file():
        np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(count, embedder.dimension)).flush()
        (directory / "progress.json").write_text(json.dumps({"done": 0}))
    vectors = np.load(path, mmap_mode="r+")
    if done >= upto:
        return vectors
    texts = passages.texts(upto)
    started, first = time.perf_counter(), done
    while done < upto:
        block = texts[done:done + EMBED_BLOCK]
        vectors[done:done + len(block)] = embedder.embed(block)
        vectors.flush()
        done += len(block)
        (directory / "progress.json").write_text(json.dumps({"done": done}))
        rate = (done - first) / (time.perf_counter() - started)
        log(f"embedding: {done}/{upto} passages, {rate:.1f}/s, ~{(upto - done) / rate / 60:.0f} min left")
    return vectors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the scale benchmark's corpus and embed it (cached).")
    parser.add_argument("step", choices=["embed"])
    parser.add_argument("--passages", type=int, default=REAL_PASSAGES, help="passages to embed (default 100000)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--cache", type=Path, help="cache folder (default .citeqa/bench/scale-<key>)")
    args = parser.parse_args(argv)
    for key in [k for k in os.environ if k.startswith("CITEQA_")]:
        del os.environ[key]
    os.environ.update({"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "TRANSFORMERS_VERBOSITY": "error",
                       "CITEQA_EMBEDDING__THREADS": str(args.threads)})
    from api.settings import Settings
    from index.embedding import make_embedder

    settings = Settings()
    embedder = make_embedder(settings.embedding)
    directory = (args.cache or cache_dir(settings)) / "real"

    def log(message: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)

    log(f"cache: {directory}")
    directory.mkdir(parents=True, exist_ok=True)
    with FileLock(directory / "embed.lock"):  # one embedding run at a time; a second one waits, then resumes
        passages = build_passages(directory, args.passages, settings, embedder, log=log)
        upto = int(passages.ends[passages.records_for(args.passages) - 1])
        log(f"corpus: {passages.count} passages in {len(passages.ends)} records; embedding the first {upto}")
        embed_passages(directory, passages, embedder, upto, log=log)
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
