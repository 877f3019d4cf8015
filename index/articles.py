"""The article: what one ingested document is, after loading and cleaning."""

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

# Zero-width, bidi and other format characters (Unicode category Cf, which includes the tag block
# U+E0000–E007F) are invisible to a reader but not to a model: they are how hidden instructions are planted.
# Tabs and newlines stay; every other control character goes.
_KEEP_CONTROLS = {"\n", "\t"}
MAX_DOC_ID_CHARS = 200


def clean_text(raw: str) -> str:
    """Return the text as citeqa stores it: NFC, `\\n` line ends, no invisible or control characters."""
    text = "".join(
        ch
        for ch in raw.replace("\r\n", "\n").replace("\r", "\n")
        if ch in _KEEP_CONTROLS or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn")
    )
    # NFC last: a removed character between a letter and its accent ("e\u200d\u0301") kept them apart.
    return unicodedata.normalize("NFC", text).strip()


def normalize_published(value: Any) -> str | None:
    """Return an ISO 8601 date or datetime string, or raise ValueError naming the value."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"published is not an ISO 8601 date: {value!r}") from None
        return parsed.date().isoformat() if len(text) == 10 else parsed.isoformat()
    raise ValueError(f"published is not an ISO 8601 date: {value!r}")


def check_doc_id(value: Any) -> str:
    """Return a usable document id, or raise ValueError saying what is wrong with it."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"doc_id must be a string, got {type(value).__name__}")
    doc_id = str(value).strip()
    if not doc_id:
        raise ValueError("doc_id is empty")
    if len(doc_id) > MAX_DOC_ID_CHARS:
        raise ValueError(f"doc_id is longer than {MAX_DOC_ID_CHARS} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in doc_id):
        raise ValueError(f"doc_id contains control characters: {doc_id!r}")
    if any(unicodedata.category(ch) == "Cs" for ch in doc_id):  # a lone "\ud800" escape in JSON
        raise ValueError(f"doc_id is not valid Unicode (unpaired surrogate): {doc_id!r}")
    return doc_id


def optional_str(name: str, value: Any) -> str | None:
    """Return a cleaned optional string field, or raise ValueError naming the field."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {type(value).__name__}")
    cleaned = re.sub(r"\s+", " ", clean_text(value))
    return cleaned or None


@dataclass(frozen=True)
class Article:
    """One document, ready to be chunked. Every character offset in the index refers to `text`."""

    doc_id: str
    text: str
    source: str
    title: str | None = None
    url: str | None = None
    published: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def content_hash(self) -> str:
        """A digest of everything that changes the passages or their embeddings."""
        payload = json.dumps(
            [self.text, self.title, self.url, self.published, dict(self.metadata)],
            sort_keys=True,
            ensure_ascii=False,
            default=str,
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def with_title(title: str | None, passage: str) -> str:
    """A passage as the rankers read it: the title gives it the context a reader has. Never stored."""
    return f"{title}\n{passage}" if title else passage
