"""Files and folders → `Article`s, and a `Skipped` line for everything that cannot be read.

Formats: .txt and .md (optional YAML front matter with title, url, published, doc_id), .html/.htm (main
text and metadata by trafilatura; navigation, boilerplate and text a browser would not show dropped), .json
(one record or a list) and .jsonl (one record a line; `text` required). A file's default doc_id is `file:` +
its path relative to the folder given (or its name), without the extension.
"""

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import frontmatter
import trafilatura
import yaml

from index.articles import Article, check_doc_id, clean_text, normalize_published, optional_str

SUPPORTED_SUFFIXES = (".txt", ".md", ".html", ".htm", ".json", ".jsonl")
MAX_FILE_BYTES = 50 * 1024 * 1024
_TITLE_MAX_CHARS = 150
_LINE_END = re.compile(r"\r\n?|\n")
_RECORD_FIELDS = ("doc_id", "text", "title", "url", "published")


@dataclass(frozen=True)
class Skipped:
    """Something that was not ingested, and why."""

    source: str
    reason: str


class _BadInput(ValueError):
    """A file or record that cannot become an article; the message is the reason shown to the user."""


def iter_files(paths: Iterable[Path], *, exclude: Path | None = None) -> Iterator[tuple[Path, str] | Skipped]:
    """Yield (file, default doc_id stem) for every file under `paths`, recursively and sorted.

    Hidden files and folders, and everything under `exclude` (the index itself), are passed over.
    """
    excluded = exclude.resolve() if exclude is not None else None
    for root in paths:
        if root.is_dir():
            for path in sorted(root.rglob("*")):
                rel = path.relative_to(root)
                if any(part.startswith(".") for part in rel.parts) or not path.is_file():
                    continue
                if excluded is not None and path.resolve().is_relative_to(excluded):
                    continue
                yield path, rel.with_suffix("").as_posix()
        elif root.is_file():
            yield root, root.stem
        elif root.exists():
            yield Skipped(str(root), "not a regular file")
        else:
            yield Skipped(str(root), "no such file or directory")


def load_paths(paths: Iterable[Path], *, exclude: Path | None = None) -> Iterator[Article | Skipped]:
    """Yield an `Article` for every readable document under `paths` and a `Skipped` for the rest."""
    for item in iter_files(paths, exclude=exclude):
        if isinstance(item, Skipped):
            yield item
            continue
        path, stem = item
        yield from load_file(path, default_id=f"file:{stem}")


def load_file(path: Path, *, default_id: str) -> Iterator[Article | Skipped]:
    """Yield the article(s) in one file, or a `Skipped` per file or per bad record."""
    source = str(path)
    if not source.isascii() and any("\udc80" <= ch <= "\udcff" for ch in source):
        # os.fsdecode keeps the bytes of a name that is not UTF-8 as lone surrogates, which cannot be stored.
        readable = source.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        yield Skipped(readable, "the file name is not valid UTF-8; rename the file")
        return
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        expected = ", ".join(SUPPORTED_SUFFIXES)
        yield Skipped(source, f"unsupported file type {suffix or '(none)'!r}; expected one of {expected}")
        return
    try:
        raw = _read_text(path)
        if suffix in (".json", ".jsonl"):
            yield from _load_records(raw, source=source, default_id=default_id, lines=suffix == ".jsonl")
            return
        if suffix in (".html", ".htm"):
            article = _load_html(raw, source=source, default_id=default_id)
        else:
            article = _load_plain(raw, source=source, default_id=default_id, markdown=suffix == ".md")
    except _BadInput as exc:
        yield Skipped(source, str(exc))
        return
    yield article


