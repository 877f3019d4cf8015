"""What every route depends on: the components built once at start-up, and the API-key check."""

import hmac
import unicodedata
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from api.errors import ApiError
from api.settings import Settings
from index.embedding import Embedder
from index.ingest import Indexer
from index.store import Store
from qa.chat import ChatPipeline
from qa.pipeline import QAPipeline
from qa.retriever import Retriever


@dataclass(frozen=True)
class Components:
    """Built once in the app's lifespan and shared by every request (all are safe to share across threads)."""

    settings: Settings
    embedder: Embedder
    store: Store
    retriever: Retriever
    pipeline: QAPipeline
    indexer: Indexer
    chat: ChatPipeline


def components(request: Request) -> Components:
    found: Components | None = getattr(request.app.state, "components", None)
    if found is None:
        raise ApiError(503, "not_ready", "the server is still starting")
    return found


def _check_key(request: Request) -> None:
    settings: Settings = request.app.state.settings
    if settings.api_key is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if not header:
        raise ApiError(401, "unauthorized", "this route needs 'Authorization: Bearer <key>'",
                       headers={"WWW-Authenticate": "Bearer"})
    expected = settings.api_key.get_secret_value().encode("utf-8")
    # compare_digest takes time independent of where the strings differ, so the key cannot be guessed by timing.
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode("utf-8"), expected):
        raise ApiError(401, "unauthorized", "the API key is wrong", headers={"WWW-Authenticate": "Bearer"})


# Declared on the write routes so OpenAPI (and /docs) shows the Bearer scheme; the check itself is ours.
_BEARER = HTTPBearer(auto_error=False, description="CITEQA_API_KEY, when the server sets one")


def require_write(request: Request, _: Annotated[object, Depends(_BEARER)] = None) -> None:
    """Write routes need the key whenever CITEQA_API_KEY is set."""
    _check_key(request)


def require_read(request: Request) -> None:
    """Read routes need the key only when CITEQA_HTTP__AUTH_READS is true."""
    if request.app.state.settings.http.auth_reads:
        _check_key(request)


def check_text(name: str, value: str) -> str:
    """Reject NUL and other control characters (tabs and newlines pass): they are never part of a question;
    and lone surrogates (a JSON "\\ud800" escape), which are no text and cannot be stored or encoded."""
    if any(unicodedata.category(ch) == "Cc" and ch not in "\t\n\r" for ch in value):
        raise ApiError(422, "invalid_request", f"{name} contains control characters")
    if any("\ud800" <= ch <= "\udfff" for ch in value):
        raise ApiError(422, "invalid_request", f"{name} is not valid Unicode (unpaired surrogate)")
    return value


def check_top_k(settings: Settings, value: int | None, *, name: str = "top_k") -> int | None:
    if value is not None and not 1 <= value <= settings.http.max_top_k:
        raise ApiError(422, "invalid_request", f"{name} must be between 1 and {settings.http.max_top_k}, got {value}")
    return value
