"""Every HTTP route through FastAPI's TestClient, over the demo articles indexed with the hash embedder."""

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from tests.api.http_helpers import build_demo_index, parse_sse

QUESTION = "Who manages Redmarsh United?"


def make_settings(index_dir: Path, **overrides) -> Settings:
    return Settings(index={"dir": index_dir}, embedding={"model": "hash"}, **overrides)


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo_index(tmp_path_factory.mktemp("http") / "index")


@pytest.fixture(scope="module")
def client(index_dir: Path):
    with TestClient(create_app(make_settings(index_dir))) as test_client:
        yield test_client


# ----- health ---------------------------------------------------------------------------------------------


def test_healthz_and_readyz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready" and body["model"] == "hash" and body["documents"] >= 8


def test_readyz_is_503_before_start_up(index_dir: Path) -> None:
    app = create_app(make_settings(index_dir))
    with TestClient(app) as started:  # the lifespan runs inside the context only
        assert started.get("/readyz").status_code == 200
    unstarted = TestClient(app)
    response = unstarted.get("/readyz")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "not_ready"


def test_every_response_has_a_request_id(client: TestClient) -> None:
    assert len(client.get("/healthz").headers["x-request-id"]) == 32
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    replaced = client.get("/healthz", headers={"X-Request-ID": "bad id<script>"}).headers["x-request-id"]
    assert len(replaced) == 32 and "<" not in replaced