def _read_text(path: Path) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise _BadInput(f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
        data = path.read_bytes()
    except OSError as exc:
        raise _BadInput(f"cannot read: {exc.strerror or exc}") from exc
    if not data.strip():
        raise _BadInput("empty file")
    if b"\x00" in data[:8192]:
        raise _BadInput("binary file (contains NUL bytes)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _BadInput(f"not UTF-8 text (invalid byte 0x{data[exc.start]:02x} at offset {exc.start})") from exc


def _article(fields: dict[str, Any], *, source: str, default_id: str, metadata: dict[str, Any]) -> Article:
    text = clean_text(fields.get("text") or "")
    if not text:
        raise _BadInput("no text")
    try:
        json.dumps(metadata, ensure_ascii=False, default=str).encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone "\ud800" escape in a JSON value
        raise _BadInput(f"metadata is not valid Unicode (unpaired surrogate at offset {exc.start})") from exc
    try:
        return Article(
            doc_id=check_doc_id(fields["doc_id"]) if fields.get("doc_id") is not None else default_id,
            text=text,
            source=source,
            title=optional_str("title", fields.get("title")),
            url=optional_str("url", fields.get("url")),
            published=normalize_published(fields.get("published")),
            metadata=metadata,
        )
    except ValueError as exc:
        raise _BadInput(str(exc)) from exc


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader refusing aliases: `*a` repeats a node, and repeats of repeats grow exponentially (395 bytes
    of front matter ran out of a 3 GB memory cap when the metadata was written out as JSON)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not accepted",
                                              self.peek_event().start_mark)
        return super().compose_node(parent, index)


class _YAMLFrontMatter(frontmatter.YAMLHandler):
    def load(self, fm: str, **kwargs: object) -> Any:
        return yaml.load(fm, Loader=_NoAliasLoader)  # a SafeLoader


_YAML_FRONT_MATTER = _YAMLFrontMatter()


def _load_plain(raw: str, *, source: str, default_id: str, markdown: bool) -> Article:
    handler = frontmatter.detect_format(raw.strip(), frontmatter.handlers)
    if isinstance(handler, frontmatter.YAMLHandler):
        handler = _YAML_FRONT_MATTER
    try:
        post = frontmatter.loads(raw, handler=handler)
    except yaml.YAMLError as exc:
        raise _BadInput(f"front matter is not valid YAML: {str(exc).splitlines()[0]}") from exc
    except RecursionError as exc:
        raise _BadInput("front matter is nested too deeply") from exc
    except ValueError as exc:  # a first line "{" starts JSON front matter (python-frontmatter's JSONHandler)
        raise _BadInput(f"front matter is not valid JSON: {str(exc).splitlines()[0]}") from exc
    meta = dict(post.metadata)
    body = post.content
    if not isinstance(body, str):
        raise _BadInput("no text")
    if meta.get("title") is None:
        meta["title"] = _title_from_body(body, markdown=markdown)
    fields = {key: meta.pop(key, None) for key in _RECORD_FIELDS if key != "text"}
    fields["text"] = body
    return _article(fields, source=source, default_id=default_id, metadata=_json_safe(meta))


def _title_from_body(body: str, *, markdown: bool) -> str | None:
    """A Markdown `# heading`, or a short first line followed by a blank line, names the article."""
    lines = body.strip().splitlines()
    if not lines:
        return None
    first = lines[0].strip()
    if markdown:
        return first.lstrip("#").strip() or None if first.startswith("# ") else None
    has_blank_after = len(lines) > 2 and not lines[1].strip()
    if has_blank_after and len(first) <= _TITLE_MAX_CHARS and not first.endswith((".", ":", ",")):
        return first
    return None


def _load_html(raw: str, *, source: str, default_id: str) -> Article:
    try:
        doc = None
        tree = trafilatura.load_html(raw)
        if tree is not None:
            _drop_hidden(tree)
            doc = trafilatura.bare_extraction(
                tree, with_metadata=True, include_comments=False, include_tables=False, favor_precision=True
            )
    except Exception as exc:  # trafilatura raises many types on hostile markup
        raise _BadInput(f"cannot parse HTML: {exc}") from exc
    text = getattr(doc, "text", None) if doc is not None else None
    if not text or not text.strip():
        raise _BadInput("no article text found in the HTML")
    title = getattr(doc, "title", None)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if title and lines and lines[0] == title.strip():
        lines = lines[1:]
    fields = {
        "text": "\n\n".join(lines),
        "title": title,
        "url": getattr(doc, "url", None),
        "published": getattr(doc, "date", None),
    }
    sitename = getattr(doc, "sitename", None)
    metadata = {"sitename": sitename} if sitename else {}
    return _article(fields, source=source, default_id=default_id, metadata=metadata)


# Text a browser never shows is where instructions for a model get hidden. trafilatura drops <script>, <style>,
# comments, display:none and visibility:hidden from the article text, but keeps the text of <template> (it strips
# the tag) and of elements with the `hidden` attribute, its fallback reads <noscript> (not shown while scripts
# run), and a title taken from an <h1> keeps a <script> inside it. Only inline styles are read: hiding by a
# stylesheet class is not seen.
_HIDDEN_STYLE = re.compile(
    r"(?:^|;)\s*(?:display\s*:\s*none|visibility\s*:\s*(?:hidden|collapse)"
    r"|opacity\s*:\s*0*\.?0+%?|font-size\s*:\s*0*\.?0+[a-z%]*"
    r"|(?:left|top|text-indent|margin-left)\s*:\s*-\d{4,}(?:\.\d*)?[a-z%]*)\s*(?:!important\s*)?(?:;|$)",
    re.IGNORECASE)

_NEVER_SHOWN = frozenset({"script", "style", "template", "noscript"})


def _drop_hidden(tree: Any) -> None:
    """Remove, with their text, the elements of an lxml tree that a reader cannot see; their tails stay.

    JSON-LD stays: it is metadata (title, date), read by trafilatura like the <meta> tags.
    """
    hidden = [el for el in tree.iter() if isinstance(el.tag, str) and _is_hidden(el)]
    for element in hidden:
        if element.getparent() is not None:
            element.drop_tree()


def _is_hidden(el: Any) -> bool:
    tag = el.tag.lower()
    if tag == "script" and (el.get("type") or "").strip().lower() == "application/ld+json":
        return False
    return (tag in _NEVER_SHOWN or el.get("hidden") is not None or el.get("aria-hidden") == "true"
            or (tag == "dialog" and el.get("open") is None) or bool(_HIDDEN_STYLE.search(el.get("style") or "")))


def _load_records(raw: str, *, source: str, default_id: str, lines: bool) -> Iterator[Article | Skipped]:
    """Records of a .jsonl file are numbered by line, of a .json list by position (from 1)."""
    entries: list[tuple[int | None, Any]] = []
    if lines:
        # Not str.splitlines(): it also breaks at U+2028, U+0085 and others, which JSON strings may hold raw.
        for line_number, line in enumerate(_LINE_END.split(raw), start=1):
            if line.strip():
                entries.append((line_number, _parse_json(line)))
    else:
        data = _parse_json(raw)
        if isinstance(data, _BadInput):
            raise data
        entries = list(enumerate(data, start=1)) if isinstance(data, list) else [(None, data)]
    for number, record in entries:
        where = source if number is None else f"{source}:{number}"
        try:
            if isinstance(record, _BadInput):
                raise record
            record_id = _record_default_id(record, default_id if number is None else f"{default_id}:{number}")
            yield _record_article(record, source=where, default_id=record_id)
        except _BadInput as exc:
            yield Skipped(where, str(exc))


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        return _BadInput(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    except RecursionError:
        return _BadInput("invalid JSON: nested too deeply")


def _record_default_id(record: Any, fallback: str) -> str:
    """A record without doc_id is named by its url when it has one, so re-exports keep their ids."""
    if isinstance(record, dict) and isinstance(record.get("url"), str) and record["url"].strip():
        return "url-" + hashlib.sha1(record["url"].strip().encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return fallback


def _record_article(record: Any, *, source: str, default_id: str) -> Article:
    if not isinstance(record, dict):
        raise _BadInput(f"a record must be a JSON object, got {type(record).__name__}")
    if not isinstance(record.get("text"), str):
        raise _BadInput("record has no string field 'text'")
    fields = {key: record.get(key) for key in _RECORD_FIELDS}
    metadata = {key: value for key, value in record.items() if key not in _RECORD_FIELDS}
    return _article(fields, source=source, default_id=default_id, metadata=metadata)


def _json_safe(meta: dict[str, Any]) -> dict[str, Any]:
    """Front matter may hold YAML dates and other non-JSON values; store them as text."""
    return json.loads(json.dumps(meta, default=str))
