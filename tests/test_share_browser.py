"""Share links as people use them: Debian's chromium driven by Playwright against `python app.py`.

Draw, search, press Share; open the link in a fresh browser context (no cookies, no session) and see the
drawing on the paper, the same best guess, query and gallery, without pressing anything, and draw on.
A link the server does not have (or no longer has) opens the normal page with one plain sentence.
Every wait is on the page's state, never on time.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import playwright.sync_api as playwright_api  # a missing Playwright must fail, not skip
import pytest

from outlyne_dev.app_server import AppServer
from outlyne_dev.browser import PAPER_DRAWABLE_JS

from .test_app_browser import (
    ARTIFACTS,
    WAIT_MS,
    _best_guess,
    _draw_house,
    _settle,
    _stroke,
    _tab,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Locator, Page

expect = playwright_api.expect

pytestmark = pytest.mark.browser

SHARE_LINK = re.compile(r"^http://127\.0\.0\.1:\d+/\?share=([A-Za-z0-9_-]{22})$")
UNAVAILABLE = "This shared drawing is not available"

# Dark pixels on the paper (the canvas is a plain 2D canvas: its pixels can be read back).
INK_JS = """() => {
  const canvas = document.querySelector('#outlyne-sketch canvas');
  const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let ink = 0;
  for (let i = 0; i < pixels.length; i += 4) if (pixels[i] < 100) ink += 1;
  return ink;
}"""


@pytest.fixture
def new_page(browser: Browser) -> Iterator[Callable[[str], Page]]:
    """Pages in fresh contexts (a stranger's browser: no cookies, no storage), all closed after the test."""
    contexts: list[BrowserContext] = []

    def open_page(url: str) -> Page:
        context = browser.new_context(viewport={"width": 1280, "height": 1000}, locale="en-US")
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.goto(url)
        expect(page.locator("#outlyne-sketch canvas[data-ready=true]")).to_be_visible()  # its script ran
        page.wait_for_function(PAPER_DRAWABLE_JS)  # and nothing covers it
        return page

    yield open_page
    for context in contexts:
        context.close()


def _ink(page: Page) -> int:
    return int(page.evaluate(INK_JS))


def _wait_for_ink(page: Page, more_than: int) -> int:
    page.wait_for_function(f"() => ({INK_JS})() > {more_than}")
    return _ink(page)


def _expect_pen_selected(page: Page) -> None:
    expect(page.locator("#outlyne-sketch [data-tool=pen]")).to_have_class(re.compile(r"\bactive\b"))


def _query(page: Page) -> str:
    """The Query tab's text (its box is only in the page while its tab is open)."""
    _tab(page, "Query").click()
    box = page.locator("#outlyne-query input")
    expect(box).to_be_visible()
    return box.input_value()


def _share_field(page: Page) -> Locator:
    return page.locator("#outlyne-share-url input, #outlyne-share-url textarea").first


def _share(page: Page, replacing: str | None = None) -> str:
    """Press Share and return the new link (`replacing`: the link the field shows before, e.g. the one a
    shared page was opened with)."""
    page.locator("#outlyne-share").click()
    if replacing is not None:
        expect(_share_field(page)).not_to_have_value(replacing)
    expect(_share_field(page)).to_have_value(SHARE_LINK)
    return _share_field(page).input_value()


def _shares_folder(app: AppServer) -> Path:
    return Path(app.env["OUTLYNE_CACHE_DIR"]) / "shares"


def test_a_shared_link_reopens_the_drawing_and_gallery(
    app: AppServer, new_page: Callable[[str], Page]
) -> None:
    page = new_page(app.url)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=app.url.rstrip("/"))
    _draw_house(page)
    _settle(page)
    page.locator("#outlyne-search").click()
    expect(page.locator("#outlyne-status")).to_contain_text("ordered by similarity")
    shown = page.locator("#outlyne-gallery img").count()
    assert shown >= 4
    assert _query(page)

    link = _share(page)
    # Copied as well (127.0.0.1 is a secure context and the click was a moment ago).
    assert page.evaluate("navigator.clipboard.readText()") == link
    share_id = SHARE_LINK.match(link).group(1)
    assert (_shares_folder(app) / f"{share_id}.json").is_file()

    visitor = new_page(link)
    # Without pressing anything: the drawing on the paper as its background, the pen ready...
    expect(visitor.locator("#outlyne-sketch canvas[data-background=true]")).to_be_attached()
    assert _ink(visitor) > 200
    _expect_pen_selected(visitor)
    # ...the Results tab forward with the same gallery (scores and query: the test below).
    expect(_tab(visitor, "Results")).to_have_attribute("aria-selected", "true")
    expect(visitor.locator("#outlyne-gallery img")).to_have_count(shown)
    expect(visitor.locator("#outlyne-status")).to_contain_text("Shared run")
    expect(_share_field(visitor)).to_have_value(link)
    ARTIFACTS.mkdir(exist_ok=True)
    visitor.screenshot(path=str(ARTIFACTS / "share-opened.png"), full_page=True)


