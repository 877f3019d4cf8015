"""ASGI middleware of the HTTP API: request ids and logs, body size, rate and time limits.

Each is a plain ASGI class (not Starlette's BaseHTTPMiddleware), so streamed responses pass through untouched.
"""

import asyncio
import logging
import threading
import time
import uuid
from collections import deque

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import errors

log = logging.getLogger("citeqa.http")

_REQUEST_ID_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


class RequestLog:
    """An `X-Request-ID` on every response (the client's own if it sent a sane one) and one log line per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if 0 < len(given) <= 64 and set(given) <= _REQUEST_ID_OK else uuid.uuid4().hex
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            log.info("request_id=%s method=%s path=%s status=%d ms=%.1f", request_id, scope["method"],
                     scope["path"], status, (time.perf_counter() - started) * 1000)


class BodyLimit:
    """413 for a body over the limit, whether it declares its length or streams it in chunks."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            response = errors.error_response(413, "request_too_large",
                                             f"the request body is larger than {self.max_bytes} bytes")
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise errors.ApiError(413, "request_too_large",
                                          f"the request body is larger than {self.max_bytes} bytes")
            return message

        await self.app(scope, counted, send)


class RateLimit:
    """At most `per_minute` requests per client address to /v1 in any 60 s window (429 with Retry-After)."""

    def __init__(self, app: ASGIApp, *, per_minute: int) -> None:
        self.app = app
        self.per_minute = per_minute
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.per_minute or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("unknown", 0))[0]
        now = time.monotonic()
        with self._lock:
            times = self._seen.setdefault(client, deque())
            while times and now - times[0] >= 60:
                times.popleft()
            wait = 60 - (now - times[0]) if len(times) >= self.per_minute else 0.0
            if not wait:
                times.append(now)
            if len(self._seen) > 10_000:  # forget idle clients so the table cannot grow without bound
                for key in [k for k, v in self._seen.items() if not v or now - v[-1] >= 60]:
                    del self._seen[key]
        if wait:
            response = errors.error_response(429, "rate_limited", f"more than {self.per_minute} requests a minute",
                                             headers={"Retry-After": str(max(1, round(wait)))})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class RequestTimeout:
    """504 when a request has not started its response within `seconds` (0 = no limit).

    The worker thread of a timed-out request runs on to its end (Python cannot stop a thread), but the client
    gets a clear error instead of waiting. A response that has started (an SSE stream) is never cut.
    """

    def __init__(self, app: ASGIApp, *, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.seconds:
            await self.app(scope, receive, send)
            return
        started = asyncio.Event()

        async def send_marking(message: Message) -> None:
            if message["type"] == "http.response.start":
                started.set()
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, send_marking))
        waiter = asyncio.ensure_future(started.wait())
        done, _ = await asyncio.wait({task, waiter}, timeout=self.seconds, return_when=asyncio.FIRST_COMPLETED)
        if not done:
            task.cancel()
            waiter.cancel()
            response = errors.error_response(504, "timeout", f"the request took longer than {self.seconds:g} s")
            await response(scope, receive, send)
            return
        waiter.cancel()
        await task
