"""A damaged or planted index file: citeqa answers exactly as before, or stops with one clear line.

A 3-document index is built through the CLI and its read outputs recorded. Then, on a fresh copy per
case, one file of the index (every file there is: the SQLite database, each FAISS and BM25 snapshot, the
writer lock, and any WAL/shared-memory file) is truncated to half, truncated to nothing, has one bit
flipped, or is replaced by a pickle that creates a marker file when unpickled. Bits are flipped at 12
seeded random offsets per file (4 in the first 100 bytes, where the headers are) and, in the database,
inside every stored copy of every doc_id and title, which is where SQLite's own indexes keep their keys.

Every read command (`documents list`, `documents show` of each document, two searches) and an ingest of
a new document must then exit 0 printing exactly what the intact index printed (after an ingest, the
listing must be the intact index's plus the new document), or exit 2 with one `citeqa: error:` line and
nothing on stdout; never print a traceback, exit otherwise or die by a signal; and never unpickle anything.
"""

import json
import os
import pickle
import random
import re
import shutil
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.index.cli_helpers import ROOT, CliResult, CliServer, check_exit, run_citeqa

pytestmark = pytest.mark.slow

QUERIES = ("How much did the Harbor Bridge repairs cost?", "council budget vote on school funding")
SOURCES = ("harbor-bridge.txt", "council-budget.txt", "hospital-study.md")
NEW_ARTICLE = "tech-layoffs.md"
FLIPS_PER_FILE = 12  # 4 of them in the first 100 bytes
DATABASE = "index.sqlite"
WORKERS = 2
ARTICLES = ROOT / "examples" / "articles"


