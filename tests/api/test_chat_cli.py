"""`citeqa chat` as a user scripts it: lines piped in, answers and '(read as: …)' out, /sources, /reset, EOF."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from api.cli import main
from tests.conftest import ARTICLES


@pytest.fixture(scope="module")
def demo_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    index = tmp_path_factory.mktemp("chat") / "index"
    assert main(["ingest", str(ARTICLES), "--index", str(index), "--json"]) == 0
    return index


def chat(index: Path, stdin: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "api.cli", "chat", "--index", str(index), *extra], input=stdin,
                          capture_output=True, text=True, timeout=600,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "TOKENIZERS_PARALLELISM": "false"})


@pytest.mark.slow
def test_three_turn_chat_with_sources_reset_and_eof(demo_index: Path) -> None:
    script = ("Who won the Northmoor governor race?\n"
              "When will she be sworn in?\n"
              "\n"
              "/sources\n"
              "Who was the incumbent governor in the Northmoor election?\n"
              "/reset\n"
              "When will she be sworn in?\n"
              + "x" * 1001 + "\n"
              "/nonsense\n")
    proc = chat(demo_index, script)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    err = proc.stderr.splitlines()
    assert err[0] == "loading…" and err[1].startswith("session ")
    out = proc.stdout
    assert "> Who won the Northmoor governor race?\nAmara Kessling [1]." in out
    assert "(read as: When will Amara Kessling be sworn in?)\nJune 2 [1]." in out
    sources = out.split("> /sources\n", 1)[1].split("\n> ", 1)[0]
    assert sources.startswith("[1] Amara Kessling wins Northmoor governorship by narrow margin  (supports the answer)")
    assert "\u201cKessling will be sworn in on June 2, becoming the first woman to lead the province.\u201d" in sources
    assert "Roland Pike" in out
    after_reset = out.split("> /reset\n", 1)[1]
    assert "(read as:" not in after_reset  # a new session: nothing to resolve "she" against
    assert any(line.startswith("(new session ") for line in err)
    assert "citeqa: error: the question is longer than 1000 characters" in err
    assert "citeqa: error: unknown command /nonsense; /help lists them" in err


@pytest.mark.slow
def test_resume_a_session_and_json_lines(demo_index: Path) -> None:
    first = chat(demo_index, "Which striker did Redmarsh United sign?\n/quit\nnot asked\n", "--json")
    assert first.returncode == 0, first.stderr
    [line] = first.stdout.splitlines()
    assert json.loads(line)["short_answer"] == "Tiago Almeida"
    session = next(e for e in first.stderr.splitlines() if e.startswith("session ")).split()[1]

    resumed = chat(demo_index, "How old is he?\n", "--session", session, "--json")
    assert resumed.returncode == 0, resumed.stderr
    answer = json.loads(resumed.stdout)
    assert answer["question"] == "How old is he?"
    assert answer["standalone_question"] == "How old is Tiago Almeida?"


@pytest.mark.slow
def test_unknown_session_exits_2(demo_index: Path) -> None:
    proc = chat(demo_index, "Who?\n", "--session", "nope")
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1].startswith("citeqa: error: no chat session 'nope'")


def test_chat_on_a_missing_index_exits_2(tmp_path: Path, capsys) -> None:
    assert main(["chat", "--index", str(tmp_path / "none")]) == 2
    assert "no index at" in capsys.readouterr().err
