"""Schemathesis over the OpenAPI schema: no generated request gets a 5xx, invalid ones get a 4xx, and the write
routes refuse a request without the API key. The app counts the requests that reach it; the last test checks
that the run sent at least `MIN_REQUESTS` of them, so the fuzzing cannot shrink silently."""

import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from tests.api.http_helpers import build_demo_index

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed (the dev extra)")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import ignored_auth, negative_data_rejection  # noqa: E402

pytestmark = pytest.mark.slow

# 500 examples per operation: ~5,700 requests over the 14 operations (the 4 without parameters stop at ~10),
# about 2.5 minutes on 2 cores.
MAX_EXAMPLES = 500
MIN_REQUESTS = 5000


class CountingApp:
    """An ASGI app passing every call on to `app`, counting the HTTP requests."""

    def __init__(self, app) -> None:
        self.app = app
        self.requests = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            self.requests += 1
        await self.app(scope, receive, send)


# The schema is read at collection time (serving /openapi.json needs no components); the index is built and
# the lifespan entered by the fixture below, before the first generated call.
_FOLDER = Path(tempfile.mkdtemp(prefix="citeqa-schema-"))
KEY = "schema-key"
APP = create_app(Settings(index={"dir": _FOLDER / "index"}, embedding={"model": "hash"}, http={"rate_limit": 0},
                          api_key=KEY))
COUNTED = CountingApp(APP)
schema = schemathesis.openapi.from_asgi("/openapi.json", COUNTED)
COUNTED.requests = 0  # the schema download is not a generated request
OPERATIONS = [result.ok().label for result in schema.get_all_operations()]
CASES: Counter[str] = Counter()  # generated cases per operation (ignored_auth's repeated calls not included)


@pytest.fixture(scope="module", autouse=True)
def started_app() -> Iterator[None]:
    build_demo_index(_FOLDER / "index")
    try:
        # Runs the lifespan. Schemathesis (4.x) also runs it around each operation's test, through COUNTED.
        with TestClient(APP):
            yield
    finally:
        shutil.rmtree(_FOLDER, ignore_errors=True)


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_generated_requests(case) -> None:
    CASES[case.operation.label] += 1
    # ignored_auth repeats each call to a route that declares the Bearer scheme without the key and expects 401.
    response = case.call_and_validate(headers={"Authorization": f"Bearer {KEY}"},
                                      checks=[not_a_server_error, negative_data_rejection, ignored_auth])
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/ask", b'{"question": "Who paid \\ud800 for the bridge?"}'),
    ("/v1/chat/completions", b'{"model": "citeqa", "messages": [{"role": "user", "content": "Who \\udfff paid?"}]}'),
    ("/v1/chat/completions", b'{"model": "citeqa", "messages": [{"role": "user", "content": "Who \\udfff paid?"}, '
                             b'{"role": "assistant", "content": "No idea."}, {"role": "user", "content": "Why?"}]}'),
])
def test_a_lone_surrogate_escape_is_a_bad_question_not_a_crash(path: str, body: bytes) -> None:
    """Valid JSON that no schema-driven generator writes: "\\ud800" decodes to a string no encoder accepts."""
    with TestClient(APP, raise_server_exceptions=False) as client:  # its own lifespan
        response = client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_request"
    assert "unpaired surrogate" in response.json()["error"]["message"]


def test_the_run_sent_enough_requests(request: pytest.FixtureRequest) -> None:
    """Runs after the generated tests (pytest keeps the file's order). `pytest -s` prints the figures."""
    selected = [item for item in request.session.items
                if getattr(item, "originalname", "") == test_generated_requests.__name__]
    if len(selected) < len(OPERATIONS):
        pytest.skip(f"{len(selected)} of the {len(OPERATIONS)} operations were selected: the count needs them all")
    assert set(CASES) == set(OPERATIONS), f"operations never called: {sorted(set(OPERATIONS) - set(CASES))}"
    print(f"schemathesis: {COUNTED.requests} requests, {sum(CASES.values())} generated cases over {len(CASES)} "
          f"operations: {dict(CASES)}")
    assert COUNTED.requests >= MIN_REQUESTS, f"{COUNTED.requests} requests sent; cases per operation: {dict(CASES)}"
