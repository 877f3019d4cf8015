"""Every error the HTTP API returns: one JSON shape, `{"error": {"code", "message"}}`, translated once here.

Domain errors (index.errors, qa.errors) map to a status and a code by class, the nearest mapped ancestor
winning, so a new subclass is never a 500; `tests/api/test_http_errors.py` asserts that every class has its
own entry all the same. Client mistakes get a 4xx, the server's own trouble (no index, a busy writer) a 503,
and anything unexpected a 500 whose body says nothing about the code (the traceback goes to the log).

    ApiError               an error raised by the api package itself, with its status and code
"""

import logging
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from index import errors as index_errors
from qa import errors as qa_errors
from qa import gold as qa_gold

log = logging.getLogger("citeqa.http")


@dataclass(frozen=True)
class Mapping:
    """How one error class is answered."""

    status: int
    code: str


ERROR_MAP: dict[type[Exception], Mapping] = {
    index_errors.IndexingError: Mapping(500, "index_error"),
    index_errors.StoreError: Mapping(503, "index_unavailable"),
    index_errors.StoreNotFound: Mapping(503, "index_not_found"),
    index_errors.StoreCorrupt: Mapping(503, "index_corrupt"),
    index_errors.ModelMismatch: Mapping(503, "index_model_mismatch"),
    index_errors.StoreBusy: Mapping(503, "index_busy"),
    index_errors.StoreReadOnly: Mapping(503, "index_read_only"),
    index_errors.DocumentNotFound: Mapping(404, "document_not_found"),
    index_errors.EmbedderUnavailable: Mapping(503, "embedder_unavailable"),
    qa_errors.QAError: Mapping(422, "qa_error"),
    qa_errors.BadQuestion: Mapping(422, "bad_question"),
    qa_errors.GeneratorUnavailable: Mapping(503, "generator_unavailable"),
    qa_errors.ChatError: Mapping(503, "chat_unavailable"),
    qa_errors.UnknownSession: Mapping(404, "session_not_found"),
    qa_errors.ChatStoreCorrupt: Mapping(503, "chat_store_corrupt"),
    qa_gold.BadGoldSet: Mapping(422, "bad_gold_set"),
}

_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 406: "not_acceptable", 409: "conflict", 413: "request_too_large",
                 415: "unsupported_media_type", 422: "invalid_request", 429: "rate_limited",
                 503: "unavailable"}


class ApiError(Exception):
    """An error the api package raises itself (auth, limits, media types)."""

    def __init__(self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def mapping_for(exc: BaseException) -> Mapping | None:
    """The entry of the nearest mapped class in `exc`'s ancestry, or None when no ancestor is mapped."""
    for cls in type(exc).__mro__:
        if cls in ERROR_MAP:
            return ERROR_MAP[cls]
    return None


def error_body(code: str, message: str) -> dict:
    """The JSON body of every error."""
    return {"error": {"code": code, "message": message}}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the contract's JSON shape."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(index_errors.IndexingError)
    @app.exception_handler(qa_errors.QAError)
    async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
        mapping = mapping_for(exc) or Mapping(500, "internal_error")
        if mapping.status >= 500:
            log.warning("%s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        headers = {"Retry-After": "5"} if isinstance(exc, index_errors.StoreBusy) else None
        return error_response(mapping.status, mapping.code, str(exc), headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.__cause__, ApiError):  # FastAPI turns any error while reading the body into a 400
            return await _api_error(request, exc.__cause__)
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        if exc.status_code == 404 and message == "Not Found":
            message = f"no route {request.url.path}"
        return error_response(exc.status_code, code, message, dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "internal error; the server log has the details")


def validation_response(exc: RequestValidationError) -> JSONResponse:
    """Malformed JSON is 400 `malformed_json`; a well-formed body with wrong or missing fields is 422."""
    problems = list(exc.errors())
    if any(p.get("type") == "json_invalid" for p in problems):
        detail = next(p for p in problems if p.get("type") == "json_invalid")
        reason = (detail.get("ctx") or {}).get("error", "invalid JSON")
        return error_response(400, "malformed_json", f"the request body is not valid JSON: {reason}")
    parts = []
    for p in problems[:5]:
        where = ".".join(str(x) for x in p.get("loc", ()) if x != "body") or "body"
        parts.append(f"{where}: {p.get('msg', 'invalid')}")
    return error_response(422, "invalid_request", "; ".join(parts) or "invalid request")
