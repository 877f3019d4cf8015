"""Chat sessions over HTTP: follow-ups resolved against the session, turns kept with their citations."""

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from tests.api.http_helpers import build_demo_index, parse_sse

FIRST = "Who won the Northmoor governor race?"
FOLLOW_UP = "When will she be sworn in?"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):
    index_dir = build_demo_index(tmp_path_factory.mktemp("chat") / "index")
    with TestClient(create_app(Settings(index={"dir": index_dir}, embedding={"model": "hash"}))) as test_client:
        yield test_client


def test_session_follow_up_is_resolved_and_turns_are_kept(client: TestClient) -> None:
    created = client.post("/v1/chat/sessions", json={})
    assert created.status_code == 201
    session = created.json()["session_id"]
    first = client.post(f"/v1/chat/sessions/{session}/messages", json={"question": FIRST}).json()
    assert first["refused"] is False and first["short_answer"] == "Amara Kessling"
    follow = client.post(f"/v1/chat/sessions/{session}/messages", json={"question": FOLLOW_UP}).json()
    assert follow["question"] == FOLLOW_UP
    assert follow["standalone_question"] == "When will Amara Kessling be sworn in?"
    assert follow["refused"] is False and follow["citations"]
    turns = client.get(f"/v1/chat/sessions/{session}").json()["turns"]
    assert [t["n"] for t in turns] == [1, 2]
    assert [t["question"] for t in turns] == [FIRST, FOLLOW_UP]
    assert turns[1]["standalone_question"] == "When will Amara Kessling be sworn in?"
    assert turns[1]["citations"] == follow["citations"] and turns[1]["answer"] == follow["answer"]
    assert client.delete(f"/v1/chat/sessions/{session}").json() == {"deleted": session}
    assert client.get(f"/v1/chat/sessions/{session}").status_code == 404


def test_session_message_streams(client: TestClient) -> None:
    session = client.post("/v1/chat/sessions").json()["session_id"]
    client.post(f"/v1/chat/sessions/{session}/messages", json={"question": FIRST})
    with client.stream("POST", f"/v1/chat/sessions/{session}/messages", json={"question": FOLLOW_UP},
                       headers={"Accept": "text/event-stream"}) as response:
        assert response.status_code == 200
        events = parse_sse(response.read().decode("utf-8"))
    names = [name for name, _ in events]
    assert names[0] == "sources" and names[-1] == "done" and "delta" in names
    done = json.loads(events[-1][1])
    assert "".join(json.loads(d)["text"] for n, d in events if n == "delta") == done["answer"]
    assert done["standalone_question"] == "When will Amara Kessling be sworn in?"
    assert len(client.get(f"/v1/chat/sessions/{session}").json()["turns"]) == 2


@pytest.mark.parametrize("stream", [False, True])
def test_unknown_session_is_404(client: TestClient, stream: bool) -> None:
    headers = {"Accept": "text/event-stream"} if stream else {}
    response = client.post("/v1/chat/sessions/nope/messages", json={"question": FIRST}, headers=headers)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "session_not_found"
    assert client.get("/v1/chat/sessions/nope").status_code == 404
    assert client.delete("/v1/chat/sessions/nope").status_code == 404


def test_bad_session_messages(client: TestClient) -> None:
    session = client.post("/v1/chat/sessions").json()["session_id"]
    for body, code in (({}, "invalid_request"), ({"question": ""}, "bad_question"),
                       ({"question": "x " * 1000}, "bad_question"), ({"question": "Who?", "extra": 1},
                                                                      "invalid_request")):
        response = client.post(f"/v1/chat/sessions/{session}/messages", json=body)
        assert response.status_code == 422 and response.json()["error"]["code"] == code, (body, response.text)
    assert client.get(f"/v1/chat/sessions/{session}").json()["turns"] == []
    assert client.post("/v1/chat/sessions", json={"x": 1}).status_code == 422


def test_openai_history_resolves_the_follow_up(client: TestClient) -> None:
    first = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": FIRST}]}).json()
    reply = first["choices"][0]["message"]["content"]
    assert "Amara Kessling" in reply
    follow = client.post("/v1/chat/completions", json={"messages": [
        {"role": "user", "content": FIRST}, {"role": "assistant", "content": reply},
        {"role": "user", "content": FOLLOW_UP}]}).json()
    assert follow["citeqa"]["question"] == FOLLOW_UP
    assert follow["citeqa"]["standalone_question"] == "When will Amara Kessling be sworn in?"
    assert follow["citations"]


def test_sessions_are_shared_by_apps_on_one_index(client: TestClient, tmp_path: Path) -> None:
    settings = client.app.state.settings  # type: ignore[attr-defined]
    session = client.post("/v1/chat/sessions").json()["session_id"]
    client.post(f"/v1/chat/sessions/{session}/messages", json={"question": FIRST})
    with TestClient(create_app(settings)) as other:  # another worker process would see the same
        turns = other.get(f"/v1/chat/sessions/{session}").json()["turns"]
    assert [t["question"] for t in turns] == [FIRST]
