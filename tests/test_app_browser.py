"""The page as a person uses it: Debian's chromium driven by Playwright against `python app.py`.

Draw with the mouse, watch the concept scores appear while drawing, press Search, see thumbnails, look at
the other tabs. Screenshots go to artifacts/ (gitignored) for people to look at; nothing here measures time.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from outlyne.web.page import CANVAS_SIZE, example_files
from outlyne_dev.app_server import ROOT, AppServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
]
ARTIFACTS = ROOT / "artifacts"
WAIT_MS = 60_000  # generous: two shared cores; a timeout here means "never happened", not "slow"
expect.set_options(timeout=WAIT_MS)  # expect() has its own 5 s default, apart from the page's


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed at /usr/bin/chromium")
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, app: AppServer) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, locale="en-US")
    opened = context.new_page()
    opened.set_default_timeout(WAIT_MS)
    opened.goto(app.url)
    expect(opened.locator("#outlyne-sketch canvas").first).to_be_visible()
    yield opened
    context.close()


def _screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def _paper_box(page: Page) -> dict[str, float]:
    """The drawing area: the canvas element spans the whole editor; the paper is centred in it."""
    box = page.locator("#outlyne-sketch canvas").first.bounding_box()
    assert box is not None
    return box


def _draw_house(page: Page) -> None:
    """A few strokes with the mouse, like a person: a box, a roof and a hexagonal window."""
    box = _paper_box(page)
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    side = min(box["width"], box["height"]) * 0.25

    def stroke(points: list[tuple[float, float]]) -> None:
        # One mouse event per corner: the brush draws straight segments between them, and every event
        # costs a software-rendered canvas frame in headless chromium, slow on a loaded machine.
        page.mouse.move(*points[0])
        page.mouse.down()
        for point in points[1:]:
            page.mouse.move(*point)
        page.mouse.up()

    stroke(
        [(cx - side, cy), (cx - side, cy + side), (cx + side, cy + side), (cx + side, cy), (cx - side, cy)]
    )
    stroke([(cx - side * 1.2, cy), (cx, cy - side), (cx + side * 1.2, cy)])
    radius = side * 0.25
    stroke(
        [
            (cx + radius * math.cos(a / 6 * math.tau), cy + side / 2 + radius * math.sin(a / 6 * math.tau))
            for a in range(7)
        ]
    )


def _tab(page: Page, name: str) -> Locator:
    return page.get_by_role("tab", name=name, exact=True)


def test_canvas_is_ready_to_draw_when_the_page_opens(page: Page) -> None:
    # A default Gradio 6 Sketchpad asks to "select the draw tool" and ignores strokes until then.
    expect(page.get_by_text("select the draw tool to start")).to_have_count(0)
    brush = page.locator('#outlyne-sketch button[aria-label="Brush"]')
    expect(brush).to_have_class(re.compile(r"\bhighlight\b"))
    # The paper is shown at most of the editor's width, not a third of it: its zoom level times the
    # canvas size, against the editor's width.
    zoom = page.locator("#outlyne-sketch").get_by_text(re.compile(r"^\d+%$"))
    percent = int(zoom.inner_text().rstrip("%"))
    editor = page.locator("#outlyne-sketch").bounding_box()
    assert editor is not None
    assert CANVAS_SIZE[0] * percent / 100 > 0.75 * editor["width"]
    _screenshot(page, "app-opened.png")


def test_draw_see_live_scores_search_and_browse_the_tabs(page: Page) -> None:
    _draw_house(page)

    # Live: the concept bars fill in while drawing, without pressing anything.
    top_concept = page.locator('#outlyne-concepts [data-testid="label-output-value"]')
    expect(top_concept).not_to_be_empty()
    expect(page.locator("#outlyne-concepts .confidence-set")).to_have_count(5)
    _screenshot(page, "app-live-scores.png")

    page.get_by_role("button", name="Search", exact=True).click()

    # The Results tab comes forward by itself, with thumbnails from the local gallery.
    expect(_tab(page, "Results")).to_have_attribute("aria-selected", "true")
    thumbnails = page.locator("#outlyne-gallery img")
    expect(thumbnails.first).to_be_visible()
    assert thumbnails.count() >= 4
    expect(page.locator("#outlyne-status")).to_contain_text("ordered by similarity")
    expect(page.locator("#outlyne-timings")).to_contain_text("total")
    _screenshot(page, "app-results.png")

    _tab(page, "Normalized sketch").click()
    expect(page.locator("#outlyne-normalized img")).to_be_visible()

    _tab(page, "Query").click()
    expect(page.locator("#outlyne-query textarea")).not_to_have_value("")
    _screenshot(page, "app-query.png")


def test_clearing_the_canvas_leaves_it_ready_to_draw_again(page: Page) -> None:
    bars = page.locator("#outlyne-concepts .confidence-set")
    _draw_house(page)
    expect(bars).to_have_count(5)
    # Gradio's own reset after "Clear canvas" deselects the brush; the page re-selects it.
    page.locator('#outlyne-sketch button[aria-label="Clear canvas"]').click()
    expect(bars).to_have_count(0)  # an empty canvas clears the scores rather than erroring
    expect(page.locator('#outlyne-sketch button[aria-label="Brush"]')).to_have_class(
        re.compile(r"\bhighlight\b")
    )
    _draw_house(page)
    expect(bars).to_have_count(5)


def test_searching_with_an_empty_canvas_says_draw_something_first(page: Page) -> None:
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.get_by_text("Draw something first").first).to_be_visible()


def test_an_example_is_one_click_away_from_results(page: Page) -> None:
    if not example_files():
        pytest.skip("no example drawings in examples/")
    page.locator("#outlyne-examples img").first.click()
    expect(_tab(page, "Upload")).to_have_attribute("aria-selected", "true")
    expect(_tab(page, "Results")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#outlyne-gallery img").first).to_be_visible()
    _screenshot(page, "app-example.png")
