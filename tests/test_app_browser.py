"""The page as a person uses it: Debian's chromium driven by Playwright against `python app.py`.

Draw with the mouse, watch the scores follow the paper (through undo, clear and tab switches), ask why,
search, and check that the page fits a phone and a laptop screen. Every wait is on the page's state (the
score view's echoed version against the page's own, web/live.py), never on time; nothing here measures
time. Screenshots go to artifacts/ (gitignored) for people to look at.
"""

from __future__ import annotations

import json
import math
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import playwright.sync_api as playwright_api  # a missing Playwright must fail, not skip
import pytest

from outlyne.web.page import example_files
from outlyne_dev.app_server import ROOT, AppServer
from outlyne_dev.browser import PAPER_DRAWABLE_JS, SETTLED_JS

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page, Request

expect = playwright_api.expect

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "artifacts"
WAIT_MS = 120_000  # generous: two shared cores; a timeout here means "never happened", not "slow"
expect.set_options(timeout=WAIT_MS)  # expect() has its own 5 s default, apart from the page's
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@dataclass
class Traffic:
    """The page's requests to the server, by kind. The page's load event (it restores a shared run when
    the URL has one) is left out: it runs once per page, whenever the queue gets to it, not per stroke."""

    page_load_events: frozenset[int] = frozenset()  # fn_index of the page's load listeners
    joins: list[str] = field(default_factory=list)  # /gradio_api/queue/join: one per event run
    uploads: list[str] = field(default_factory=list)  # /gradio_api/upload

    @classmethod
    def of_app(cls, app: AppServer) -> Traffic:
        with urllib.request.urlopen(app.url + "config", timeout=30) as response:
            config = json.load(response)
        loads = {d["id"] for d in config["dependencies"] if any(t[1] == "load" for t in d["targets"])}
        return cls(page_load_events=frozenset(loads))

    def record(self, request: Request) -> None:
        if request.method != "POST":
            return
        if "/queue/join" in request.url:
            body = request.post_data or ""
            if json.loads(body or "{}").get("fn_index") not in self.page_load_events:
                self.joins.append(body)
        elif "/upload" in request.url:
            self.uploads.append(request.url)


def _open(browser: Browser, app: AppServer, viewport: dict[str, int]) -> tuple[Page, Traffic]:
    context = browser.new_context(viewport=viewport, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    traffic = Traffic.of_app(app)
    page.on("request", traffic.record)
    page.goto(app.url)
    expect(page.locator("#outlyne-sketch canvas[data-ready=true]")).to_be_visible()  # its script ran
    page.wait_for_function(PAPER_DRAWABLE_JS)  # and nothing covers it
    return page, traffic


@pytest.fixture
def page(browser: Browser, app: AppServer) -> Iterator[Page]:
    opened, _ = _open(browser, app, LAPTOP)
    yield opened
    opened.context.close()


@pytest.fixture
def watched(browser: Browser, app: AppServer) -> Iterator[tuple[Page, Traffic]]:
    opened, traffic = _open(browser, app, LAPTOP)
    yield opened, traffic
    opened.context.close()


def _screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name))


def _settle(page: Page) -> None:
    page.wait_for_function(SETTLED_JS)


def _paper(page: Page) -> dict[str, float]:
    box = page.locator("#outlyne-sketch canvas").bounding_box()
    assert box is not None
    return box


def _stroke(page: Page, points: list[tuple[float, float]]) -> None:
    """One stroke with the mouse; points are fractions of the paper's width and height."""
    box = _paper(page)
    absolute = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in points]
    page.mouse.move(*absolute[0])
    page.mouse.down()
    for point in absolute[1:]:
        page.mouse.move(*point, steps=2)
    page.mouse.up()


HOUSE = [
    [(0.3, 0.5), (0.3, 0.8), (0.7, 0.8), (0.7, 0.5), (0.3, 0.5)],
    [(0.25, 0.5), (0.5, 0.25), (0.75, 0.5)],
    [(0.5 + 0.06 * math.cos(a / 6 * math.tau), 0.65 + 0.06 * math.sin(a / 6 * math.tau)) for a in range(7)],
]


def _draw_house(page: Page) -> None:
    for points in HOUSE:
        _stroke(page, points)


def _tab(page: Page, name: str) -> Locator:
    return page.get_by_role("tab", name=name, exact=True)


def _best_guess(page: Page) -> Locator:
    return page.locator("#outlyne-best-guess")


