"""What the benchmark scripts share: the shared datasets, article-sized groups of dataset paragraphs, per-stage
clocks, CPU meters, and how a result is written out.

The scripts run as `python bench/NAME.py`, so this folder is first on sys.path and `import common` finds this.
"""

import argparse
import json
import random
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ROOT.parent / "shared" / "datasets"
SQUAD2 = DATASETS / "squad_v2_dev"
SQUAD1 = DATASETS / "squad_v1_dev"
HOTPOT = DATASETS / "hotpotqa_dev_distractor"
CACHE = ROOT / ".citeqa" / "bench"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def dataset_files() -> list[Path]:
    """The shared dataset files the search benchmarks read (part of their cache keys)."""
    return [d / name for d in (SQUAD2, SQUAD1, HOTPOT) for name in ("corpus.jsonl", "qa.jsonl")]


def squad_and_hotpot() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The SQuAD articles (2.0 dev, then the 1.1 dev ones 2.0 lacks) and the HotpotQA paragraphs."""
    squad = read_jsonl(SQUAD2 / "corpus.jsonl")
    known = {doc["doc_id"] for doc in squad}
    squad += [doc for doc in read_jsonl(SQUAD1 / "corpus.jsonl") if doc["doc_id"] not in known]
    return squad, read_jsonl(HOTPOT / "corpus.jsonl")


def publish(result: dict[str, Any], args: argparse.Namespace, print_table: Callable[[dict[str, Any]], None],
            script: str) -> int:
    """Write the result to `args.out` if given, print it (JSON with `args.json`, else the table) and return
    the exit code: 3 naming each missed target on stderr, else 0."""
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
    missed = [t["target"] for t in result.get("targets", []) if not t["met"]]
    if missed:
        print(f"{script}: target missed: {'; '.join(missed)}", file=sys.stderr)
        return 3
    return 0


def shuffled_orders(names: list[str], seed: int) -> Iterator[list[str]]:
    """One order of the rows per question, each a seeded random permutation: no row always runs right after
    the same other row. (A row that scans 150 MB leaves the caches cold, and the next encode of the
    question took ~4 ms longer, measured; a rotating order put the same row after it every time.)"""
    rng = random.Random(seed)
    while True:
        yield rng.sample(names, len(names))


def group(items: list[Any], rng: random.Random, low: int, high: int) -> list[list[Any]]:
    """Consecutive groups of `low`-`high` items; a short tail joins the group before it."""
    groups: list[list[Any]] = []
    start = 0
    while start < len(items):
        size = rng.randint(low, high)
        groups.append(items[start:start + size])
        start += size
    if len(groups) > 1 and len(groups[-1]) < low:
        groups[-2].extend(groups.pop())
    return groups


@dataclass
class StageClock:
    """Seconds spent inside wrapped calls, by stage."""

    seconds: dict[str, float] = field(default_factory=dict)

    def timed(self, stage: str, function: Callable[..., Any]) -> Callable[..., Any]:
        """`function`, counting its time under `stage`."""
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start
        return timed

    def wrap(self, owner: Any, name: str, stage: str) -> None:
        """Replace `owner.name` (a bound method) by a timed one on this instance only."""
        setattr(owner, name, self.timed(stage, getattr(owner, name)))

    def iterate(self, stage: str, items: Iterable[Any]) -> Iterator[Any]:
        """Yield from `items`, counting the time spent producing each one."""
        iterator = iter(items)
        while True:
            start = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                return
            finally:
                self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start
            yield item

    def take(self) -> dict[str, float]:
        """The seconds counted since the last take, by stage; the clock starts again from zero."""
        seconds, self.seconds = self.seconds, {}
        return seconds


def busy_cpu_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy, or None without psutil."""
    try:
        import psutil
    except ImportError:
        return None
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)
