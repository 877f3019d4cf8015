"""The request time limit: a JSON 504 when no response has started in time; a started stream is never cut."""

import asyncio

from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient

from api.middleware import RequestTimeout


def _app(seconds: float) -> FastAPI:
    app = FastAPI()

    @app.get("/slow")
    async def slow() -> dict:
        await asyncio.sleep(2)
        return {"ok": True}

    @app.get("/fast")
    async def fast() -> dict:
        return {"ok": True}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks():
            for i in range(3):
                await asyncio.sleep(0.2)
                yield f"{i}\n"
        return StreamingResponse(chunks(), media_type="text/plain")

    app.add_middleware(RequestTimeout, seconds=seconds)
    return app


def test_a_slow_request_gets_a_json_504() -> None:
    response = TestClient(_app(0.3)).get("/slow")
    assert response.status_code == 504
    assert response.json() == {"error": {"code": "timeout", "message": "the request took longer than 0.3 s"}}


def test_fast_requests_and_started_streams_pass() -> None:
    client = TestClient(_app(0.3))
    assert client.get("/fast").json() == {"ok": True}
    streamed = client.get("/stream")  # 0.6 s in all, but its response starts at once
    assert streamed.status_code == 200 and streamed.text == "0\n1\n2\n"


def test_zero_means_no_limit() -> None:
    response = TestClient(_app(0)).get("/slow")
    assert response.status_code == 200
