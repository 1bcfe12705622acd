"""outlyne.web.format: pipeline results -> the values the page shows. No browser, server or model."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from outlyne.concepts.file import ConceptScore
from outlyne.search.types import SearchResult
from outlyne.web import format as ui_format


def _result(
    title: str, similarity: float | None = 0.5, url: str = "https://example.org/page", **kw
) -> SearchResult:
    return SearchResult(
        title=title,
        thumbnail=kw.pop("thumbnail", "https://tse.example/th.jpg"),
        image="https://img.example/full.jpg",
        url=url,
        source=kw.pop("source", "example.org"),
        similarity=similarity,
        **kw,
    )


@dataclass
class _Outcome:  # the attributes search_status reads from a SearchOutcome
    results: list[SearchResult]
    backend: str = "ddg"
    query: str = "cat animal"
    reranked: bool = False
    final: bool = True
    warning: str | None = None
    dropped: dict[str, int] = field(default_factory=dict)
    duplicates_collapsed: int = 0
    attempts: tuple = ()


SCORES = [
    ConceptScore("cat", "animal", 0.61234567, 0.1523456),
    ConceptScore("dog", "animal", 0.2, 0.12),
]


def test_the_score_view_shows_the_best_guess_large_and_the_rest_as_bars() -> None:
    view = ui_format.scores_html(SCORES, 7)
    assert 'data-version="7"' in view  # echoed for the page's staleness check
    best = view[view.index('id="outlyne-best-guess"') :]
    assert best.index("cat") < best.index("61%") < best.index("outlyne-bars")
    assert view.count('class="outlyne-bar"') == 1  # the next ones: dog
    assert "<td>0.1523</td>" in view  # raw cosines, folded away in "Raw scores"


def test_the_score_view_escapes_labels_people_typed() -> None:
    typed = [ConceptScore('<img src=x onerror="alert(1)">', "custom", 0.5, 0.1)]
    view = ui_format.scores_html(typed, 1)
    assert "<img" not in view and "&lt;img" in view


def test_an_empty_score_view_is_a_hint_with_its_version() -> None:
    view = ui_format.scores_html([], 3, hint="The uploaded file is not a PNG, JPEG, WebP, GIF or BMP image.")
    assert 'data-version="3"' in view and "not a PNG" in view and "outlyne-best-guess" not in view


def test_percentages_keep_small_differences_visible() -> None:
    assert [ui_format.percent(p) for p in (0.873, 0.0123, 0.000123, 0.0)] == ["87%", "1.2%", "0.012%", "0%"]


def test_caption_puts_similarity_first_and_shortens_long_titles() -> None:
    caption = ui_format.result_caption(_result("A   very long title " * 10, similarity=0.834))
    assert caption.startswith("0.83 · A very long title")
    assert caption.endswith("…")
    assert len(caption) <= len("0.83 · ") + 60


def test_caption_without_similarity_is_the_title_alone() -> None:
    assert ui_format.result_caption(_result("Cat", similarity=None)) == "Cat"
    assert ui_format.result_caption(_result("  ", similarity=None)) == "untitled"


def test_gallery_items_use_thumbnails_and_skip_results_without_any_image() -> None:
    items = ui_format.gallery_items(
        [_result("a"), _result("b", thumbnail="", similarity=None), _result("c", thumbnail="")]
    )
    assert items[0] == ("https://tse.example/th.jpg", "0.50 · a")
    assert items[1] == ("https://img.example/full.jpg", "b")
    assert len(items) == 3  # an empty thumbnail falls back to the full image


def test_sources_link_web_pages_and_escape_titles() -> None:
    text = ui_format.sources_markdown([_result("Cats [and] *dogs*", url="https://example.org/a_(b)")])
    assert text.startswith(r"1. [Cats \[and\] \*dogs\*](<https://example.org/a_(b)>)")
    assert "similarity 0.50" in text


def test_sources_do_not_link_local_files_or_other_schemes() -> None:
    local = _result("img.png", url=Path("/data/gallery/img.png").as_uri(), source="local")
    hostile = _result("x", url="javascript:alert(1)")
    text = ui_format.sources_markdown([local, hostile])
    assert "](" not in text
    assert "`img.png`" in text


def test_attribution_in_the_caption_and_the_sources() -> None:
    credited = _result(
        "Cat",
        similarity=0.9,
        creator="Ann   Smith",
        licence="CC BY-SA 4.0",
        licence_url="https://creativecommons.org/licenses/by-sa/4.0/",
    )
    assert ui_format.result_caption(credited) == "0.90 · Cat — Ann Smith · CC BY-SA 4.0"
    assert ui_format.result_caption(_result("Cat", similarity=None, licence="CC0 1.0")) == "Cat — CC0 1.0"
    text = ui_format.sources_markdown([credited])
    assert text == (
        "1. [Cat](<https://example.org/page>) — example.org · by Ann Smith · "
        "[CC BY-SA 4.0](<https://creativecommons.org/licenses/by-sa/4.0/>) · similarity 0.90"
    )


def test_engine_urls_cannot_break_out_of_a_markdown_link() -> None:
    hostile = _result(
        "x",
        url="https://example.org/a> [click](https://evil.example)",
        licence="CC*",
        licence_url="https://l.example/<b>",
        creator="[me](https://evil.example)",
    )
    text = ui_format.sources_markdown([hostile])
    assert "(<https://example.org/a%3E%20[click](https://evil.example)>)" in text
    assert "[CC\\*](<https://l.example/%3Cb%3E>)" in text
    assert "by \\[me\\]\\(https://evil.example\\)" in text


def test_sources_of_nothing_is_empty() -> None:
    assert ui_format.sources_markdown([]) == ""


def test_timings_follow_the_pipeline_order_and_end_with_the_total() -> None:
    text = ui_format.timings_markdown({"total": 51.0, "search": 20.0, "embed": 30.04, "normalize": 1.0})
    assert text == "<small>normalize 1.0 ms · embed 30 ms · search 20 ms · total 51 ms</small>"
    assert ui_format.timings_markdown({}) == ""


def test_unknown_stages_are_still_shown() -> None:
    assert "fetch thumbnails 5.0 ms" in ui_format.timings_markdown({"embed": 1.0, "fetch_thumbnails": 5.0})


def test_status_says_where_the_results_come_from_and_their_order() -> None:
    preview = _Outcome([_result("a"), _result("b")], final=False)
    assert "in the engine's order; re-ranking" in ui_format.search_status(preview)
    assert "DuckDuckGo" in ui_format.search_status(preview)
    final = _Outcome([_result("a")], reranked=True, dropped={"timeout": 2, "404": 1}, duplicates_collapsed=1)
    status = ui_format.search_status(final)
    assert status.startswith("1 image from DuckDuckGo, ordered by similarity")
    assert "Left out: HTTP 404 (1), timeout (2), near-duplicates (1)." in status


def test_status_explains_failures_and_empty_answers() -> None:
    failed = _Outcome([], warning="The image search failed: rate limited (3 tries).")
    assert ui_format.search_status(failed) == "The image search failed: rate limited (3 tries)."
    # An engine's page-long answer becomes one short sentence.
    chatty = _Outcome([], warning="The image search failed: 403 Forbidden. " + "<html> details " * 40)
    assert ui_format.search_status(chatty) == "The image search failed: 403 Forbidden."
    assert "turned off" in ui_format.search_status(_Outcome([], backend="none"))
    assert ui_format.search_status(_Outcome([], backend="local")).startswith(
        'No images found for "cat animal"'
    )


def test_json_safe_turns_numpy_and_paths_into_plain_json() -> None:
    value = {
        "score": np.float32(0.25),
        "rank": np.int64(3),
        "vector": np.arange(3, dtype=np.float32),
        "bbox": (1, 2, 3, 4),
        "path": Path("/tmp/x.png"),
        "bad": float("nan"),
        "nested": [{"ok": True, "none": None}],
    }
    safe = ui_format.json_safe(value)
    assert json.loads(json.dumps(safe, allow_nan=False)) == {
        "score": 0.25,
        "rank": 3,
        "vector": [0.0, 1.0, 2.0],
        "bbox": [1, 2, 3, 4],
        "path": "/tmp/x.png",
        "bad": None,
        "nested": [{"ok": True, "none": None}],
    }