def test_openapi_and_docs(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    for path in ("/v1/ask", "/v1/search", "/v1/documents", "/v1/documents/{doc_id}", "/v1/chat/completions",
                 "/healthz", "/readyz"):
        assert path in schema["paths"], path
    assert client.get("/docs").status_code == 200


def test_web_page_and_assets_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert '/static/app.js' in page.text and '/static/style.css' in page.text
    texts = [page.text]
    for asset in ("/static/app.js", "/static/style.css"):
        response = client.get(asset)
        assert response.status_code == 200
        texts.append(response.text)
    remote = re.compile(r"""(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//|@import"""
                        r"""|fetch\(\s*["'`]https?:""")
    for text in texts:  # offline: nothing is loaded from another host
        assert not remote.search(text), text[:200]


# ----- ask ------------------------------------------------------------------------------------------------


def test_ask_json_returns_the_answer_object(client: TestClient, index_dir: Path) -> None:
    response = client.post("/v1/ask", json={"question": QUESTION})
    assert response.status_code == 200
    answer = response.json()
    assert answer["question"] == QUESTION
    assert answer["short_answer"] == "Gareth Linwood" and answer["answer"] == "Gareth Linwood [1]."
    assert answer["refused"] is False
    assert set(answer["timings_ms"]) >= {"retrieve", "answer", "total"}
    citation = answer["citations"][0]
    doc = client.get(f"/v1/documents/{citation['doc_id']}").json()
    assert doc["text"][citation["char_start"]:citation["char_end"]] == citation["quote"]


def test_ask_respects_top_k_and_filters(client: TestClient) -> None:
    only = client.post("/v1/ask", json={"question": QUESTION, "top_k": 2,
                                        "filters": {"doc_ids": ["file:harbor-bridge"]}}).json()
    assert all(c["doc_id"] == "file:harbor-bridge" for c in only["citations"])
    assert only["refused"] is True


def test_ask_refusal(client: TestClient) -> None:
    answer = client.post("/v1/ask", json={"question": "How much will Tiago Almeida earn per week at Redmarsh?"}).json()
    assert answer["refused"] is True and answer["short_answer"] is None
    assert all(c["supports"] is False for c in answer["citations"])


def test_ask_streams_sources_deltas_citations_done(client: TestClient) -> None:
    with client.stream("POST", "/v1/ask", json={"question": QUESTION},
                       headers={"Accept": "text/event-stream"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = parse_sse(response.read().decode("utf-8"))
    names = [name for name, _ in events]
    assert names[0] == "sources" and names[-1] == "done"
    first_citation = names.index("citation")
    assert set(names[1:first_citation]) == {"delta"} and set(names[first_citation:-1]) == {"citation"}
    done = json.loads(events[-1][1])
    assert "".join(json.loads(data)["text"] for name, data in events if name == "delta") == done["answer"]
    streamed = [json.loads(data) for name, data in events if name == "citation"]
    assert streamed == done["citations"] and done["short_answer"] == "Gareth Linwood"
    sources = json.loads(events[0][1])["passages"]
    assert sources and {c["passage_id"] for c in streamed} <= {p["passage_id"] for p in sources}
    assert set(done["timings_ms"]) >= {"retrieve", "answer", "total"}


def test_streamed_bad_question_is_a_json_error_not_a_stream(client: TestClient) -> None:
    response = client.post("/v1/ask", json={"question": "   "}, headers={"Accept": "text/event-stream"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "bad_question"


# ----- search ---------------------------------------------------------------------------------------------


def test_search_ranks_passages(client: TestClient) -> None:
    body = client.get("/v1/search", params={"q": "Harbor Bridge repairs cost", "k": 2}).json()
    assert body["query"] == "Harbor Bridge repairs cost"
    assert [r["rank"] for r in body["results"]] == [1, 2]
    top = body["results"][0]
    assert top["doc_id"] == "file:harbor-bridge"
    assert {"score", "passage_id", "char_start", "char_end", "text", "title", "dense_rank", "bm25_rank"} <= set(top)


# ----- documents ------------------------------------------------------------------------------------------


def test_documents_list(client: TestClient) -> None:
    docs = client.get("/v1/documents").json()["documents"]
    ids = [d["doc_id"] for d in docs]
    assert "file:harbor-bridge" in ids and ids == sorted(ids)
    assert {"doc_id", "title", "url", "published", "passages", "chars"} <= set(docs[0])


def test_document_round_trip_json(client: TestClient) -> None:
    text = ("The Saltmere ferry will run every hour from 1 July, the harbour board said on Monday.\n\n"
            "The board's chair, Imogen Castell, said the new timetable would cost £2.4 million a year.")
    created = client.post("/v1/documents", json={"text": text, "title": "Saltmere ferry goes hourly",
                                                 "doc_id": "ferry-1", "published": "2026-06-01"})
    assert created.status_code == 201, created.text
    assert created.json()["doc_id"] == "ferry-1" and created.json()["status"] == "created"
    again = client.post("/v1/documents", json={"text": text, "title": "Saltmere ferry goes hourly",
                                               "doc_id": "ferry-1", "published": "2026-06-01"})
    assert again.status_code == 200 and again.json()["status"] == "unchanged"
    shown = client.get("/v1/documents/ferry-1").json()
    assert shown["text"] == text and shown["published"] == "2026-06-01"
    answer = client.post("/v1/ask", json={"question": "How much will the new Saltmere ferry timetable cost a year?"}
                         ).json()
    assert answer["short_answer"] == "£2.4 million", answer
    citation = answer["citations"][0]
    assert citation["doc_id"] == "ferry-1" and shown["text"][citation["char_start"]:citation["char_end"]] == \
        citation["quote"]
    changed = client.post("/v1/documents", json={"text": text + " It starts on a Tuesday.", "doc_id": "ferry-1"})
    assert changed.status_code == 200 and changed.json()["status"] == "replaced"
    assert client.delete("/v1/documents/ferry-1").json() == {"deleted": "ferry-1"}
    assert client.get("/v1/documents/ferry-1").status_code == 404
    assert client.delete("/v1/documents/ferry-1").status_code == 404


def test_document_upload_multipart_keeps_no_path_from_the_name(client: TestClient) -> None:
    content = b"Gravel pit reopens\n\nThe Osterley gravel pit reopened on Friday under its new owner, Hallam Stone."
    created = client.post("/v1/documents", files={"file": ("../../etc/gravel-pit.txt", content, "text/plain")})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["doc_id"] == "file:gravel-pit" and body["documents"][0]["source"] == "http:upload/gravel-pit.txt"
    shown = client.get("/v1/documents/file:gravel-pit").json()
    assert shown["title"] == "Gravel pit reopens" and shown["text"].endswith("new owner, Hallam Stone.")
    answer = client.post("/v1/ask", json={"question": "Who is the new owner of the Osterley gravel pit?"}).json()
    assert answer["citations"][0]["doc_id"] == "file:gravel-pit"
    assert client.delete("/v1/documents/file:gravel-pit").status_code == 200


def test_document_upload_jsonl_reports_each_record(client: TestClient) -> None:
    lines = (json.dumps({"doc_id": "j-1", "text": "The kiln at Ashby was relit in May."}) + "\n"
             + "{broken\n" + json.dumps({"doc_id": "j-2", "text": "The Ashby mill closed in June."}) + "\n")
    response = client.post("/v1/documents", files={"file": ("batch.jsonl", lines.encode(), "application/x-ndjson")},
                           data={"doc_id": "ignored-for-records"})
    assert response.status_code == 201
    body = response.json()
    assert [d["doc_id"] for d in body["documents"]] == ["j-1", "j-2"]
    assert body["skipped"][0]["source"] == "http:upload/batch.jsonl:2"
    for doc_id in ("j-1", "j-2"):
        assert client.delete(f"/v1/documents/{doc_id}").status_code == 200


# ----- OpenAI-compatible ----------------------------------------------------------------------------------


def test_chat_completions_shape(client: TestClient) -> None:
    response = client.post("/v1/chat/completions", json={
        "model": "citeqa", "temperature": 0.2,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": QUESTION}]})
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    choice = body["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "Gareth Linwood [1]."}
    assert choice["finish_reason"] == "stop"
    assert body["citations"][0]["n"] == 1 and "Gareth Linwood" in body["citations"][0]["quote"]
    assert body["citeqa"]["short_answer"] == "Gareth Linwood"


def test_chat_completions_accepts_content_parts(client: TestClient) -> None:
    body = client.post("/v1/chat/completions", json={
        "messages": [{"role": "user", "content": [{"type": "text", "text": QUESTION}]}]}).json()
    assert body["choices"][0]["message"]["content"] == "Gareth Linwood [1]."


def test_chat_completions_stream(client: TestClient) -> None:
    with client.stream("POST", "/v1/chat/completions", json={
            "stream": True, "messages": [{"role": "user", "content": QUESTION}]}) as response:
        assert response.status_code == 200
        events = parse_sse(response.read().decode("utf-8"))
    assert events[-1] == ("message", "[DONE]")
    chunks = [json.loads(data) for _, data in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert content == "Gareth Linwood [1]."
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and chunks[-1]["citations"][0]["n"] == 1


def test_models_lists_citeqa(client: TestClient) -> None:
    assert client.get("/v1/models").json()["data"][0]["id"] == "citeqa"


def test_openai_client_talks_to_the_endpoint(client: TestClient) -> None:
    openai = pytest.importorskip("openai", reason="the openai package is not installed")
    api = openai.OpenAI(base_url="http://testserver/v1", api_key="unused", http_client=client, max_retries=0)
    completion = api.chat.completions.create(model="citeqa", messages=[{"role": "user", "content": QUESTION}])
    assert completion.choices[0].message.content == "Gareth Linwood [1]."
    assert completion.model_extra["citations"][0]["quote"].startswith("He said he chose Redmarsh")
    stream = api.chat.completions.create(model="citeqa", stream=True,
                                         messages=[{"role": "user", "content": QUESTION}])
    pieces = [chunk.choices[0].delta.content or "" for chunk in stream]
    assert "".join(pieces) == "Gareth Linwood [1]."
    with pytest.raises(openai.UnprocessableEntityError, match="last message"):
        api.chat.completions.create(model="citeqa", messages=[{"role": "assistant", "content": "hi"}])


# ----- auth -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keyed(index_dir: Path):
    with TestClient(create_app(make_settings(index_dir, api_key="s3cret"))) as test_client:
        yield test_client


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/v1/documents", {"text": "x", "doc_id": "auth-test"}),
    ("DELETE", "/v1/documents/file:harbor-bridge", None),
])
@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic s3cret", "s3cret", "Bearer "])
def test_write_routes_need_the_key(keyed: TestClient, method: str, path: str, body: dict | None,
                                   authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = keyed.request(method, path, json=body, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"
    assert keyed.get("/v1/documents/file:harbor-bridge").status_code == 200  # nothing was deleted


def test_the_right_key_opens_write_routes_and_reads_stay_open(keyed: TestClient) -> None:
    auth = {"Authorization": "Bearer s3cret"}
    assert keyed.post("/v1/documents", json={"text": "The key works.", "doc_id": "auth-ok"},
                      headers=auth).status_code == 201
    assert keyed.delete("/v1/documents/auth-ok", headers=auth).status_code == 200
    assert keyed.post("/v1/ask", json={"question": QUESTION}).status_code == 200
    assert keyed.get("/v1/documents").status_code == 200


def test_auth_on_reads_when_asked(index_dir: Path) -> None:
    settings = make_settings(index_dir, api_key="s3cret", http={"auth_reads": True})
    with TestClient(create_app(settings)) as strict:
        assert strict.get("/v1/documents").status_code == 401
        assert strict.post("/v1/ask", json={"question": QUESTION}).status_code == 401
        assert strict.get("/v1/documents", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert strict.get("/healthz").status_code == 200


def test_rate_limit_answers_429_with_retry_after(index_dir: Path) -> None:
    with TestClient(create_app(make_settings(index_dir, http={"rate_limit": 3}))) as limited:
        codes = [limited.get("/v1/documents").status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        last = limited.get("/v1/documents")
        assert last.json()["error"]["code"] == "rate_limited" and int(last.headers["retry-after"]) >= 1
        assert limited.get("/healthz").status_code == 200
