"""BM25 per commit: a full build against the update a commit makes, at growing index sizes.

Passages: SQuAD 2.0 dev sentences (../shared/datasets) drawn six at a time with a seeded generator, so any
size can be made; the same texts for every row. Rows per size: `build` (LexicalIndex.build over every
passage: what each commit cost before updates existed), `update` (`updated` with 3 passages removed and 5
added: one small article replaced), `load` (from_bytes of its snapshot, what a reader pays once per commit),
`search` (one question, mean of 20), and the snapshot's bytes per passage. Median of `--repeat` runs.

Usage: .venv/bin/python bench/lexical.py [--sizes 10000,100000] [--repeat 3] [--json]
Exit codes: 0 ok, 2 the shared datasets are missing or bad arguments.
"""

import argparse
import json
import random
import statistics
import sys
import time

import numpy as np
from common import ROOT, SQUAD2

sys.path.insert(0, str(ROOT))  # citeqa's packages, also when it is not installed

from index.lexical import LexicalIndex  # noqa: E402  (after the path)

QUESTION = "When did the Normans conquer England?"


def passages(count: int, seed: int) -> list[str]:
    paragraphs = [json.loads(line)["text"] for line in (SQUAD2 / "corpus.jsonl").read_text("utf-8").splitlines()
                  if line.strip()]
    sentences = [s for p in paragraphs for s in p.split(". ") if s.strip()]
    rng = random.Random(seed)
    return [". ".join(rng.sample(sentences, 6)) for _ in range(count)]


def measure(size: int, repeat: int) -> dict[str, float]:
    texts = passages(size + 5, seed=size)
    ids = np.arange(size, dtype=np.int64)
    runs: dict[str, list[float]] = {"build_s": [], "update_s": [], "load_s": [], "search_ms": []}
    for _ in range(repeat):
        start = time.perf_counter()
        index = LexicalIndex.build(ids, texts[:size])
        runs["build_s"].append(time.perf_counter() - start)
        start = time.perf_counter()
        index.updated(remove=ids[:3], add_ids=np.arange(size, size + 5), add_texts=texts[size:])
        runs["update_s"].append(time.perf_counter() - start)
        data = index.to_bytes()
        start = time.perf_counter()
        LexicalIndex.from_bytes(data)
        runs["load_s"].append(time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(20):
            index.search(QUESTION, 30)
        runs["search_ms"].append((time.perf_counter() - start) / 20 * 1000)
    result = {name: statistics.median(values) for name, values in runs.items()}
    result["bytes_per_passage"] = len(data) / size
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="passages per step (default 10000,100000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per size, median (default 3)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    args = parser.parse_args()
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        parser.error(f"--sizes must be comma-separated integers, got {args.sizes!r}")
    if args.repeat < 1 or min(sizes) < 10:
        parser.error("--repeat must be at least 1 and every size at least 10")
    if not (SQUAD2 / "corpus.jsonl").is_file():
        print(f"bench/lexical.py: {SQUAD2}/corpus.jsonl is missing (../shared/datasets)", file=sys.stderr)
        return 2
    results = {size: measure(size, args.repeat) for size in sizes}
    if args.json:
        print(json.dumps({"benchmark": "lexical", "repeat": args.repeat, "sizes": results}, indent=2))
        return 0
    print(f"{'passages':>10} {'build s':>9} {'update s':>9} {'load s':>8} {'search ms':>10} {'bytes/passage':>14}")
    for size, r in results.items():
        print(f"{size:>10,} {r['build_s']:>9.2f} {r['update_s']:>9.3f} {r['load_s']:>8.3f} {r['search_ms']:>10.2f} "
              f"{r['bytes_per_passage']:>14.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
