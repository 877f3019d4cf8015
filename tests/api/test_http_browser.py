"""The web chat page in real headless Chromium (Debian's), against a real `citeqa serve` with the real model."""

import os
from pathlib import Path

import pytest

from tests.api.http_helpers import build_demo_index, running_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = os.environ.get("CITEQA_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, minilm):
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)")
    index_dir = build_demo_index(tmp_path_factory.mktemp("browser") / "index", minilm)
    with running_server(index_dir, model="sentence-transformers/all-MiniLM-L6-v2") as base:
        yield base


@pytest.fixture
def page(server: str):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the dev extra)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1200, "height": 900})
            tab = context.new_page()
            tab.set_default_timeout(60_000)
            tab.goto(server + "/")
            yield tab
        finally:
            browser.close()


def _ask(page, question: str):
    before = page.locator(".answer").count()
    page.fill("#question", question)
    page.press("#question", "Enter")
    page.wait_for_function("n => document.querySelectorAll('.answer').length > n"
                           " && !document.querySelector('.answer.streaming')", arg=before)
    return page.locator(".answer").last


def test_ask_cite_highlight_reload_and_upload(page, tmp_path: Path) -> None:
    page.wait_for_function("() => document.querySelector('#status').textContent.includes('articles')")
    answer = _ask(page, "How much did the Harbor Bridge repairs cost?")
    assert answer.locator(".text").inner_text().startswith("$")
    assert "[1]" in answer.locator(".text").inner_text()
    source = answer.locator(".source").first
    assert source.locator(".title").inner_text() == "Harbor Bridge reopens after 14 months of repairs"
    quote = source.locator("blockquote mark").inner_text()
    assert "$" in quote

    answer.locator("a.cite").first.click()
    highlight = page.locator("#viewer-text mark#highlight")
    highlight.wait_for()
    assert highlight.inner_text() == quote
    assert page.locator("#viewer-title").inner_text() == "Harbor Bridge reopens after 14 months of repairs"
    box = highlight.bounding_box()
    viewer = page.locator("#viewer-text").bounding_box()
    assert box is not None and viewer is not None
    assert viewer["y"] <= box["y"] <= viewer["y"] + viewer["height"], "the highlight is not scrolled into view"
    page.screenshot(path=str(tmp_path / "answer.png"), full_page=True)

    follow = _ask(page, "How long was it closed?")
    assert not follow.get_attribute("class").endswith("refused")
    assert "14 months" in follow.locator(".text").inner_text()

    page.reload()
    page.wait_for_selector(".turn >> nth=1")
    assert page.locator(".turn").count() == 2
    assert "[1]" in page.locator(".answer .text").first.inner_text()

    page.click("#add summary")
    article = tmp_path / "ferry.txt"
    article.write_text("Saltmere ferry goes hourly\n\nThe Saltmere ferry will run every hour from 1 July, the harbour "
                       "board said on Monday. The new timetable will cost £2.4 million a year.\n", encoding="utf-8")
    page.set_input_files("#upload-file", str(article))
    page.click("#upload-form button[type=submit]")
    page.wait_for_function("() => document.querySelector('#add-result').textContent.startsWith('created')")
    uploaded = _ask(page, "How much will the new Saltmere ferry timetable cost a year?")
    assert "£2.4 million" in uploaded.locator(".text").inner_text()
    assert uploaded.locator(".source .title").first.inner_text() == "Saltmere ferry goes hourly"


def test_refusal_and_error_are_shown_plainly(page) -> None:
    refused = _ask(page, "How much will Tiago Almeida earn per week at Redmarsh?")
    assert "refused" in refused.get_attribute("class")
    assert "do not say" in refused.locator(".text").inner_text()
    page.evaluate("() => { document.querySelector('#question').removeAttribute('maxlength'); }")
    page.fill("#question", "why " * 400)
    page.press("#question", "Enter")
    error = page.locator("#error")
    error.wait_for(state="visible")
    assert "longer than 1000 characters" in error.inner_text()


def test_phone_width_has_no_sideways_scroll(server: str) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the dev extra)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            tab = browser.new_page(viewport={"width": 375, "height": 740})
            tab.set_default_timeout(60_000)
            tab.goto(server + "/")
            assert not tab.locator("#viewer").is_visible()
            answer = _ask(tab, "Who manages Redmarsh United?")
            assert answer.is_visible() and tab.locator("#question").is_visible()
            assert tab.evaluate("() => document.documentElement.scrollWidth") <= 375
            answer.locator("a.cite").first.click()
            tab.locator("#viewer-text mark#highlight").wait_for()
            tab.keyboard.press("Escape")
            assert not tab.locator("#viewer").is_visible()
        finally:
            browser.close()

