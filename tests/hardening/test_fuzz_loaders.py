"""Fuzzing the way in: text cleaning, the loaders (records, front matter, HTML), sentence spans, the chunker and
an ingest into a store, with Hypothesis; and the loaders with atheris (coverage-guided, in a subprocess).

Nothing may raise but the documented errors (loaders: none, a bad input is a `Skipped`), and what comes out must
be what the index promises: stored text and titles free of invisible characters, record text round trips,
passage spans inside the stored text and covering it.

To fuzz longer by hand: `.venv/bin/python -c "$(.venv/bin/python -c 'from tests.hardening.test_fuzz_loaders import
ATHERIS_HARNESS; print(ATHERIS_HARNESS)')" -runs=100000` from the repository root.
"""

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import unicodedata
from datetime import date, datetime
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from index.articles import Article, check_doc_id, clean_text, normalize_published
from index.chunking import Chunker
from index.embedding import HashEmbedder
from index.loaders import Skipped, load_file
from index.sentences import SentenceSplitter

ROOT = Path(__file__).resolve().parents[2]
HASH = HashEmbedder()
SPLITTER = SentenceSplitter()
FUNCTION_SCOPED = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]

# Invisible characters (zero-width, bidi, soft hyphen, BOM, Unicode tags), line ends and controls, combining
# marks, and other whitespace: what hidden text and broken offsets are made of.
TAGS = "".join(chr(c) for c in (0xE0001, 0xE0020, 0xE0041, 0xE0061, 0xE007F))
SPECIALS = ("\u200b\u200c\u200d\u2060\ufeff\u00ad\u202e\u2066\u2069\u061c\u180e" + TAGS +
            "\r\n\t \u00a0\u2028\u2029\u3000\u0085\x00\x07\x1b\x7f\u0301\u0308\ufe0f.!?\"'\u201c\u2018")
CHARS = st.one_of(st.characters(codec="utf-8"), st.sampled_from(SPECIALS),  # codec: no lone surrogates
                  st.characters(min_codepoint=0xE0000, max_codepoint=0xE007F))
SURROGATE = st.characters(categories=["Cs"])  # a lone "\ud800" escape in JSON decodes to one of these
ANY_TEXT = st.text(st.one_of(CHARS, SURROGATE), max_size=200)
WORD = st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=10)
PROSE = st.lists(st.one_of(WORD, st.sampled_from([". ", "\n\n", ", ", " ", "\n"]), st.text(CHARS, max_size=3)),
                 max_size=60).map(" ".join)


def is_invisible(ch: str) -> bool:
    """Characters the index never stores: controls but tab and newline, format (Cf, with the tag block),
    surrogates, private use and unassigned."""
    return ch not in "\n\t" and unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn")


def assert_storable(article: Article) -> None:
    """What the store and the answerer rely on for every loaded article."""
    assert article.text and article.text == clean_text(article.text)
    assert not [ch for ch in article.text if is_invisible(ch)]
    for value in (article.title, article.url):
        assert value is None or (value == clean_text(value) and not [ch for ch in value if is_invisible(ch)])
    assert check_doc_id(article.doc_id) == article.doc_id
    if article.published is not None:
        assert normalize_published(article.published) == article.published
    json.dumps(dict(article.metadata), ensure_ascii=False, default=str).encode("utf-8")
    article.source.encode("utf-8")
    article.content_hash()


def load(path: Path, default_id: str = "file:f") -> list[Article | Skipped]:
    items = list(load_file(path, default_id=default_id))
    for item in items:
        assert isinstance(item, Article | Skipped), item
        if isinstance(item, Skipped):
            assert item.reason and item.source
        else:
            assert_storable(item)
    return items


# --- clean_text ------------------------------------------------------------------------------------------------

