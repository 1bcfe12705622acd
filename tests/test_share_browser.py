"""Share links as people use them: Debian's chromium driven by Playwright against `python app.py`.

Draw, search, press Share; open the link in a fresh browser context (no cookies, no session) and see the
drawing on the canvas, the same best guess, query and gallery, without pressing anything. A link the
server does not have (or no longer has) opens the normal page with one plain sentence.
"""

from __future__ import annotations

import io
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from PIL import Image

from outlyne_dev.app_server import AppServer, shared_app_server

from .test_app_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, WAIT_MS, _draw_house

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Locator, Page

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

pytestmark = pytest.mark.browser

SHARE_LINK = re.compile(r"^http://127\.0\.0\.1:\d+/\?share=([A-Za-z0-9_-]{22})$")
UNAVAILABLE = "This shared drawing is not available"


@pytest.fixture(scope="session")
def app(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> AppServer:
    return shared_app_server(tmp_path_factory.getbasetemp() / "app-server", tiny_checkpoint)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), "Debian chromium is missing at /usr/bin/chromium: apt-get install chromium"
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def new_context(browser: Browser) -> Iterator[callable]:
    """Fresh contexts (a stranger's browser: no cookies, no storage), all closed after the test."""
    contexts: list[BrowserContext] = []

    def make() -> Page:
        context = browser.new_context(viewport={"width": 1280, "height": 1000}, locale="en-US")
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        return page

    yield make
    for context in contexts:
        context.close()


def _open(page: Page, url: str) -> None:
    page.goto(url)
    expect(page.locator("#outlyne-sketch canvas").first).to_be_visible()


def _ink_pixels(page: Page) -> int:
    """Dark pixels on the paper, from a screenshot of the editor (its WebGL canvas cannot be read back)."""
    png = page.locator("#outlyne-sketch canvas").first.screenshot()
    gray = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
    return int((gray < 100).sum())


def _wait_for_ink(page: Page, more_than: int) -> int:
    """The editor draws its background a moment after the page has it: wait for ink, bounded."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while (ink := _ink_pixels(page)) <= more_than and time.monotonic() < deadline:
        page.wait_for_timeout(250)
    return ink


def _expect_brush_selected(page: Page) -> None:
    brush = page.locator('#outlyne-sketch button[aria-label="Brush"]')
    expect(brush).to_have_class(re.compile(r"\bhighlight\b"))


def _top_concept(page: Page) -> str:
    top = page.locator('#outlyne-concepts [data-testid="label-output-value"]')
    expect(top).not_to_be_empty()
    return top.inner_text()


def _tab(page: Page, name: str) -> Locator:
    return page.get_by_role("tab", name=name, exact=True)


def _query(page: Page) -> str:
    """The Query tab's text (its textbox is only in the page while its tab is open)."""
    _tab(page, "Query").click()
    field = page.locator("#outlyne-query textarea")
    expect(field).to_be_visible()
    return field.input_value()


def _share_field(page: Page) -> Locator:
    return page.locator("#outlyne-share-url textarea, #outlyne-share-url input").first


def _share(page: Page) -> str:
    page.locator("#outlyne-share").click()
    expect(_share_field(page)).to_have_value(SHARE_LINK)
    return _share_field(page).input_value()


def _shares_folder(app: AppServer) -> Path:
    return Path(app.env["OUTLYNE_CACHE_DIR"]) / "shares"


def test_a_shared_link_reopens_the_drawing_guess_query_and_gallery(app: AppServer, new_context) -> None:
    page = new_context()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=app.url.rstrip("/"))
    _open(page, app.url)
    empty_paper = _ink_pixels(page)
    _draw_house(page)
    best_guess = _top_concept(page)
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("#outlyne-status")).to_contain_text("ordered by similarity")
    shown = page.locator("#outlyne-gallery img").count()
    assert shown >= 4
    query = _query(page)
    assert query

    link = _share(page)
    # Copied as well (127.0.0.1 is a secure context and the click was a moment ago).
    assert page.evaluate("navigator.clipboard.readText()") == link
    share_id = SHARE_LINK.match(link).group(1)
    assert (_shares_folder(app) / f"{share_id}.json").is_file()

    visitor = new_context()
    _open(visitor, link)
    # Without pressing anything: the Results tab forward with the same gallery...
    expect(_tab(visitor, "Results")).to_have_attribute("aria-selected", "true")
    expect(visitor.locator("#outlyne-gallery img")).to_have_count(shown)
    expect(visitor.locator("#outlyne-status")).to_contain_text("Shared run")
    expect(_share_field(visitor)).to_have_value(link)
    # ...the drawing on the canvas, with the brush selected: ready to draw on further...
    assert _wait_for_ink(visitor, more_than=empty_paper + 200) > empty_paper + 200
    _expect_brush_selected(visitor)
    ARTIFACTS.mkdir(exist_ok=True)
    visitor.screenshot(path=str(ARTIFACTS / "share-opened.png"), full_page=True)
    # ...and the same query and best guess.
    assert _query(visitor) == query
    _tab(visitor, "Concept scores").click()
    assert _top_concept(visitor) == best_guess


def test_an_unknown_share_id_opens_the_normal_page_with_one_sentence(app: AppServer, new_context) -> None:
    page = new_context()
    _open(page, f"{app.url}?share={'A' * 22}")
    expect(page.get_by_text(UNAVAILABLE).first).to_be_visible()
    # The normal page: an empty canvas, ready to draw, and nothing else restored.
    _expect_brush_selected(page)
    expect(page.locator("#outlyne-gallery img")).to_have_count(0)
    _draw_house(page)
    assert _top_concept(page)


def test_an_expired_share_opens_the_normal_page_with_one_sentence(app: AppServer, new_context) -> None:
    page = new_context()
    _open(page, app.url)
    _draw_house(page)
    _top_concept(page)  # live scores in: there is a run to share, no search needed
    link = _share(page)
    share_file = _shares_folder(app) / f"{SHARE_LINK.match(link).group(1)}.json"
    long_ago = time.time() - 31 * 86400  # older than the default 30 days
    os.utime(share_file, (long_ago, long_ago))

    visitor = new_context()
    _open(visitor, link)
    expect(visitor.get_by_text(UNAVAILABLE).first).to_be_visible()
    expect(visitor.locator('#outlyne-concepts [data-testid="label-output-value"]')).to_have_count(0)
    assert not share_file.exists()  # an expired share is removed when someone asks for it


def test_share_before_drawing_says_draw_something_first(app: AppServer, new_context) -> None:
    page = new_context()
    _open(page, app.url)
    page.locator("#outlyne-share").click()
    expect(page.get_by_text("Draw something first").first).to_be_visible()


def test_drawing_over_a_shared_sketch_scores_it_again(app: AppServer, new_context) -> None:
    page = new_context()
    _open(page, app.url)
    _draw_house(page)
    _top_concept(page)
    link = _share(page)

    visitor = new_context()
    _open(visitor, link)
    ink = _wait_for_ink(visitor, more_than=200)
    expect(visitor.locator("#outlyne-timings")).not_to_contain_text("total")  # restored, not computed
    _draw_house(visitor)  # more strokes over the shared drawing
    assert _wait_for_ink(visitor, more_than=ink) > ink
    # Live scoring ran on the shared drawing plus the new strokes (its timings line appears).
    expect(visitor.locator("#outlyne-timings")).to_contain_text("total")
