"""Against a real `citeqa serve` (uvicorn) on loopback: streaming, the openai client, several workers."""

import json
from pathlib import Path

import httpx
import pytest

from tests.api.http_helpers import build_demo_index, parse_sse, running_server

pytestmark = pytest.mark.slow

QUESTION = "Who manages Redmarsh United?"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    index_dir = build_demo_index(tmp_path_factory.mktemp("server") / "index")
    with running_server(index_dir, env={"CITEQA_API_KEY": "k3y"}) as base:
        yield base


def test_sse_arrives_as_events_over_a_real_socket(server: str) -> None:
    with httpx.stream("POST", server + "/v1/ask", json={"question": QUESTION},
                      headers={"Accept": "text/event-stream"}, timeout=60) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-request-id"]
        body = "".join(response.iter_text())
    events = parse_sse(body)
    names = [n for n, _ in events]
    assert names[0] == "sources" and names[-1] == "done"
    assert names.index("citation") > max(i for i, n in enumerate(names) if n == "delta")
    done = json.loads(events[-1][1])
    assert "".join(json.loads(d)["text"] for n, d in events if n == "delta") == done["answer"] == "Gareth Linwood [1]."


def test_openai_client_against_the_server(server: str) -> None:
    openai = pytest.importorskip("openai", reason="the openai package is not installed")
    client = openai.OpenAI(base_url=server + "/v1", api_key="k3y", max_retries=0, timeout=60)
    completion = client.chat.completions.create(model="citeqa", messages=[{"role": "user", "content": QUESTION}])
    assert completion.choices[0].message.content == "Gareth Linwood [1]."
    assert completion.model_extra["citations"][0]["doc_id"] == "file:football-transfer"
    chunks = list(client.chat.completions.create(model="citeqa", stream=True,
                                                 messages=[{"role": "user", "content": QUESTION}]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Gareth Linwood [1]."
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert [m.id for m in client.models.list()] == ["citeqa"]


def test_api_key_over_the_wire(server: str) -> None:
    doc = {"text": "The Brackenport tram depot will close in March.", "doc_id": "wire-key"}
    assert httpx.post(server + "/v1/documents", json=doc).status_code == 401
    assert httpx.post(server + "/v1/documents", json=doc, headers={"Authorization": "Bearer nope"}).status_code == 401
    ok = httpx.post(server + "/v1/documents", json=doc, headers={"Authorization": "Bearer k3y"}, timeout=60)
    assert ok.status_code == 201
    assert httpx.delete(server + "/v1/documents/wire-key", headers={"Authorization": "Bearer k3y"}).status_code == 200


def test_two_workers_share_one_index_and_see_each_others_commits(tmp_path: Path) -> None:
    index_dir = build_demo_index(tmp_path / "index")
    with running_server(index_dir, workers=2) as base, httpx.Client(base_url=base, timeout=60) as client:
        text = "The Quarry Lane library will open on Sundays from October, the council said."
        assert client.post("/v1/documents", json={"text": text, "doc_id": "library"}).status_code == 201
        # New connections are spread over the workers by the kernel; every one must see the new document.
        workers: set[int] = set()
        for _ in range(40):
            with httpx.Client(base_url=base, timeout=60) as fresh:
                workers.add(fresh.get("/readyz").json()["worker"])
                assert fresh.get("/v1/documents/library").json()["text"] == text
            if len(workers) == 2:
                break
        assert len(workers) == 2, "every connection went to one worker"
        assert client.delete("/v1/documents/library").status_code == 200
        for _ in range(12):
            with httpx.Client(base_url=base, timeout=60) as fresh:
                assert fresh.get("/v1/documents/library").status_code == 404