@settings(max_examples=500, deadline=None)
@given(raw=ANY_TEXT)
@example(raw="e\u200d\u0301")  # NFC before removing the joiner left "e" and its accent apart
def test_clean_text_is_idempotent_nfc_and_leaves_nothing_invisible(raw: str) -> None:
    cleaned = clean_text(raw)
    assert clean_text(cleaned) == cleaned
    assert unicodedata.is_normalized("NFC", cleaned)
    assert cleaned == cleaned.strip() and "\r" not in cleaned
    assert not [ch for ch in cleaned if is_invisible(ch)]
    cleaned.encode("utf-8")


# --- .json and .jsonl records ------------------------------------------------------------------------------------

JSON_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), ANY_TEXT)
JSON_VALUE = st.recursive(JSON_SCALAR, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)), max_leaves=6)
ISO_DATE = st.one_of(st.dates().map(date.isoformat), st.datetimes().map(datetime.isoformat))
RECORD = st.builds(
    lambda extra, fields: {**extra, **fields},
    st.dictionaries(st.text(max_size=8).filter(lambda k: k not in ("doc_id", "text", "title", "url", "published")),
                    JSON_VALUE, max_size=3),
    st.fixed_dictionaries(
        {"text": st.one_of(PROSE, ANY_TEXT, JSON_VALUE)},
        optional={"doc_id": st.one_of(ANY_TEXT, st.integers(), JSON_VALUE), "title": st.one_of(ANY_TEXT, JSON_VALUE),
                  "url": st.one_of(ANY_TEXT, JSON_VALUE), "published": st.one_of(ISO_DATE, ANY_TEXT, JSON_VALUE)}),
)


def expected_article(record: dict, default_id: str) -> dict | None:
    """The fields the loader must produce for a record, or None when it must skip it."""
    if not isinstance(record.get("text"), str) or not clean_text(record["text"]):
        return None
    metadata = {k: v for k, v in record.items() if k not in ("doc_id", "text", "title", "url", "published")}
    try:
        json.dumps(metadata, ensure_ascii=False).encode("utf-8")
        doc_id = check_doc_id(record["doc_id"]) if record.get("doc_id") is not None else default_id
        published = normalize_published(record.get("published"))
    except (ValueError, UnicodeEncodeError):
        return None
    optional = {}
    for name in ("title", "url"):
        value = record.get(name)
        if value is not None and not isinstance(value, str):
            return None
        optional[name] = (re.sub(r"\s+", " ", clean_text(value)) or None) if value is not None else None
    return {"doc_id": doc_id, "text": clean_text(record["text"]), "published": published, **optional,
            "metadata": json.dumps(metadata, sort_keys=True)}


def as_expected(article: Article) -> dict:
    return {"doc_id": article.doc_id, "text": article.text, "published": article.published, "title": article.title,
            "url": article.url, "metadata": json.dumps(dict(article.metadata), sort_keys=True)}