def _inside(box: dict[str, float] | None, viewport: dict[str, int]) -> bool:
    return (
        box is not None
        and box["x"] >= 0
        and box["y"] >= 0
        and box["x"] + box["width"] <= viewport["width"] + 0.5
        and box["y"] + box["height"] <= viewport["height"] + 0.5
    )


# -- live scores ---------------------------------------------------------------------------------------


def _scoring_of(version: int) -> Callable[[Request], bool]:
    """Matches the scoring request that carries the page's `version` (its last input, web/live.py)."""

    def matches(request: Request) -> bool:
        if request.method != "POST" or "/queue/join" not in request.url:
            return False
        data = json.loads(request.post_data or "{}").get("data") or []
        return bool(data) and data[-1] == version

    return matches


def test_each_stroke_is_scored_once_and_uploads_nothing(watched: tuple[Page, Traffic]) -> None:
    page, traffic = watched
    _settle(page)
    for number, points in enumerate(HOUSE, start=1):
        joins_before = len(traffic.joins)
        # Seen by this test before counting: Playwright may hand request events over after the answer.
        with page.expect_request(_scoring_of(page.evaluate("window.outlyne.want") + 1)):
            _stroke(page, points)
        _settle(page)
        # One run per settled drawing: the stroke's scoring request and nothing else.
        assert len(traffic.joins) - joins_before == 1, f"stroke {number}"
        expect(_best_guess(page)).not_to_be_empty()
    assert traffic.uploads == []  # the drawing travels inside the event: no upload at all
    _screenshot(page, "app-live-scores.png")


def test_a_quick_burst_of_strokes_ends_on_the_scores_of_the_last_drawing(
    watched: tuple[Page, Traffic],
) -> None:
    page, traffic = watched
    _settle(page)
    joins_before = len(traffic.joins)
    want_before = page.evaluate("window.outlyne.want")
    with page.expect_request(_scoring_of(want_before + len(HOUSE))):  # the last drawing is always scored
        _draw_house(page)  # three strokes, no waiting in between
    _settle(page)
    want = page.evaluate("window.outlyne.want")
    assert want == want_before + len(HOUSE)  # every stroke raised the page's version...
    assert 1 <= len(traffic.joins) - joins_before <= len(HOUSE)  # ...runs it overtook may be dropped
    shown = page.locator("#outlyne-concepts [data-version]").get_attribute("data-version")
    assert shown == str(want)


def test_undo_clear_and_tab_switches_keep_the_scores_those_of_the_paper(page: Page) -> None:
    bars = page.locator("#outlyne-concepts .outlyne-bar")
    _draw_house(page)
    _settle(page)
    expect(_best_guess(page)).not_to_be_empty()
    expect(bars).to_have_count(4)  # top-5: the best guess and four bars

    page.locator("#outlyne-sketch [data-action=undo]").click()
    _settle(page)
    expect(_best_guess(page)).not_to_be_empty()

    page.locator("#outlyne-sketch [data-action=clear]").click()
    _settle(page)
    expect(_best_guess(page)).to_have_count(0)  # a blank paper: no scores, a hint instead
    expect(page.locator("#outlyne-concepts")).to_contain_text("Draw something")

    page.locator("#outlyne-sketch [data-action=undo]").click()  # a clear can be undone
    _settle(page)
    expect(_best_guess(page)).not_to_be_empty()

    _tab(page, "Upload").click()
    _settle(page)
    expect(_best_guess(page)).to_have_count(0)  # nothing uploaded yet
    _tab(page, "Sketch").click()
    _settle(page)
    expect(_best_guess(page)).not_to_be_empty()  # the drawing is still there and scored again
    expect(bars).to_have_count(4)


def test_a_settings_change_rescores_at_once(page: Page) -> None:
    _draw_house(page)
    _settle(page)
    page.locator("#outlyne-settings").get_by_role("button").first.click()
    number = page.locator("#outlyne-top-k input[type=number]")
    number.fill("8")
    number.press("Enter")
    page.wait_for_function("() => document.querySelectorAll('#outlyne-concepts .outlyne-bar').length === 7")
    _settle(page)


