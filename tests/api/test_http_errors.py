"""Every error is mapped, and every bad input gets a clear 4xx in the `{"error": {"code", "message"}}` shape."""

import importlib
import pkgutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import index
import qa
from api.app import create_app
from api.errors import ERROR_MAP, mapping_for
from api.settings import Settings
from index.errors import IndexingError
from qa.errors import QAError
from tests.api.http_helpers import build_demo_index


def _domain_error_classes() -> list[type[Exception]]:
    for package in (index, qa):  # import every module, so a subclass declared outside errors.py is found too
        for module in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
            importlib.import_module(module.name)
    found: list[type[Exception]] = []
    todo: list[type[Exception]] = [IndexingError, QAError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted(set(found), key=lambda c: c.__qualname__)


@pytest.mark.parametrize("cls", _domain_error_classes(), ids=lambda c: c.__name__)
def test_every_domain_error_class_is_mapped(cls: type[Exception]) -> None:
    assert cls in ERROR_MAP, f"{cls.__module__}.{cls.__name__} has no entry in api.errors.ERROR_MAP"
    mapping = ERROR_MAP[cls]
    assert 400 <= mapping.status < 600 and mapping.code.isidentifier()


def test_mapping_uses_the_nearest_ancestor() -> None:
    class NewStoreTrouble(IndexingError):
        pass

    assert mapping_for(NewStoreTrouble("x")) == ERROR_MAP[IndexingError]
    assert mapping_for(ValueError("x")) is None


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):
    index_dir = build_demo_index(tmp_path_factory.mktemp("errors") / "index")
    settings = Settings(index={"dir": index_dir}, embedding={"model": "hash"}, http={"max_body_bytes": 64 * 1024})
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


JSON = {"Content-Type": "application/json"}