def record_default_id(record: dict, fallback: str) -> str:
    url = record.get("url")
    if isinstance(url, str) and url.strip():
        return "url-" + hashlib.sha1(url.strip().encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return fallback


def json_line(record: dict) -> str:
    """One JSONL line; raw non-ASCII (U+2028, U+0085, …) when it can be written as UTF-8, else escaped."""
    raw = json.dumps(record, ensure_ascii=False)
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(record)
    return raw


@settings(max_examples=300, deadline=None, suppress_health_check=FUNCTION_SCOPED)
@given(lines=st.lists(st.one_of(RECORD, st.text(CHARS, max_size=30)), min_size=1, max_size=5), crlf=st.booleans())
def test_jsonl_records_round_trip_or_are_skipped_with_a_reason(tmp_path: Path, lines: list, crlf: bool) -> None:
    written = [json_line(line) if isinstance(line, dict) else re.sub(r"[\r\n]", " ", line) for line in lines]
    path = tmp_path / "records.jsonl"
    path.write_text(("\r\n" if crlf else "\n").join(written), encoding="utf-8", newline="")
    items = load(path, default_id="file:records")
    if len(items) == 1 and items[0].source == str(path):  # the whole file: empty, or NUL bytes (binary)
        assert isinstance(items[0], Skipped) and items[0].reason in ("empty file", "binary file (contains NUL bytes)")
        return
    by_source = {item.source: item for item in items}
    for number, line in enumerate(lines, start=1):
        if isinstance(line, dict):
            item = by_source[f"{path}:{number}"]
            want = expected_article(line, record_default_id(line, f"file:records:{number}"))
            if want is None:
                assert isinstance(item, Skipped), (line, item)
            else:
                assert isinstance(item, Article), (line, item)
                assert as_expected(item) == want


@settings(max_examples=150, deadline=None, suppress_health_check=FUNCTION_SCOPED)
@given(value=st.one_of(RECORD, st.lists(st.one_of(RECORD, JSON_VALUE), max_size=4), JSON_VALUE))
def test_a_json_file_never_raises(tmp_path: Path, value) -> None:
    path = tmp_path / "records.json"
    path.write_text(json.dumps(value), encoding="utf-8")  # ensure_ascii: lone surrogates become escapes
    load(path)


@pytest.mark.parametrize(("content", "reason"), [
    ('{"text": "Deep.", "m": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
    ('{"text": "Lone surrogate.", "doc_id": "a\\ud800"}', "unpaired surrogate"),
    ('{"text": "Lone surrogate.", "note": "a\\udfff"}', "unpaired surrogate"),
])
def test_hostile_records_are_skipped_not_raised(tmp_path: Path, content: str, reason: str) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(content + "\n", encoding="utf-8")
    (item,) = load(path)
    assert isinstance(item, Skipped) and reason in item.reason


def test_a_jsonl_record_may_hold_line_separators_raw(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"text": "One\u2028record."}\n{"text": "Two\x85records."}\r\n', encoding="utf-8")
    assert [(a.source.rsplit(":", 1)[1], a.text) for a in load(path)] == [("1", "One\u2028record."),
                                                                        ("2", "Tworecords.")]


def test_a_file_name_that_is_not_utf8_is_skipped(tmp_path: Path) -> None:
    name = os.fsdecode(b"caf\xe9.txt")  # Latin-1 bytes: a lone surrogate in the name
    try:
        (tmp_path / name).write_text("Some text.", encoding="utf-8")
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system refuses names that are not UTF-8")
    (item,) = load(tmp_path / name)
    assert isinstance(item, Skipped) and "not valid UTF-8" in item.reason
    item.source.encode("utf-8")


# --- .txt and .md, with and without front matter -----------------------------------------------------------------

@settings(max_examples=200, deadline=None, suppress_health_check=FUNCTION_SCOPED)
@given(body=st.one_of(PROSE, st.text(CHARS, max_size=200)), suffix=st.sampled_from([".txt", ".md"]))
def test_plain_text_round_trips(tmp_path: Path, body: str, suffix: str) -> None:
    body = "x " + body  # a file opening "---", "{" or "+++" has front matter: the next test
    path = tmp_path / f"a{suffix}"
    path.write_text(body, encoding="utf-8", newline="")
    (item,) = load(path)
    if "\x00" in body:
        assert isinstance(item, Skipped) and item.reason == "binary file (contains NUL bytes)"
    else:
        assert isinstance(item, Article), item
        assert item.text == clean_text(body)


VISIBLE = st.text(st.characters(categories=["L", "N", "P", "Zs"]), min_size=1, max_size=40)


@settings(max_examples=150, deadline=None, suppress_health_check=FUNCTION_SCOPED)
@given(title=VISIBLE, url=VISIBLE, published=st.one_of(st.dates(), st.datetimes()), extra=st.dictionaries(
    st.text(st.characters(categories=["L"]), min_size=1, max_size=8).filter(
        lambda k: k not in ("doc_id", "text", "title", "url", "published")),
    st.one_of(st.integers(), VISIBLE, st.lists(st.integers(), max_size=3)), max_size=3), body=PROSE)
def test_front_matter_round_trips(tmp_path: Path, title: str, url: str, published, extra: dict, body: str) -> None:
    assume(clean_text(body) and title.strip() and url.strip() and "\x00" not in body)  # NUL: a binary file
    meta = {**extra, "title": title, "url": url, "published": published}
    path = tmp_path / "a.md"
    path.write_text(f"---\n{yaml.safe_dump(meta, allow_unicode=True)}---\n{body}", encoding="utf-8")
    (item,) = load(path)
    assert isinstance(item, Article), item
    assert item.title == (re.sub(r"\s+", " ", clean_text(title)) or None)
    assert item.url == (re.sub(r"\s+", " ", clean_text(url)) or None)
    assert item.published == normalize_published(published)
    assert dict(item.metadata) == json.loads(json.dumps(extra, default=str))
    assert item.text == clean_text(body)


@settings(max_examples=200, deadline=None, suppress_health_check=FUNCTION_SCOPED)
@given(opening=st.sampled_from(["---\n", "{\n", "+++\n", "--- \n"]), head=st.one_of(
    st.text(CHARS, max_size=120), JSON_VALUE.map(lambda v: yaml.safe_dump(v, allow_unicode=False)),
    JSON_VALUE.map(json.dumps)), closing=st.sampled_from(["\n---\n", "\n}\n", "\n+++\n", "\n"]), body=PROSE)
def test_arbitrary_front_matter_never_raises(tmp_path: Path, opening: str, head: str, closing: str,
                                             body: str) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes((opening + head + closing + "x " + body).encode("utf-8", "surrogatepass"))
    load(path)


def test_yaml_aliases_in_front_matter_are_refused_before_they_expand(tmp_path: Path) -> None:
    lines = ["a: &a [" + ",".join(['"xxxxxxxxxx"'] * 9) + "]"]
    for previous, name in zip("abcdefg", "bcdefgh", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")  # 9**8 strings once expanded
    path = tmp_path / "laughs.md"
    path.write_text("---\n" + "\n".join(lines) + "\n---\nThe body.\n", encoding="utf-8")
    (item,) = load(path)
    assert isinstance(item, Skipped) and "aliases" in item.reason


@pytest.mark.parametrize("head", ["{\nnot json\n}", "{\n" + "[" * 50_000 + "]" * 50_000 + "\n}",
                                  "---\nm: " + "[" * 5_000 + "]" * 5_000 + "\n---"])
def test_broken_front_matter_is_skipped_with_a_reason(tmp_path: Path, head: str) -> None:
    path = tmp_path / "a.txt"
    path.write_text(head + "\nThe body.\n", encoding="utf-8")
    (item,) = load(path)
    assert isinstance(item, Skipped) and item.reason.startswith("front matter")


# --- HTML ------------------------------------------------------------------------------------------------------

HIDDEN_MARK = "zqxhidden"
# Wrappers a browser never shows. Only the inline-style, attribute and element forms: citeqa does not apply
# stylesheets (README: a class hidden by a stylesheet is not seen).
HIDDEN_WRAPPERS = [
    '<p style="display:none">{}</p>', '<div style="color: red; DISPLAY : none !important">{}</div>',
    "<span hidden>{}</span>", '<p hidden="hidden">{}</p>', '<p style="visibility:hidden">{}</p>',
    '<p aria-hidden="true">{}</p>', "<template><p>{}</p></template>", "<!-- {} -->",
    '<script>var s = "{}";</script>', "<style>/* {} */</style>", "<noscript><p>{}</p></noscript>",
    '<p style="opacity:0">{}</p>', '<p style="font-size:0px">{}</p>',
    '<p style="position:absolute;left:-9999px">{}</p>',
    "<dialog><p>{}</p></dialog>", '<input type="hidden" value="{}">',
]
ENTITIES = st.sampled_from(["&amp;", "&#0;", "&#x200B;", "&#xE0041;", "&#xD800;", "&#x110000;", "&nbsp;", "&lt;p&gt;",
                            "&#65279;", "&bogus;", "&#x202E;"])
# Text nodes carry no markup: a stray `"` or `<` could turn the hidden wrapper after it into attribute text.
# Hostile markup is atheris' part (raw bytes).
TEXT_NODE = st.one_of(st.one_of(PROSE, st.text(CHARS, max_size=20)).map(lambda s: re.sub(r'[<>&"]', " ", s)),
                      ENTITIES)
TAGS_VISIBLE = st.sampled_from(["p", "div", "span", "article", "section", "h1", "h2", "em", "a", "li", "ul", "td",
                                "table", "tr", "blockquote", "main", "header", "footer", "nav", "b", "br"])
ATTRS = st.sampled_from(["", ' class="content"', ' id="main"', ' style="color:blue"', ' lang="en"', ' dir="rtl"',
                         ' title="x"', ' style="overflow:hidden"', ' data-x="1"', " hidden=''"])


def hidden(text: str) -> st.SearchStrategy[str]:
    return st.sampled_from(HIDDEN_WRAPPERS).map(lambda w: w.format(f"{HIDDEN_MARK} {text}"))


HTML_NODE = st.recursive(
    TEXT_NODE,
    lambda inner: st.one_of(
        st.builds(lambda t, a, kids: f"<{t}{a}>{''.join(kids)}</{t}>", TAGS_VISIBLE, ATTRS,
                  st.lists(inner, max_size=4)),
        st.builds(lambda t, a, kids: f"<{t}{a}>{''.join(kids)}", TAGS_VISIBLE, ATTRS, st.lists(inner, max_size=3)),
        WORD.flatmap(hidden)),
    max_leaves=25)


@settings(max_examples=200, deadline=None, suppress_health_check=FUNCTION_SCOPED)
@given(title=st.text(CHARS, max_size=30).map(lambda s: s.replace("<", " ").replace("&", " ")),
       nodes=st.lists(HTML_NODE, min_size=1, max_size=6), charset=st.sampled_from(["", '<meta charset="latin-1">',
                                                                                 '<meta charset="utf-16">']))
def test_generated_html_never_raises_and_hidden_text_stays_out(tmp_path: Path, title: str, nodes: list[str],
                                                                 charset: str) -> None:
    html = f"<html><head>{charset}<title>{title}</title></head><body>{''.join(nodes)}</body></html>"
    path = tmp_path / "a.html"
    path.write_text(html, encoding="utf-8")
    for item in load(path):
        if isinstance(item, Article):
            assert HIDDEN_MARK not in item.text
            assert HIDDEN_MARK not in (item.title or "")


def test_visible_html_text_is_kept_while_hidden_text_goes(tmp_path: Path) -> None:
    visible = [f"Paragraph {n} says that the harbour board met for the {n}th time this year to discuss tolls."
               for n in range(1, 7)]
    hidden_parts = [w.format(f"{HIDDEN_MARK} planted words number {i}") for i, w in enumerate(HIDDEN_WRAPPERS)]
    body = "".join(f"<p>{v}</p>{h}" for v, h in zip(visible * 3, hidden_parts, strict=False))
    path = tmp_path / "a.html"
    path.write_text(f"<html><head><title>Harbour board</title></head><body><article>{body}</article></body></html>",
                    encoding="utf-8")
    (item,) = load(path)
    assert isinstance(item, Article)
    assert all(v in item.text for v in visible)
    assert HIDDEN_MARK not in item.text


# --- sentence spans and the chunker ------------------------------------------------------------------------------

def covers(text: str, spans: list[tuple[int, int]]) -> bool:
    mask = [False] * len(text)
    for start, end in spans:
        mask[start:end] = [True] * (end - start)
    return all(mask[i] for i, ch in enumerate(text) if not ch.isspace())


def assert_spans(text: str, spans: list[tuple[int, int]], *, disjoint: bool) -> None:
    previous_start, previous_end = -1, 0
    for start, end in spans:
        assert 0 <= start < end <= len(text)
        piece = text[start:end]
        assert piece == piece.strip(), (piece, text)
        assert start > previous_start
        if disjoint:
            assert start >= previous_end
        previous_start, previous_end = start, end
    assert covers(text, spans), (text, spans)


@settings(max_examples=400, deadline=None)
@given(raw=st.one_of(PROSE, st.text(CHARS, max_size=300)))
def test_sentence_spans_are_disjoint_stripped_and_cover_the_text(raw: str) -> None:
    text = clean_text(raw)
    spans = SPLITTER.spans(text)
    assert_spans(text, spans, disjoint=True)
    for start, end in spans:
        assert not re.search(r"\n[ \t]*\n", text[start:end]), "a sentence never crosses a blank line"


@settings(max_examples=300, deadline=None)
@given(raw=st.one_of(PROSE, st.text(CHARS, max_size=400)), max_tokens=st.integers(1, 40), overlap=st.integers(0, 39))
def test_hash_chunks_lie_inside_and_cover_any_text(raw: str, max_tokens: int, overlap: int) -> None:
    text = clean_text(raw)
    chunker = Chunker(max_tokens=max_tokens, overlap_tokens=min(overlap, max_tokens - 1),
                      token_spans=HASH.token_spans, splitter=SPLITTER)
    chunks = chunker.chunk(text)
    assert_spans(text, [(c.char_start, c.char_end) for c in chunks], disjoint=False)
    for chunk in chunks:
        assert len(HASH.token_spans([text[chunk.char_start:chunk.char_end]])[0]) <= max_tokens


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=FUNCTION_SCOPED)
@given(raw=st.one_of(PROSE, st.text(CHARS, max_size=300)), max_tokens=st.integers(2, 30))
def test_real_tokenizer_chunks_lie_inside_and_cover_any_text(minilm, raw: str, max_tokens: int) -> None:
    """The word-piece tokenizer drops and merges characters (accents, controls, unknown scripts): its offsets
    still cut passages inside the text, of at most `max_tokens` pieces as tokenized in their sentence.

    Re-tokenized alone, a passage may count a few more: a sentence over the limit with no word start near the
    cut is cut inside a word, and the word's rest ("##eb##0" in context) is tokenized afresh ("e", "##b", "##0").
    """
    text = clean_text(raw)
    chunker = Chunker(max_tokens=max_tokens, overlap_tokens=max_tokens // 3, token_spans=minilm.token_spans,
                      splitter=SPLITTER)
    chunks = chunker.chunk(text)
    assert_spans(text, [(c.char_start, c.char_end) for c in chunks], disjoint=False)
    sentences = SPLITTER.spans(text)
    tokens = [(s + a, s + b) for (s, e), spans in zip(sentences, minilm.token_spans([text[s:e] for s, e in sentences]),
                                                      strict=True) for a, b in spans]
    for chunk in chunks:
        assert sum(chunk.char_start <= a and b <= chunk.char_end for a, b in tokens) <= max_tokens


# --- through the store -----------------------------------------------------------------------------------------

@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=FUNCTION_SCOPED)
@given(records=st.lists(RECORD, min_size=1, max_size=4))
def test_ingested_passages_point_inside_the_stored_text(tmp_path_factory, records: list[dict]) -> None:
    from index.store import Store
    from tests.conftest import make_indexer

    folder = tmp_path_factory.mktemp("ingest")
    source = folder / "in.jsonl"
    source.write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")
    loaded: dict[str, Article] = {}
    for item in load(source, default_id="file:in"):
        if isinstance(item, Article):
            loaded.setdefault(item.doc_id, item)  # a repeated doc_id is skipped by the indexer
    report = make_indexer(folder / "ix", HASH, max_tokens=24, overlap_tokens=6).ingest_paths([source])
    store = Store.open(folder / "ix")
    try:
        assert {d.doc_id for d in report.documents} <= set(loaded)
        for doc_id in {d.doc_id for d in report.documents}:
            stored = store.get_document(doc_id)
            assert stored.text == loaded[doc_id].text and stored.title == loaded[doc_id].title
            spans = [(p.char_start, p.char_end) for p in stored.passages]
            assert_spans(stored.text, spans, disjoint=False)
            for hit in store.lexical_search(stored.text[:40], 3) + store.search(HASH.embed([stored.text])[0], 3):
                text = store.get_document(hit.passage.doc_id).text
                assert text[hit.passage.char_start:hit.passage.char_end] == hit.passage.text
    finally:
        store.close()


# --- atheris ----------------------------------------------------------------------------------------------------

SUFFIXES = (".txt", ".md", ".html", ".json", ".jsonl")
ATHERIS_RUNS = 6000
# Coverage feedback from citeqa's loaders and the pure-Python libraries they call (lxml is C: not instrumented).
ATHERIS_HARNESS = """
import sys, atheris
with atheris.instrument_imports(include=["index", "trafilatura", "frontmatter", "yaml", "justext", "htmldate"]):
    from tests.hardening.test_fuzz_loaders import fuzz_one_input
atheris.Setup(sys.argv, fuzz_one_input)
atheris.Fuzz()
"""
_FUZZ_FOLDER: list[Path] = []


def fuzz_one_input(data: bytes) -> None:
    """atheris' target: the first byte picks the format, the rest is the file; then chunk what loaded."""
    if not data:
        return
    if not _FUZZ_FOLDER:  # libFuzzer exits the process itself: the test passes a folder it cleans up
        _FUZZ_FOLDER.append(Path(os.environ.get("CITEQA_FUZZ_DIR") or tempfile.mkdtemp(prefix="citeqa-atheris-")))
    path = _FUZZ_FOLDER[0] / f"input{SUFFIXES[data[0] % len(SUFFIXES)]}"
    path.write_bytes(data[1:])
    chunker = Chunker(max_tokens=16, overlap_tokens=4, token_spans=HASH.token_spans, splitter=SPLITTER)
    for item in load(path):
        if isinstance(item, Article):
            assert_spans(item.text, [(c.char_start, c.char_end) for c in chunker.chunk(item.text)], disjoint=False)


def atheris_command(runs: int, *extra: str) -> list[str]:
    """`python -c HARNESS -runs=N …` (libFuzzer flags), run from the repository root."""
    return [sys.executable, "-c", ATHERIS_HARNESS, f"-runs={runs}", *extra]


@pytest.mark.slow
def test_atheris_finds_no_crash_in_the_loaders(tmp_path: Path) -> None:
    pytest.importorskip("atheris", reason="atheris is not installed (dev extra; wheels only for Linux x86-64, "
                                          "Python 3.11-3.13)")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for path in sorted((ROOT / "examples" / "articles").iterdir()):
        if path.suffix in SUFFIXES:
            (corpus / path.name).write_bytes(bytes([SUFFIXES.index(path.suffix)]) + path.read_bytes())
    command = atheris_command(ATHERIS_RUNS, "-seed=1", "-max_len=4096", "-timeout=60", "-rss_limit_mb=3072",
                              f"-artifact_prefix={tmp_path}/", str(corpus))
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1800,
                            env={**os.environ, "PYTHONHASHSEED": "0", "HF_HUB_OFFLINE": "1",
                                 "CITEQA_FUZZ_DIR": str(tmp_path)})
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert f"Done {ATHERIS_RUNS} runs" in log, log[-2000:]
