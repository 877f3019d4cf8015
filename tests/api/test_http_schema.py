"""Schemathesis over the OpenAPI schema: no generated request gets a 5xx, invalid ones get a 4xx, and the write
routes refuse a request without the API key."""

import shutil
import tempfile
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

# The schema is read at collection time (serving /openapi.json needs no components); the index is built and
# the lifespan entered by the fixture below, before the first generated call.
_FOLDER = Path(tempfile.mkdtemp(prefix="citeqa-schema-"))
KEY = "schema-key"
APP = create_app(Settings(index={"dir": _FOLDER / "index"}, embedding={"model": "hash"}, http={"rate_limit": 0},
                          api_key=KEY))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def started_app():
    build_demo_index(_FOLDER / "index")
    try:
        with TestClient(APP):  # runs the lifespan: the components stay built for every generated call
            yield
    finally:
        shutil.rmtree(_FOLDER, ignore_errors=True)


@schema.parametrize()
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
def test_generated_requests(case) -> None:
    # ignored_auth repeats each call to a route that declares the Bearer scheme without the key and expects 401.
    response = case.call_and_validate(headers={"Authorization": f"Bearer {KEY}"},
                                      checks=[not_a_server_error, negative_data_rejection, ignored_auth])
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
