"""/v1/documents: add an article (JSON or a file upload), list, show and delete them.

An upload goes through the same loaders as `citeqa ingest`, so a file means the same thing over HTTP as on
the command line. Its name is reduced to a safe base name used only for the default doc_id and its type;
it never becomes a path: the bytes are written to a fresh temporary folder under a fixed name.
"""

import hashlib
import json
import re
import tempfile
from dataclasses import asdict, replace
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from api.errors import ApiError
from api.routes.deps import Components, components, require_read, require_write
from index.articles import Article
from index.ingest import IngestReport
from index.loaders import SUPPORTED_SUFFIXES, Skipped, load_file

router = APIRouter(tags=["documents"])

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class DocumentIn(BaseModel):
    """One article as JSON; `text` is required. Other keys go in `metadata`."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [
        {"text": "The Saltmere ferry will run hourly from 1 July, the harbour board said.",
         "title": "Saltmere ferry goes hourly", "url": "https://example.org/ferry", "published": "2026-06-01"}]})

    text: str = Field(min_length=1)
    title: str | None = None
    url: str | None = None
    published: str | None = Field(default=None, description="ISO 8601 date or datetime")
    doc_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


_UPLOAD_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": DocumentIn.model_json_schema()},
            "multipart/form-data": {"schema": {
                "type": "object", "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary",
                                        "description": "a .txt .md .html .htm .json or .jsonl file"},
                               "doc_id": {"type": "string", "description": "id for a single-article file"}}}},
        },
    }
}


@router.post("/v1/documents", dependencies=[Depends(require_write)], openapi_extra=_UPLOAD_SCHEMA,
             status_code=201,
             responses={200: {"description": "unchanged or replaced"}, 201: {"description": "created"}})
async def add_document(request: Request, response: Response, c: Annotated[Components, Depends(components)]) -> dict:
    """Index an article; `status` says whether it was created, replaced or left unchanged."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        doc = _parse_json(await request.body())
        record = {key: value for key, value in doc.model_dump().items() if key != "metadata" and value is not None}
        record.update({k: v for k, v in doc.metadata.items() if k not in record})
        default_id = "doc-" + hashlib.sha256(doc.text.encode("utf-8")).hexdigest()[:12]
        data, suffix, source = json.dumps(record, ensure_ascii=False).encode("utf-8"), ".json", "http:upload"
    elif content_type == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=4, max_part_size=c.settings.http.max_body_bytes)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiError(422, "invalid_request", "file: a multipart field 'file' with the article is required")
        name = safe_name(upload.filename or "upload")
        suffix = Path(name).suffix.lower()
        if suffix not in SUPPORTED_SUFFIXES:
            expected = ", ".join(SUPPORTED_SUFFIXES)
            raise ApiError(415, "unsupported_media_type",
                           f"unsupported file type {suffix or '(none)'!r}; expected one of {expected}")
        data = await upload.read()
        given_id = form.get("doc_id")
        default_id = given_id if isinstance(given_id, str) and given_id.strip() else f"file:{Path(name).stem}"
        source = f"http:upload/{name}"
    else:
        raise ApiError(415, "unsupported_media_type",
                       "send the article as application/json or as a multipart/form-data file")
    report = await run_in_threadpool(_ingest, c, data, suffix, default_id, source)
    if not report.documents:
        reasons = "; ".join(s.reason for s in report.skipped) or "nothing to index"
        raise ApiError(422, "unreadable_document", f"nothing could be indexed: {reasons}")
    first = report.documents[0]
    if not any(d.status == "created" for d in report.documents):
        response.status_code = 200
    return {"doc_id": first.doc_id, "passages": first.passages, "status": first.status,
            "documents": [asdict(d) for d in report.documents], "skipped": [asdict(s) for s in report.skipped]}


def safe_name(filename: str) -> str:
    """The base name of an uploaded file, reduced to letters, digits, `.`, `_` and `-`."""
    base = re.split(r"[\\/]", filename)[-1]
    cleaned = _SAFE_NAME.sub("-", base).strip(".-") or "upload"
    return cleaned[-100:]


def _parse_json(raw: bytes) -> DocumentIn:
    try:
        return DocumentIn.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from exc


def _ingest(c: Components, data: bytes, suffix: str, default_id: str, source: str) -> IngestReport:
    with tempfile.TemporaryDirectory(prefix="citeqa-upload-") as folder:
        path = Path(folder) / f"upload{suffix}"
        path.write_bytes(data)
        items: list[Article | Skipped] = []
        for item in load_file(path, default_id=default_id):
            if isinstance(item, Skipped):
                items.append(Skipped(item.source.replace(str(path), source, 1), item.reason))
            else:
                items.append(replace(item, source=item.source.replace(str(path), source, 1)))
    return c.indexer.ingest(items)


@router.get("/v1/documents", dependencies=[Depends(require_read)])
async def list_documents(c: Annotated[Components, Depends(components)]) -> dict:
    """Every indexed document with its title, url, date, passage and character counts."""
    docs = await run_in_threadpool(c.store.list_documents)
    return {"documents": [{"doc_id": d.doc_id, "title": d.title, "url": d.url, "published": d.published,
                           "passages": d.passages, "chars": d.chars, "source": d.source} for d in docs]}


@router.get("/v1/documents/{doc_id:path}", dependencies=[Depends(require_read)])
async def get_document(doc_id: str, c: Annotated[Components, Depends(components)]) -> dict:
    """One document: its exact text (every offset refers to it) and each passage's span."""
    doc = await run_in_threadpool(c.store.get_document, doc_id)
    return {"doc_id": doc.doc_id, "title": doc.title, "url": doc.url, "published": doc.published,
            "source": doc.source, "metadata": dict(doc.metadata), "text": doc.text,
            "passages": [asdict(p) for p in doc.passages]}


@router.delete("/v1/documents/{doc_id:path}", dependencies=[Depends(require_write)])
async def delete_document(doc_id: str, c: Annotated[Components, Depends(components)]) -> dict:
    """Remove a document and its passages."""
    await run_in_threadpool(c.store.delete, doc_id)
    return {"deleted": doc_id}