BAD_INPUTS = [
    # (name, method, path, kwargs, status, code)
    ("malformed json", "POST", "/v1/ask", {"content": b'{"question": ', "headers": JSON}, 400, "malformed_json"),
    ("json not an object", "POST", "/v1/ask", {"json": ["who?"]}, 422, "invalid_request"),
    ("missing question", "POST", "/v1/ask", {"json": {}}, 422, "invalid_request"),
    ("question wrong type", "POST", "/v1/ask", {"json": {"question": 42}}, 422, "invalid_request"),
    ("unknown field", "POST", "/v1/ask", {"json": {"question": "Who?", "colour": "red"}}, 422, "invalid_request"),
    ("empty question", "POST", "/v1/ask", {"json": {"question": " \n "}}, 422, "bad_question"),
    ("too long question", "POST", "/v1/ask", {"json": {"question": "why " * 300}}, 422, "bad_question"),
    ("NUL in question", "POST", "/v1/ask", {"json": {"question": "Who\u0000 manages it?"}}, 422, "invalid_request"),
    ("control char", "POST", "/v1/ask", {"json": {"question": "Who\u001b[2J?"}}, 422, "invalid_request"),
    ("top_k zero", "POST", "/v1/ask", {"json": {"question": "Who?", "top_k": 0}}, 422, "invalid_request"),
    ("top_k over cap", "POST", "/v1/ask", {"json": {"question": "Who?", "top_k": 10_000}}, 422, "invalid_request"),
    ("bad filter field", "POST", "/v1/ask", {"json": {"question": "Who?", "filters": {"x": 1}}}, 422,
     "invalid_request"),
    ("not json content type", "POST", "/v1/ask", {"content": b"question=who", "headers":
                                                  {"Content-Type": "text/plain"}}, 422, "invalid_request"),
    ("body too large", "POST", "/v1/ask", {"json": {"question": "x" * 70_000}}, 413, "request_too_large"),
    ("wrong method", "GET", "/v1/ask", {}, 405, "method_not_allowed"),
    ("unknown route", "GET", "/v1/nothing", {}, 404, "not_found"),
    ("unknown document", "GET", "/v1/documents/file:nope", {}, 404, "document_not_found"),
    ("delete unknown document", "DELETE", "/v1/documents/file:nope", {}, 404, "document_not_found"),
    ("search without q", "GET", "/v1/search", {}, 422, "invalid_request"),
    ("search blank q", "GET", "/v1/search", {"params": {"q": "  "}}, 422, "invalid_request"),
    ("search k not a number", "GET", "/v1/search", {"params": {"q": "bridge", "k": "many"}}, 422,
     "invalid_request"),
    ("search k too big", "GET", "/v1/search", {"params": {"q": "bridge", "k": 1000}}, 422, "invalid_request"),
    ("search NUL", "GET", "/v1/search", {"params": {"q": "bri\u0000dge"}}, 422, "invalid_request"),
    ("document no text", "POST", "/v1/documents", {"json": {"title": "t"}}, 422, "invalid_request"),
    ("document empty text", "POST", "/v1/documents", {"json": {"text": ""}}, 422, "invalid_request"),
    ("document only invisible text", "POST", "/v1/documents", {"json": {"text": "\u200b\u200b"}}, 422,
     "unreadable_document"),
    ("document bad date", "POST", "/v1/documents", {"json": {"text": "Hi there.", "published": "last week"}}, 422,
     "unreadable_document"),
    ("document unknown field", "POST", "/v1/documents", {"json": {"text": "Hi.", "author": "me"}}, 422,
     "invalid_request"),
    ("document malformed json", "POST", "/v1/documents", {"content": b"{", "headers": JSON}, 400, "malformed_json"),
    ("document wrong content type", "POST", "/v1/documents", {"content": b"hello", "headers":
                                                               {"Content-Type": "text/plain"}}, 415,
     "unsupported_media_type"),
    ("upload unsupported type", "POST", "/v1/documents", {"files": {"file": ("a.exe", b"MZ", "application/x")}},
     415, "unsupported_media_type"),
    ("upload binary", "POST", "/v1/documents", {"files": {"file": ("a.txt", b"\x00\x01\x02", "text/plain")}}, 422,
     "unreadable_document"),
    ("upload not utf-8", "POST", "/v1/documents", {"files": {"file": ("a.txt", b"caf\xe9 au lait", "text/plain")}},
     422, "unreadable_document"),
    ("upload without file field", "POST", "/v1/documents", {"data": {"doc_id": "x"},
                                                            "files": {"other": ("a.txt", b"hi", "text/plain")}},
     422, "invalid_request"),
    ("completions no messages", "POST", "/v1/chat/completions", {"json": {"messages": []}}, 422, "invalid_request"),
    ("completions last not user", "POST", "/v1/chat/completions",
     {"json": {"messages": [{"role": "user", "content": "Who?"}, {"role": "assistant", "content": "No one."}]}},
     422, "invalid_request"),
    ("completions bad role", "POST", "/v1/chat/completions",
     {"json": {"messages": [{"role": "wizard", "content": "Who?"}]}}, 422, "invalid_request"),
    ("completions empty question", "POST", "/v1/chat/completions",
     {"json": {"messages": [{"role": "user", "content": ""}]}}, 422, "bad_question"),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "code"), [case[1:] for case in BAD_INPUTS],
                         ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_gets_a_clear_4xx(client: TestClient, method: str, path: str, kwargs: dict, status: int,
                                    code: str) -> None:
    response = client.request(method, path, **kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code
    assert body["error"]["message"] and "Traceback" not in body["error"]["message"]


def test_chunked_body_over_the_limit_is_413(client: TestClient) -> None:
    def chunks():
        for _ in range(100):
            yield b"x" * 1024

    response = client.post("/v1/ask", content=chunks(), headers=JSON)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_unexpected_error_is_a_bare_500(tmp_path: Path) -> None:
    index_dir = build_demo_index(tmp_path / "index")
    app = create_app(Settings(index={"dir": index_dir}, embedding={"model": "hash"}))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        def broken(*args, **kwargs):
            raise RuntimeError("secret internals")

        app.state.components.store.list_documents = broken
        response = test_client.get("/v1/documents")
    assert response.status_code == 500
    assert response.json() == {"error": {"code": "internal_error",
                                         "message": "internal error; the server log has the details"}}
