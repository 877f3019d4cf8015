"""The CLI as a user meets it: the contract's JSON shapes, exit codes and one-line errors."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from api.cli import main
from tests.conftest import ARTICLES


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def index_dir(tmp_path: Path) -> Path:
    return tmp_path / "index"


def test_ingest_list_show_search_edit_delete(capsys, tmp_path: Path, index_dir: Path) -> None:
    articles = tmp_path / "articles"
    shutil.copytree(ARTICLES, articles)
    ix = ["--index", str(index_dir)]

    code, out, _ = run(capsys, "ingest", str(articles), *ix, "--json")
    assert code == 0
    ingested = json.loads(out)
    assert ingested["skipped"] == []
    assert {d["status"] for d in ingested["documents"]} == {"created"}
    assert set(ingested["documents"][0]) >= {"doc_id", "source", "status", "passages"}

    code, out, _ = run(capsys, "documents", "list", *ix, "--json")
    listed = {d["doc_id"]: d for d in json.loads(out)["documents"]}
    assert code == 0 and len(listed) == 8
    bridge = listed["file:harbor-bridge"]
    assert bridge["title"] == "Harbor Bridge reopens after 14 months of repairs"
    assert bridge["published"] == "2026-03-12" and bridge["url"].startswith("https://news.example.com/")

    code, out, _ = run(capsys, "documents", "show", "file:harbor-bridge", *ix, "--json")
    shown = json.loads(out)
    assert code == 0 and len(shown["text"]) == bridge["chars"]
    assert len(shown["passages"]) == bridge["passages"]

    code, out, _ = run(capsys, "search", "How much did the bridge repairs cost?", "-k", "3", *ix, "--json")
    results = json.loads(out)["results"]
    assert code == 0 and [r["rank"] for r in results] == [1, 2, 3]
    top = results[0]
    assert top["doc_id"] == "file:harbor-bridge"
    assert shown["text"][top["char_start"]:top["char_end"]] == top["text"]

    code, out, _ = run(capsys, "ingest", str(articles), *ix, "--json")
    assert {d["status"] for d in json.loads(out)["documents"]} == {"unchanged"}

    bridge_file = articles / "harbor-bridge.txt"
    bridge_file.write_text(bridge_file.read_text().replace("$48.6 million", "$51.2 million"))
    code, out, _ = run(capsys, "ingest", str(bridge_file), *ix, "--json")
    assert [(d["doc_id"], d["status"]) for d in json.loads(out)["documents"]] == [("file:harbor-bridge", "replaced")]
    code, out, _ = run(capsys, "documents", "show", "file:harbor-bridge", *ix, "--json")
    assert "$51.2 million" in json.loads(out)["text"]

    code, out, _ = run(capsys, "documents", "delete", "file:harbor-bridge", *ix)
    assert code == 0 and out.strip() == "deleted file:harbor-bridge"
    code, out, _ = run(capsys, "search", "Harbor Bridge repairs cost", "-k", "20", *ix, "--json")
    assert all(r["doc_id"] != "file:harbor-bridge" for r in json.loads(out)["results"])


def test_readable_output(capsys, index_dir: Path) -> None:
    code, out, _ = run(capsys, "ingest", str(ARTICLES / "council-budget.txt"), "--index", str(index_dir))
    assert code == 0
    assert out.splitlines()[-1].startswith("1 created, 0 replaced, 0 unchanged, 0 skipped")
    code, out, _ = run(capsys, "search", "budget vote", "--index", str(index_dir))
    assert code == 0 and out.startswith("[1] ") and "Elmsworth" in out


def test_bad_files_are_named_and_the_rest_goes_in(capsys, tmp_path: Path, index_dir: Path) -> None:
    (tmp_path / "good.txt").write_text("The ferry service resumes on Monday.")
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8\xff")
    code, out, err = run(capsys, "ingest", str(tmp_path), "--index", str(index_dir), "--json")
    assert code == 0
    assert [d["doc_id"] for d in json.loads(out)["documents"]] == ["file:good"]
    assert f"citeqa: skipped {tmp_path / 'empty.txt'}: empty file" in err
    assert f"citeqa: skipped {tmp_path / 'photo.jpg'}: unsupported file type '.jpg'" in err


def test_nothing_ingestible_exits_2(capsys, tmp_path: Path, index_dir: Path) -> None:
    (tmp_path / "empty.txt").write_text("")
    code, _, err = run(capsys, "ingest", str(tmp_path / "empty.txt"), str(tmp_path / "nope.md"),
                       "--index", str(index_dir))
    assert code == 2
    assert "nothing could be ingested" in err and "no such file or directory" in err


@pytest.mark.parametrize("argv", [
    ["documents", "list"],
    ["documents", "show", "x"],
    ["search", "anything"],
])
def test_read_commands_on_a_missing_index(capsys, tmp_path: Path, argv: list[str]) -> None:
    code, out, err = run(capsys, *argv, "--index", str(tmp_path / "none"))
    assert code == 2 and out == ""
    assert err.strip() == f"citeqa: error: no index at {tmp_path / 'none'}; run citeqa ingest first"


def test_unknown_document_and_bad_k(capsys, index_dir: Path) -> None:
    run(capsys, "ingest", str(ARTICLES / "council-budget.txt"), "--index", str(index_dir))
    code, _, err = run(capsys, "documents", "show", "nope", "--index", str(index_dir))
    assert code == 2 and err.strip() == "citeqa: error: no document 'nope' in the index"
    code, _, err = run(capsys, "search", "x", "-k", "0", "--index", str(index_dir))
    assert code == 2 and "-k must be at least 1" in err


def test_model_mismatch_is_a_clear_error(capsys, index_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("CITEQA_EMBEDDING__MODEL", "hash")
    run(capsys, "ingest", str(ARTICLES / "council-budget.txt"), "--index", str(index_dir))
    monkeypatch.delenv("CITEQA_EMBEDDING__MODEL")
    code, _, err = run(capsys, "search", "budget", "--index", str(index_dir))
    assert code == 2
    assert "built with hash (dimension 256), but the settings ask for sentence-transformers/all-MiniLM-L6-v2" in err


def test_index_dir_from_the_environment(capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CITEQA_INDEX_DIR", str(tmp_path / "env-index"))
    monkeypatch.setenv("CITEQA_EMBEDDING__MODEL", "hash")
    code, _, _ = run(capsys, "ingest", str(ARTICLES / "council-budget.txt"))
    assert code == 0 and (tmp_path / "env-index" / "index.sqlite").is_file()


def test_usage_errors_exit_2_without_traceback(tmp_path: Path) -> None:
    for argv in (["frobnicate"], ["search"], ["documents", "show"]):
        proc = subprocess.run([sys.executable, "-m", "api.cli", *argv], capture_output=True, text=True)
        assert proc.returncode == 2, argv
        assert "Traceback" not in proc.stderr and "usage: citeqa" in proc.stderr


def test_json_output_is_only_json(tmp_path: Path) -> None:
    env_index = str(tmp_path / "ix")
    proc = subprocess.run([sys.executable, "-m", "api.cli", "ingest", str(ARTICLES), "--index", env_index, "--json"],
                          capture_output=True, text=True, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)["documents"]) == 8
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_ask_answers_with_an_exact_quote_and_refuses_what_is_not_there(capsys, index_dir: Path) -> None:
    run(capsys, "ingest", str(ARTICLES), "--index", str(index_dir))
    code, out, _ = run(capsys, "ask", "How much did the Harbor Bridge repairs cost?", "--index", str(index_dir),
                       "--json")
    answer = json.loads(out)
    assert code == 0 and answer["refused"] is False
    assert answer["short_answer"] == "$48.6 million" and answer["answer"] == "$48.6 million [1]."
    citation = answer["citations"][0]
    code, out, _ = run(capsys, "documents", "show", citation["doc_id"], "--index", str(index_dir), "--json")
    text = json.loads(out)["text"]
    assert text[citation["char_start"]:citation["char_end"]] == citation["quote"]
    assert answer["short_answer"] in citation["quote"]
    assert set(answer["timings_ms"]) >= {"retrieve", "answer", "total"}

    code, out, _ = run(capsys, "ask", "Who designed the replacement cables for the Harbor Bridge?",
                       "--index", str(index_dir))
    assert code == 0
    assert out.startswith("The indexed articles do not say")
    assert "Closest passages (they do not answer it):" in out


def test_ask_bad_input(capsys, index_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("CITEQA_EMBEDDING__MODEL", "hash")
    run(capsys, "ingest", str(ARTICLES / "council-budget.txt"), "--index", str(index_dir))
    code, _, err = run(capsys, "ask", "   ", "--index", str(index_dir))
    assert code == 2 and err.strip() == "citeqa: error: the question is empty"
    code, _, err = run(capsys, "ask", "x" * 1001, "--index", str(index_dir))
    assert code == 2 and "longer than 1000 characters" in err
    # An OpenAI-compatible server that is not there: one clear line, not a hang or a traceback.
    monkeypatch.setenv("CITEQA_LLM__PROVIDER", "openai")
    monkeypatch.setenv("CITEQA_LLM__BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("CITEQA_LLM__MAX_RETRIES", "0")
    code, _, err = run(capsys, "ask", "Who approved the budget?", "--generator", "llm", "--index", str(index_dir))
    assert code == 2 and "cannot reach the language model server http://127.0.0.1:9/v1" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_an_index_inside_the_ingested_folder_is_not_read(capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CITEQA_EMBEDDING__MODEL", "hash")
    (tmp_path / "story.txt").write_text("The ferry service resumes on Monday.")
    index = tmp_path / "ix"
    assert run(capsys, "ingest", str(tmp_path), "--index", str(index))[0] == 0
    code, out, err = run(capsys, "ingest", str(tmp_path), "--index", str(index))
    assert code == 0 and "skipped" not in err
    assert out.splitlines()[-1].startswith("0 created, 0 replaced, 1 unchanged, 0 skipped")
