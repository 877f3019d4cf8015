"""Gold question sets for `citeqa eval`: our JSONL (single questions or chat conversations) and SQuAD JSON.

Formats (shared INTERFACE.md):

- JSONL, one question a line: `{"id", "question", "answers": [..]}` (`[]` = not answerable from the corpus),
  optional `"doc_id"` (the article holding the answer), `"type"` (a label the report groups scores by) and
  `"supporting_doc_ids"` (every article a multi-hop answer needs, as in HotpotQA). Other fields are ignored.
- Chat JSONL, one conversation a line: `{"id", "turns": [{"question", "answers", "standalone"?}, ..]}` with
  optional `"doc_id"`/`"type"` for the whole conversation; `standalone` is the follow-up rewritten to stand
  alone. Single questions and conversations may share a file.
- SQuAD v1.1/v2.0 JSON: `{"data": [{"title", "paragraphs": [{"context", "qas": [{"id", "question",
  "answers": [{"text"}], "is_impossible"?}]}]}]}`. Each paragraph is an article of its own
  (`doc_id` = "<title>#<paragraph number>"), so `GoldSet.articles` can be ingested as the corpus.

Blank lines are skipped; anything else that is wrong raises `BadGoldSet` naming the file and line.

Usage: gold = load_gold(Path("examples/gold/demo.jsonl")); gold.questions[0].answers
"""

import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from index.articles import Article, clean_text
from qa.errors import QAError

T = TypeVar("T")


class BadGoldSet(QAError):
    """The gold file cannot be read or a line of it is malformed."""


@dataclass(frozen=True)
class GoldQuestion:
    """One question with its gold answers; `answers == ()` means the corpus does not answer it."""

    id: str
    question: str
    answers: tuple[str, ...]
    doc_id: str | None = None
    type: str | None = None
    supporting_doc_ids: tuple[str, ...] = ()

    @property
    def answerable(self) -> bool:
        return bool(self.answers)


@dataclass(frozen=True)
class GoldTurn:
    """One turn of a conversation; `standalone` is the question rewritten without the history."""

    question: str
    answers: tuple[str, ...]
    standalone: str | None = None


@dataclass(frozen=True)
class GoldConversation:
    """A multi-turn conversation, asked in order; each turn is scored as a question of its own."""

    id: str
    turns: tuple[GoldTurn, ...]
    doc_id: str | None = None
    type: str | None = None

    def turn_questions(self) -> list[GoldQuestion]:
        """Each turn as a scored question, with the id "<conversation id>/<turn number from 1>"."""
        return [GoldQuestion(id=f"{self.id}/{i}", question=t.question, answers=t.answers, doc_id=self.doc_id,
                             type=self.type or "chat turn")
                for i, t in enumerate(self.turns, start=1)]


@dataclass(frozen=True)
class GoldSet:
    """A loaded gold file: single questions, conversations, and (SQuAD JSON only) the articles it carries."""

    source: str
    format: str  # "jsonl" or "squad"
    questions: tuple[GoldQuestion, ...] = ()
    conversations: tuple[GoldConversation, ...] = ()
    articles: tuple[Article, ...] = field(default=(), repr=False)

    def __len__(self) -> int:
        return len(self.questions) + sum(len(c.turns) for c in self.conversations)


def load_gold(path: Path) -> GoldSet:
    """Read a gold file: SQuAD JSON when it is one JSON object with `data`, else JSONL.

    Raises:
        BadGoldSet: unreadable file, no questions, or a malformed line (the message names the line).
    """
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadGoldSet(f"cannot read gold file {path}: {exc}") from exc
    squad = _as_squad(raw)
    gold = _load_squad(squad, str(path)) if squad is not None else _load_jsonl(raw, str(path))
    if not len(gold):
        raise BadGoldSet(f"{path}: no questions")
    return gold


def is_squad_json(path: Path) -> bool:
    """True when the file is a SQuAD-format JSON document (its contexts can serve as the corpus)."""
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    try:
        return _as_squad(path.read_text(encoding="utf-8")) is not None
    except (OSError, UnicodeDecodeError):
        return False


def _as_squad(raw: str) -> dict[str, Any] | None:
    if not raw.lstrip().startswith("{"):
        return None
    try:
        document = json.loads(raw)
    except json.JSONDecodeError:
        return None  # a one-line JSONL file also starts with "{"; its own parser reports its errors
    if isinstance(document, dict) and isinstance(document.get("data"), list):
        return document
    return None


