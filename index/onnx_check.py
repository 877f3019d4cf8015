"""The quality gate an int8 ONNX export must pass before the `onnx-int8` backend may use it.

Measured against the fp32 torch model on a SQuAD-style set (`corpus.jsonl`: articles whose paragraphs are
joined by a blank line; `qa.jsonl`: questions with `doc_id` and `answer_starts`, as in the shared datasets):

- the cosine of each paragraph's int8 vector to its fp32 vector: the mean must be >= 0.99 (the min, and
  the questions' mean and min, are reported);
- recall@10 over all paragraphs by cosine, where each answerable question's one relevant paragraph is the
  one it was written on (the paragraph holding its first answer's offset): int8 for queries and paragraphs,
  and both mixed setups (an index built by one backend, searched with the other), each within 1 point of
  fp32. Passing the mixed rows is what lets both backends share an index (same model name in the manifest).

Usage: result = run_check(reference=torch_embedder, candidate=onnx_embedder, data=load_check_data(Path(d)))
"""

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from index.embedding import Embedder

MIN_COSINE_MEAN = 0.99
MAX_RECALL_DROP = 0.01  # one point of recall
K = 10
MIXED_INDEX_FP32 = "fp32 passages, int8 queries"
MIXED_INDEX_INT8 = "int8 passages, fp32 queries"


@dataclass(frozen=True)
class CheckData:
    """Paragraphs, and answerable questions with the index of the paragraph each was written on."""

    source: str
    passages: tuple[str, ...]
    questions: tuple[str, ...]
    gold: tuple[int, ...]


@dataclass(frozen=True)
class CheckResult:
    """The gate's figures and verdict; `failures` says in words what missed its bound."""

    passed: bool
    failures: tuple[str, ...]
    cosine_mean: float
    cosine_min: float
    question_cosine_mean: float
    question_cosine_min: float
    passages: int
    questions: int
    k: int
    recall: dict[str, float]
    source: str
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "failures": list(self.failures),
                "bounds": {"min_cosine_mean": MIN_COSINE_MEAN, "max_recall_drop": MAX_RECALL_DROP}}


def load_check_data(directory: Path) -> CheckData:
    """Read corpus.jsonl and qa.jsonl from `directory` (unanswerable questions are left out).

    Raises:
        ValueError: a file is missing or malformed, or no question has an answer in the paragraphs.
    """
    corpus_path, qa_path = directory / "corpus.jsonl", directory / "qa.jsonl"
    for path in (corpus_path, qa_path):
        if not path.is_file():
            raise ValueError(f"the check data needs {path} (corpus.jsonl and qa.jsonl, as in the SQuAD dev split)")
    passages: list[str] = []
    starts: dict[str, list[tuple[int, int]]] = {}  # doc_id -> (char offset, passage index) of each paragraph
    for number, record in _jsonl(corpus_path):
        try:
            doc_id, text = str(record["doc_id"]), str(record["text"])
        except KeyError as exc:
            raise ValueError(f"{corpus_path}:{number}: no {exc.args[0]!r}") from exc
        offset, spans = 0, []
        for paragraph in text.split("\n\n"):
            if paragraph.strip():
                spans.append((offset, len(passages)))
                passages.append(paragraph)
            offset += len(paragraph) + 2
        starts[doc_id] = spans
    questions: list[str] = []
    gold: list[int] = []
    for number, record in _jsonl(qa_path):
        offsets = record.get("answer_starts") or []
        paragraphs = starts.get(str(record.get("doc_id")))
        if not offsets or not paragraphs or "question" not in record:
            continue
        before = [index for start, index in paragraphs if start <= int(offsets[0])]
        if not before:
            raise ValueError(f"{qa_path}:{number}: answer offset {offsets[0]} lies before the first paragraph")
        questions.append(str(record["question"]))
        gold.append(before[-1])
    if not questions:
        raise ValueError(f"{qa_path}: no answerable question whose doc_id is in {corpus_path}")
    return CheckData(source=str(directory.resolve()), passages=tuple(passages), questions=tuple(questions),
                     gold=tuple(gold))


def run_check(*, reference: Embedder, candidate: Embedder, data: CheckData, progress: bool = False) -> CheckResult:
    """Embed the data with both models and apply the bounds above."""
    started = time.perf_counter()
    passages_ref = reference.embed(data.passages, progress=progress)
    passages_new = candidate.embed(data.passages, progress=progress)
    questions_ref = reference.embed(data.questions, progress=progress)
    questions_new = candidate.embed(data.questions, progress=progress)
    cosines = np.sum(passages_ref * passages_new, axis=1)
    question_cosines = np.sum(questions_ref * questions_new, axis=1)  # reported; the recall rows gate queries
    gold = np.asarray(data.gold)
    recall = {
        "fp32": recall_at_k(questions_ref, passages_ref, gold, K),
        "int8": recall_at_k(questions_new, passages_new, gold, K),
        MIXED_INDEX_FP32: recall_at_k(questions_new, passages_ref, gold, K),
        MIXED_INDEX_INT8: recall_at_k(questions_ref, passages_new, gold, K),
    }
    failures = []
    if float(cosines.mean()) < MIN_COSINE_MEAN:
        failures.append(f"mean cosine to fp32 {cosines.mean():.4f} < {MIN_COSINE_MEAN}")
    for name, value in recall.items():
        if name != "fp32" and value < recall["fp32"] - MAX_RECALL_DROP:
            failures.append(f"recall@{K} {name} {value:.4f} is more than 1 point below fp32 {recall['fp32']:.4f}")
    return CheckResult(passed=not failures, failures=tuple(failures), cosine_mean=float(cosines.mean()),
                       cosine_min=float(cosines.min()), question_cosine_mean=float(question_cosines.mean()),
                       question_cosine_min=float(question_cosines.min()), passages=len(data.passages),
                       questions=len(data.questions),
                       k=K, recall=recall, source=data.source, seconds=round(time.perf_counter() - started, 1))


def recall_at_k(queries: np.ndarray, passages: np.ndarray, gold: np.ndarray, k: int) -> float:
    """Share of queries whose gold passage is among the k highest by inner product."""
    k = min(k, passages.shape[0])
    scores = queries @ passages.T
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return float(np.mean(np.any(top == gold[:, None], axis=1)))


def _jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
        if not isinstance(record, dict):
            raise ValueError(f"{path}:{number}: expected a JSON object")
        records.append((number, record))
    return records