def test_a_file_that_is_not_an_image_gets_one_plain_sentence(page: Page, tmp_path: Path) -> None:
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("these are words, not pixels\n")
    _tab(page, "Upload").click()
    _settle(page)
    page.locator("#outlyne-sketch ~ * input[type=file], input[type=file]").first.set_input_files(
        str(not_an_image)
    )
    _settle(page)
    view = page.locator("#outlyne-concepts")
    expect(view).to_contain_text("is not a PNG, JPEG, WebP, GIF or BMP image")
    assert "/tmp" not in view.inner_text()


# -- why -------------------------------------------------------------------------------------------------


def test_tapping_a_concept_shows_its_heatmap(page: Page) -> None:
    _draw_house(page)
    _settle(page)
    expect(page.locator("#outlyne-why-caption")).to_contain_text("Tap a concept")
    second = page.locator("#outlyne-concepts .outlyne-bar").first
    label = second.get_attribute("data-label")
    second.click()
    expect(_tab(page, "Why")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#outlyne-why-caption")).to_contain_text(f"Why “{label}”")
    expect(page.locator("#outlyne-why img")).to_be_visible()
    _screenshot(page, "app-why.png")


# -- search ----------------------------------------------------------------------------------------------


def test_draw_search_and_browse_the_tabs(page: Page) -> None:
    _draw_house(page)
    _settle(page)
    page.locator("#outlyne-search").click()

    # The Results tab comes forward by itself, with thumbnails from the local gallery.
    expect(_tab(page, "Results")).to_have_attribute("aria-selected", "true")
    thumbnails = page.locator("#outlyne-gallery img")
    expect(thumbnails.first).to_be_visible()
    assert thumbnails.count() >= 4
    expect(page.locator("#outlyne-status")).to_contain_text("ordered by similarity")
    expect(page.locator("#outlyne-timings")).to_contain_text("total")
    _screenshot(page, "app-results.png")

    _tab(page, "Query").click()
    expect(page.locator("#outlyne-query input")).not_to_have_value("")


def test_enter_in_the_query_box_searches_with_the_typed_text(page: Page) -> None:
    _tab(page, "Query").click()
    box = page.locator("#outlyne-query input")
    box.fill("zigzag circle")
    box.press("Enter")
    expect(_tab(page, "Results")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#outlyne-status")).to_contain_text("images from the local gallery")
    expect(page.locator("#outlyne-gallery img").first).to_be_visible()


def test_searching_with_an_empty_canvas_says_draw_something_first(page: Page) -> None:
    page.locator("#outlyne-search").click()
    expect(page.get_by_text("Draw something first").first).to_be_visible()


def test_an_example_is_one_click_away_from_results(page: Page) -> None:
    assert example_files(), "the repository ships example drawings in examples/"
    page.locator("#outlyne-examples img").first.click()
    expect(_tab(page, "Upload")).to_have_attribute("aria-selected", "true")
    expect(_tab(page, "Results")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#outlyne-gallery img").first).to_be_visible()
    _settle(page)
    expect(_best_guess(page)).not_to_be_empty()


# -- layout ----------------------------------------------------------------------------------------------


def test_on_a_laptop_the_paper_search_and_best_guess_are_seen_together(page: Page) -> None:
    _draw_house(page)
    _settle(page)
    assert page.evaluate("window.scrollY") == 0
    paper = _paper(page)
    search = page.locator("#outlyne-search").bounding_box()
    best = _best_guess(page).bounding_box()
    for name, box in (("paper", paper), ("Search", search), ("best guess", best)):
        assert _inside(box, LAPTOP), f"the {name} is not fully on screen: {box}"
    # Two columns: the scores sit beside the paper, not below it, so no half of the page stays empty.
    assert best is not None and best["x"] > paper["x"] + paper["width"]
    _screenshot(page, "app-laptop.png")


def test_on_a_phone_the_paper_spans_the_width_and_the_best_guess_is_above_the_fold(
    browser: Browser, app: AppServer
) -> None:
    page, _ = _open(browser, app, PHONE)
    try:
        paper = _paper(page)
        assert paper["width"] >= 0.9 * PHONE["width"], paper
        _draw_house(page)
        _settle(page)
        assert page.evaluate("window.scrollY") == 0
        assert _inside(_best_guess(page).bounding_box(), PHONE)
        # Every tab is a visible button of its own (no "more" overflow menu hides one).
        for name in ("Sketch", "Upload", "Why", "Query", "Results"):
            tab = _tab(page, name)
            expect(tab).to_be_visible()
            box = tab.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], name
        _screenshot(page, "app-phone.png")
    finally:
        page.context.close()
