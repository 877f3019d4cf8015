"""Loading gold sets: our JSONL, chat JSONL and SQuAD JSON; clear errors naming the line; seeded samples."""

import json
from pathlib import Path

import pytest

from qa.gold import BadGoldSet, is_squad_json, load_gold, sample
from tests.conftest import ROOT

DEMO = ROOT / "examples" / "gold" / "demo.jsonl"
DEMO_CHAT = ROOT / "examples" / "gold" / "demo_chat.jsonl"


def write_lines(path: Path, *records: object) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n", encoding="utf-8")
    return path


def test_demo_gold_set() -> None:
    gold = load_gold(DEMO)
    assert gold.format == "jsonl" and len(gold) == len(gold.questions) == 88 and not gold.conversations
    first = gold.questions[0]
    assert (first.id, first.doc_id, first.type) == ("q001", "file:hospital-study", "person")
    assert first.answers == ("Dr. Hannah Lindqvist", "Hannah Lindqvist") and first.answerable
    assert sum(not q.answerable for q in gold.questions) == 12


def test_demo_chat_gold_set() -> None:
    gold = load_gold(DEMO_CHAT)
    assert len(gold.conversations) == 10 and not gold.questions
    first = gold.conversations[0]
    assert first.id == "c01" and len(first.turns) == 3
    assert first.turns[1].standalone == "What did Mayor Elena Ruiz say Brackenport would hold in April?"
    turns = first.turn_questions()
    assert [t.id for t in turns] == ["c01/1", "c01/2", "c01/3"]
    assert turns[2].answers == ("$48.6 million",) and turns[2].doc_id == "file:harbor-bridge"
    assert len(gold) == sum(len(c.turns) for c in gold.conversations)


def test_blank_lines_and_extra_fields(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "g.jsonl",
                       {"id": "a", "question": "  Who   won? ", "answers": ["Ann"], "answer_starts": [3]}, "",
                       {"id": 7, "question": "Why?", "answers": [], "supporting_doc_ids": ["x", "y"]})
    gold = load_gold(path)
    assert [q.id for q in gold.questions] == ["a", "7"]
    assert gold.questions[0].question == "Who won?"
    assert gold.questions[1].supporting_doc_ids == ("x", "y") and not gold.questions[1].answerable


@pytest.mark.parametrize(("line", "message"), [
    ("{not json", r"g\.jsonl:2: not valid JSON"),
    ('["a list"]', r"g\.jsonl:2: expected a JSON object, got list"),
    ('{"id": "b", "question": "Who?"}', r"g\.jsonl:2: 'answers' is missing"),
    ('{"id": "b", "question": "Who?", "answers": "Ann"}', r"g\.jsonl:2: 'answers' must be a list of strings"),
    ('{"id": "b", "question": "Who?", "answers": [""]}', r"g\.jsonl:2: 'answers' holds an empty string"),
    ('{"id": "b", "question": " ", "answers": []}', r"g\.jsonl:2: 'question' must be a non-empty string"),
    ('{"question": "Who?", "answers": []}', r"g\.jsonl:2: 'id' must be a non-empty string"),
    ('{"id": "a", "question": "Who?", "answers": []}', r"g\.jsonl:2: id 'a' is already used on line 1"),
    ('{"id": "b", "question": "Who?", "answers": [], "doc_id": 3}', r"g\.jsonl:2: 'doc_id' must be"),
    ('{"id": "b", "turns": []}', r"g\.jsonl:2: 'turns' must be a non-empty list"),
    ('{"id": "b", "turns": [{"question": "Who?"}]}', r"g\.jsonl:2 turn 1: 'answers' is missing"),
])
def test_bad_lines_are_named(tmp_path: Path, line: str, message: str) -> None:
    path = write_lines(tmp_path / "g.jsonl", {"id": "a", "question": "Who?", "answers": ["Ann"]}, line)
    with pytest.raises(BadGoldSet, match=message):
        load_gold(path)


def test_unreadable_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(BadGoldSet, match="cannot read gold file"):
        load_gold(tmp_path / "missing.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n\n", encoding="utf-8")
    with pytest.raises(BadGoldSet, match="no questions"):
        load_gold(tmp_path / "empty.jsonl")
    (tmp_path / "bin.jsonl").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(BadGoldSet, match="cannot read"):
        load_gold(tmp_path / "bin.jsonl")


SQUAD = {
    "version": "v2.0",
    "data": [{"title": "Grey_Harbour", "paragraphs": [
        {"context": "Grey Harbour was founded in 1820 by fishing families.",
         "qas": [{"id": "s1", "question": "When was Grey Harbour founded?", "is_impossible": False,
                  "answers": [{"text": "1820", "answer_start": 28}, {"text": "in 1820", "answer_start": 25}]},
                 {"id": "s2", "question": "Who closed Grey Harbour?", "is_impossible": True, "answers": [],
                  "plausible_answers": [{"text": "fishing families", "answer_start": 36}]}]},
        {"context": "Its lighthouse is 40 metres tall.",
         "qas": [{"id": "s3", "question": "How tall is the lighthouse?",
                  "answers": [{"text": "40 metres", "answer_start": 18}]}]},
    ]}],
}


def test_squad_json(tmp_path: Path) -> None:
    path = tmp_path / "dev.json"
    path.write_text(json.dumps(SQUAD), encoding="utf-8")
    assert is_squad_json(path)
    gold = load_gold(path)
    assert gold.format == "squad" and [q.id for q in gold.questions] == ["s1", "s2", "s3"]
    assert gold.questions[0].answers == ("1820", "in 1820")
    assert gold.questions[1].answers == ()  # is_impossible: its plausible answers are not gold
    assert [q.doc_id for q in gold.questions] == ["Grey_Harbour#0", "Grey_Harbour#0", "Grey_Harbour#1"]
    assert [(a.doc_id, a.title, a.text[:12]) for a in gold.articles] == [
        ("Grey_Harbour#0", "Grey Harbour", "Grey Harbour"), ("Grey_Harbour#1", "Grey Harbour", "Its lighthou")]
    jsonl = write_lines(tmp_path / "g.jsonl", {"id": "a", "question": "Who?", "answers": []})
    assert not is_squad_json(jsonl) and not is_squad_json(tmp_path / "missing.json")


def test_bad_squad_json_is_named(tmp_path: Path) -> None:
    broken = json.loads(json.dumps(SQUAD))
    del broken["data"][0]["paragraphs"][1]["qas"][0]["id"]
    path = tmp_path / "dev.json"
    path.write_text(json.dumps(broken), encoding="utf-8")
    with pytest.raises(BadGoldSet, match=r"data\[0\]\.paragraphs\[1\] question 0: 'id'"):
        load_gold(path)


def test_sample_is_seeded_and_keeps_file_order() -> None:
    items = list(range(100))
    assert sample(items, limit=None, seed=3) == items
    assert sample(items, limit=5, seed=None) == [0, 1, 2, 3, 4]
    first, again = sample(items, limit=10, seed=7), sample(items, limit=10, seed=7)
    assert first == again == sorted(first) and len(set(first)) == 10
    assert sample(items, limit=10, seed=8) != first
    assert sample(items, limit=500, seed=1) == items
    with pytest.raises(ValueError, match="limit must be at least 1"):
        sample(items, limit=0, seed=None)