def test_a_shared_link_restores_the_best_guess_and_query(
    app: AppServer, new_page: Callable[[str], Page]
) -> None:
    page = new_page(app.url)
    _draw_house(page)
    _settle(page)
    page.locator("#outlyne-search").click()
    expect(page.locator("#outlyne-status")).to_contain_text("ordered by similarity")
    best_guess, query = _best_guess(page).inner_text(), _query(page)
    link = _share(page)
    visitor = new_page(link)
    expect(visitor.locator("#outlyne-sketch canvas[data-background=true]")).to_be_attached()
    expect(_best_guess(visitor)).to_have_text(best_guess)
    _settle(visitor)  # the restored scores count as current: nothing is pending
    # Nothing was scored on opening (Gradio's select of the tab shown at mount is no change): the page's
    # version is still the one the restored view carries.
    assert visitor.evaluate("window.outlyne.want") == 0
    assert _query(visitor) == query
    # The visitor can share it on without redrawing: a new link to the same run.
    again = _share(visitor, replacing=link)
    assert again != link
    expect(new_page(again).locator("#outlyne-gallery img")).to_have_count(
        page.locator("#outlyne-gallery img").count()
    )


def test_drawing_over_a_shared_sketch_scores_both(app: AppServer, new_page: Callable[[str], Page]) -> None:
    page = new_page(app.url)
    _draw_house(page)
    _settle(page)
    expect(_best_guess(page)).not_to_be_empty()
    link = _share(page)  # live scores alone: no search needed

    visitor = new_page(link)
    expect(visitor.locator("#outlyne-sketch canvas[data-background=true]")).to_be_attached()
    shared_ink = _ink(visitor)
    expect(visitor.locator("#outlyne-timings")).not_to_contain_text("total")  # restored, not computed
    expect(_tab(visitor, "Why")).to_have_attribute("aria-selected", "true")  # no search: no results
    want = visitor.evaluate("window.outlyne.want")
    _stroke(visitor, [(0.05, 0.05), (0.95, 0.05)])  # a line along the top, above the shared drawing
    _settle(visitor)
    assert visitor.evaluate("window.outlyne.want") == want + 1
    # The paper holds the shared drawing and the new stroke, and live scoring ran on it.
    assert _wait_for_ink(visitor, more_than=shared_ink) > shared_ink
    expect(visitor.locator("#outlyne-timings")).to_contain_text("total")
    expect(_best_guess(visitor)).not_to_be_empty()
    # Clear hides the shared drawing too, and undo brings everything back.
    visitor.locator("#outlyne-sketch [data-action=clear]").click()
    _settle(visitor)
    assert _ink(visitor) == 0
    expect(_best_guess(visitor)).to_have_count(0)
    visitor.locator("#outlyne-sketch [data-action=undo]").click()
    _settle(visitor)
    assert _ink(visitor) > shared_ink


def test_an_unknown_share_id_opens_the_normal_page_with_one_sentence(
    app: AppServer, new_page: Callable[[str], Page]
) -> None:
    page = new_page(f"{app.url}?share={'A' * 22}")
    expect(page.get_by_text(UNAVAILABLE).first).to_be_visible()
    # The normal page: an empty paper, ready to draw, and nothing else restored.
    assert _ink(page) == 0
    _expect_pen_selected(page)
    expect(page.locator("#outlyne-gallery img")).to_have_count(0)
    _draw_house(page)
    _settle(page)
    expect(_best_guess(page)).not_to_be_empty()


def test_an_expired_share_opens_the_normal_page_with_one_sentence(
    app: AppServer, new_page: Callable[[str], Page]
) -> None:
    page = new_page(app.url)
    _draw_house(page)
    _settle(page)
    link = _share(page)
    share_file = _shares_folder(app) / f"{SHARE_LINK.match(link).group(1)}.json"
    long_ago = time.time() - 31 * 86400  # older than the default 30 days
    os.utime(share_file, (long_ago, long_ago))

    visitor = new_page(link)
    expect(visitor.get_by_text(UNAVAILABLE).first).to_be_visible()
    expect(_best_guess(visitor)).to_have_count(0)
    assert _ink(visitor) == 0
    assert not share_file.exists()  # an expired share is removed when someone asks for it


def test_share_before_drawing_says_draw_something_first(
    app: AppServer, new_page: Callable[[str], Page]
) -> None:
    page = new_page(app.url)
    page.locator("#outlyne-share").click()
    expect(page.get_by_text("Draw something first").first).to_be_visible()
    expect(page.locator("#outlyne-share-url")).to_be_hidden()  # no link field until there is a link