class _Payload:
    """Unpickling this creates `path`: proof that something loaded a pickle."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


@dataclass(frozen=True)
class Baseline:
    index: Path
    new_article: Path
    reads: list[tuple[list[str], str]]  # (command without --index, stdout of the intact index)
    ingest: tuple[list[str], str]  # ingesting the new article into an intact copy
    after_ingest: tuple[list[str], str]  # `documents list` after that
    needles: list[bytes]  # every doc_id and title, as stored


@dataclass(frozen=True)
class Case:
    name: str
    file: str
    tamper: Callable[[Path, Path], None]  # (index file, case directory)


@pytest.fixture(scope="module")
def servers():
    with CliServer() as first, CliServer() as second:
        yield [first, second]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory, servers: list[CliServer]) -> Baseline:
    root = tmp_path_factory.mktemp("tamper")
    index = root / "index"
    cli = servers[0]
    for name in SOURCES:  # one ingest each: the directory then holds the current and the previous snapshot
        result = cli.run(["ingest", str(ARTICLES / name), "--index", str(index), "--json"])
        assert result.returncode == 0, result.describe()
    new_article = root / NEW_ARTICLE
    shutil.copy(ARTICLES / NEW_ARTICLE, new_article)

    listing = cli.run(["documents", "list", "--index", str(index), "--json"])
    doc_ids = [d["doc_id"] for d in listing.json()["documents"]]
    assert len(doc_ids) == 3
    commands = [["documents", "list", "--json"]] + [["documents", "show", i, "--json"] for i in doc_ids] + \
        [["search", q, "-k", "5", "--json"] for q in QUERIES]
    reads = []
    for args in commands:
        result = cli.run([*args, "--index", str(index)])
        assert result.returncode == 0 and result.stderr == "", result.describe()
        reads.append((args, result.stdout))
    assert len(reads[0][1]) > 100 and all('"results": []' not in out for _, out in reads[-2:])
    # The fork server prints what the console script prints (test_crash_safety compares a search too).
    args, out = reads[0]
    assert run_citeqa([*args, "--index", str(index)]).stdout == out

    intact = root / "intact"
    shutil.copytree(index, intact)
    ingest_args = ["ingest", str(new_article), "--json"]
    ingested = cli.run([*ingest_args, "--index", str(intact)])
    assert ingested.returncode == 0 and '"created"' in ingested.stdout, ingested.describe()
    after = cli.run(["documents", "list", "--json", "--index", str(intact)])
    assert after.returncode == 0 and len(after.json()["documents"]) == 4
    needles = [d[key].encode() for d in json.loads(reads[0][1])["documents"] for key in ("doc_id", "title")]
    return Baseline(index, new_article, reads, (ingest_args, ingested.stdout),
                    (["documents", "list", "--json"], after.stdout), needles)


def index_files(baseline: Baseline) -> list[str]:
    names = sorted(p.name for p in baseline.index.iterdir())
    assert DATABASE in names and "write.lock" in names, names
    assert len([n for n in names if n.startswith("vectors-") and n.endswith(".faiss")]) == 2, names
    return names


def truncate_to(fraction: float) -> Callable[[Path, Path], None]:
    def tamper(path: Path, _case: Path) -> None:
        os.truncate(path, int(path.stat().st_size * fraction))
    return tamper


def flip_bit(offset: int, bit: int) -> Callable[[Path, Path], None]:
    def tamper(path: Path, _case: Path) -> None:
        with open(path, "r+b") as handle:
            handle.seek(offset)
            byte = handle.read(1)[0]
            handle.seek(offset)
            handle.write(bytes([byte ^ (1 << bit)]))
    return tamper


def plant_pickle(path: Path, case: Path) -> None:
    path.write_bytes(pickle.dumps(_Payload(case / "UNPICKLED"), protocol=pickle.HIGHEST_PROTOCOL))


def cases(kind: str, baseline: Baseline) -> list[Case]:
    found = []
    for name in index_files(baseline):
        size = (baseline.index / name).stat().st_size
        if kind == "truncate-half":
            found.append(Case(f"{name} to {size // 2} bytes", name, truncate_to(0.5)))
        elif kind == "truncate-zero":
            found.append(Case(f"{name} to 0 bytes", name, truncate_to(0)))
        elif kind == "pickle":
            found.append(Case(f"{name} replaced by a pickle", name, plant_pickle))
        elif size:  # bit flips; an empty file (the lock) has no bit to flip
            rng = random.Random(f"{name}:{size}")
            head = rng.sample(range(min(size, 100)), 4)
            rest = rng.sample(range(size), FLIPS_PER_FILE - 4)
            for offset in sorted(set(head + rest)):
                bit = rng.randrange(8)
                found.append(Case(f"{name} bit {bit} of byte {offset} flipped", name, flip_bit(offset, bit)))
            if name == DATABASE:
                found += targeted_flips(baseline, rng)
    return found


def targeted_flips(baseline: Baseline, rng: random.Random) -> list[Case]:
    """A bit flipped inside every stored copy of every doc_id and title: in the table rows and in each of
    SQLite's own indexes (doc_id key, passage_id key, (doc_id, ordinal) key), whose entries no checksum of
    ours covers. Random offsets hit these few hundred bytes of a 50 KB file only by luck."""
    data = (baseline.index / DATABASE).read_bytes()
    found = []
    for needle in baseline.needles:
        for match in re.finditer(re.escape(needle), data):
            offset, bit = match.start() + rng.randrange(len(needle)), rng.randrange(6)
            found.append(Case(f"{DATABASE} bit {bit} of byte {offset} (in {needle.decode()!r}) flipped", DATABASE,
                              flip_bit(offset, bit)))
    return found


def run_case(cli: CliServer, baseline: Baseline, case: Case, case_dir: Path) -> tuple[list[str], Counter[str]]:
    """Every problem the tampered copy shows ([] when citeqa behaved), and how the commands ended."""
    index = case_dir / "index"
    shutil.copytree(baseline.index, index)
    case.tamper(index / case.file, case_dir)
    problems: list[str] = []
    outcomes: Counter[str] = Counter()

    def check(args: list[str], expected: str) -> CliResult:
        result = cli.run([*args, "--index", str(index)])
        problems.extend(check_exit(result, read_baseline=expected))
        outcomes[f"{args[0]}: {'as before' if result.returncode == 0 else 'refused'}"] += 1
        return result

    for args, expected in baseline.reads:
        check(args, expected)
    if check(*baseline.ingest).returncode == 0:  # it repaired what it could: the old documents are intact
        check(*baseline.after_ingest)
    if (case_dir / "UNPICKLED").exists():
        problems.append("the planted pickle was unpickled")
    if not problems:
        shutil.rmtree(case_dir)
    return [f"[{case.name}] {p}" for p in problems], outcomes


@pytest.mark.parametrize("kind", ["truncate-half", "truncate-zero", "bit-flips", "pickle"])
def test_tampered_index_file(kind: str, baseline: Baseline, servers: list[CliServer], tmp_path: Path) -> None:
    todo = cases(kind, baseline)
    if kind == "bit-flips":
        flipped = {c.file for c in todo}
        assert flipped == {n for n in index_files(baseline) if (baseline.index / n).stat().st_size}
        assert all(sum(c.file == name for c in todo) >= 10 for name in flipped)
        assert sum("(in " in c.name for c in todo) >= 30  # the targeted ones found every structure
    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(lambda n: run_case(servers[n % WORKERS], baseline, todo[n], tmp_path / f"case-{n}"),
                                range(len(todo))))
    problems = [p for found, _ in results for p in found]
    by_file: dict[str, Counter[str]] = {}
    for case, (_, outcomes) in zip(todo, results, strict=True):
        by_file.setdefault(case.file, Counter()).update(outcomes)
    print(f"\n{kind}: {len(todo)} cases; " + "; ".join(
        f"{name}: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())) for name, c in sorted(by_file.items())))
    assert not problems, f"{len(problems)} problems in {len(todo)} cases:\n\n" + "\n\n".join(problems)


def test_the_planted_pickle_would_be_noticed(tmp_path: Path) -> None:
    """The payload really does create its marker when something unpickles it."""
    target = tmp_path / "planted"
    plant_pickle(target, tmp_path)
    pickle.loads(target.read_bytes()).close()
    assert (tmp_path / "UNPICKLED").exists()