def _load_jsonl(raw: str, source: str) -> GoldSet:
    questions: list[GoldQuestion] = []
    conversations: list[GoldConversation] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{source}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadGoldSet(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from exc
        if not isinstance(record, dict):
            raise BadGoldSet(f"{where}: expected a JSON object, got {type(record).__name__}")
        item = _conversation(record, where) if "turns" in record else _question(record, where)
        if item.id in seen:
            raise BadGoldSet(f"{where}: id {item.id!r} is already used on line {seen[item.id]}")
        seen[item.id] = number
        if isinstance(item, GoldConversation):
            conversations.append(item)
        else:
            questions.append(item)
    return GoldSet(source=source, format="jsonl", questions=tuple(questions), conversations=tuple(conversations))


def _question(record: dict[str, Any], where: str) -> GoldQuestion:
    return GoldQuestion(
        id=_id(record, where), question=_text(record, "question", where), answers=_answers(record, where),
        doc_id=_optional(record, "doc_id", where), type=_optional(record, "type", where),
        supporting_doc_ids=_string_list(record, "supporting_doc_ids", where),
    )


def _conversation(record: dict[str, Any], where: str) -> GoldConversation:
    turns = record["turns"]
    if not isinstance(turns, list) or not turns:
        raise BadGoldSet(f"{where}: 'turns' must be a non-empty list")
    parsed = []
    for i, turn in enumerate(turns, start=1):
        turn_where = f"{where} turn {i}"
        if not isinstance(turn, dict):
            raise BadGoldSet(f"{turn_where}: expected a JSON object, got {type(turn).__name__}")
        parsed.append(GoldTurn(question=_text(turn, "question", turn_where), answers=_answers(turn, turn_where),
                               standalone=_optional(turn, "standalone", turn_where)))
    return GoldConversation(id=_id(record, where), turns=tuple(parsed), doc_id=_optional(record, "doc_id", where),
                            type=_optional(record, "type", where))


def _id(record: dict[str, Any], where: str) -> str:
    value = record.get("id")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise BadGoldSet(f"{where}: 'id' must be a non-empty string, got {value!r}")
    return value.strip()


def _text(record: dict[str, Any], name: str, where: str) -> str:
    value = record.get(name)
    if not isinstance(value, str) or not value.strip():
        raise BadGoldSet(f"{where}: {name!r} must be a non-empty string, got {value!r}")
    return " ".join(value.split())


def _answers(record: dict[str, Any], where: str) -> tuple[str, ...]:
    if "answers" not in record:
        raise BadGoldSet(f"{where}: 'answers' is missing (use [] for a question the corpus does not answer)")
    value = record["answers"]
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise BadGoldSet(f"{where}: 'answers' must be a list of strings, got {value!r}")
    if any(not a.strip() for a in value):
        raise BadGoldSet(f"{where}: 'answers' holds an empty string (use [] for an unanswerable question)")
    return tuple(value)


def _optional(record: dict[str, Any], name: str, where: str) -> str | None:
    value = record.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise BadGoldSet(f"{where}: {name!r} must be a non-empty string when given, got {value!r}")
    return value.strip()


def _string_list(record: dict[str, Any], name: str, where: str) -> tuple[str, ...]:
    value = record.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise BadGoldSet(f"{where}: {name!r} must be a list of non-empty strings, got {value!r}")
    return tuple(v.strip() for v in value)


def _load_squad(document: dict[str, Any], source: str) -> GoldSet:
    questions: list[GoldQuestion] = []
    articles: list[Article] = []
    seen: set[str] = set()
    for title, paragraph_number, context, qas, where in _squad_paragraphs(document, source):
        doc_id = f"{title}#{paragraph_number}"
        articles.append(Article(doc_id=doc_id, text=clean_text(context), source=where,
                                title=title.replace("_", " ")))
        for q_number, qa in enumerate(qas):
            q_where = f"{where} question {q_number}"
            if not isinstance(qa, dict):
                raise BadGoldSet(f"{q_where}: expected a JSON object")
            question = GoldQuestion(id=_id(qa, q_where), question=_text(qa, "question", q_where),
                                    answers=_squad_answers(qa, q_where), doc_id=doc_id)
            if question.id in seen:
                raise BadGoldSet(f"{q_where}: id {question.id!r} is used twice")
            seen.add(question.id)
            questions.append(question)
    return GoldSet(source=source, format="squad", questions=tuple(questions), articles=tuple(articles))


def _squad_paragraphs(document: dict[str, Any], source: str) -> Iterator[tuple[str, int, str, list[Any], str]]:
    for a_number, article in enumerate(document["data"]):
        where = f"{source}: data[{a_number}]"
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
            raise BadGoldSet(f"{where}: expected an object with a 'paragraphs' list")
        title = article.get("title")
        if not isinstance(title, str) or not title.strip():
            raise BadGoldSet(f"{where}: 'title' must be a non-empty string")
        for p_number, paragraph in enumerate(article["paragraphs"]):
            p_where = f"{where}.paragraphs[{p_number}]"
            if not isinstance(paragraph, dict) or not isinstance(paragraph.get("context"), str) \
                    or not paragraph["context"].strip() or not isinstance(paragraph.get("qas"), list):
                raise BadGoldSet(f"{p_where}: expected an object with a 'context' string and a 'qas' list")
            yield title.strip(), p_number, paragraph["context"], paragraph["qas"], p_where


def _squad_answers(qa: dict[str, Any], where: str) -> tuple[str, ...]:
    if qa.get("is_impossible") is True:
        return ()
    answers = qa.get("answers")
    if not isinstance(answers, list) or not all(isinstance(a, dict) and isinstance(a.get("text"), str)
                                                for a in answers):
        raise BadGoldSet(f"{where}: 'answers' must be a list of objects with a 'text' string")
    return tuple(a["text"] for a in answers if a["text"].strip())


def sample(items: Sequence[T], *, limit: int | None, seed: int | None) -> list[T]:
    """The first `limit` items (questions or conversations), or with a seed a random sample of `limit` kept
    in file order (`random.Random(seed).sample` of the positions, so a seed gives the same sample anywhere)."""
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    if limit is None or limit >= len(items):
        return list(items)
    if seed is None:
        return list(items[:limit])
    chosen = sorted(random.Random(seed).sample(range(len(items)), limit))
    return [items[i] for i in chosen]
