"""From a run on the page to a share and back to the page's values (no server, no browser)."""

from __future__ import annotations

import base64
import dataclasses
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pytest
from starlette.requests import Request as StarletteRequest

from outlyne.concepts.file import ConceptScore
from outlyne.config import Config
from outlyne.errors import BadImage
from outlyne.pipeline import Interrogation, SearchOutcome
from outlyne.search.types import SearchResult
from outlyne.sketch.normalize import NormalizedSketch
from outlyne.web.canvas import DATA_URL_PREFIX, sketch_image
from outlyne.web.handlers import ScoresView, SearchView
from outlyne.web.page import build_page
from outlyne.web.share import (
    Sharing,
    Shown,
    choose_run,
    restore_values,
    restore_values_outputs,
    run_record,
    same_drawing,
    share_url,
    shown_scores,
    shown_search,
)
from outlyne.web.share_store import ShareLimits, ShareStore, shareable_results
from outlyne.web.startup import Preparation

WEB = SearchResult(
    "web one",
    "https://t.example/a.jpg",
    "https://i.example/a.jpg",
    "https://p.example/a",
    "x",
    creator="Ann Smith",
    licence="CC BY 4.0",
)


def interrogation() -> Interrogation:
    display = np.full((384, 384, 3), 255, np.uint8)
    display[100:300, 100:106] = 0
    return Interrogation(
        sketch=NormalizedSketch(
            model_image=np.full((224, 224, 3), 255, np.uint8),
            display_image=display,
            bbox=None,
            inverted=False,
        ),
        embedding=np.zeros(8, np.float32),
        concepts=[ConceptScore("house", "objects", 0.7, 0.1), ConceptScore("tree", "nature", 0.2, 0.04)],
        query="house drawing",
        timings_ms={"embed": 1.0},
    )


def outcome(drawing: Interrogation | None = None) -> SearchOutcome:
    return SearchOutcome(
        interrogation=drawing or interrogation(),
        query="house drawing",
        results=[WEB],
        backend="ddg",
        reranked=True,
        final=True,
    )


def stand_in_page() -> SimpleNamespace:
    """restore_values only uses the page's components as dictionary keys: names stand in for them."""
    names = ["sketch", "concepts", "why", "why_caption", "query", "status", "gallery", "sources"]
    names.append("output_tabs")
    return SimpleNamespace(**{name: name for name in names})


# -- capture --------------------------------------------------------------------------------------------


def test_a_drawing_alone_is_shareable_and_an_empty_canvas_is_not() -> None:
    run = run_record(interrogation())
    assert run is not None and not run.searched and run.results == ()
    assert run.query == "house drawing"
    assert run_record(None) is None


def test_a_search_without_a_drawing_has_nothing_to_share() -> None:
    typed_only = SearchOutcome(None, "cats", [], "local", False, True)
    assert run_record(typed_only) is None


def test_the_records_come_from_the_typed_views() -> None:
    drawn = interrogation()
    assert shown_scores(ScoresView(7, drawn)) == Shown(7, run_record(drawn))
    assert shown_scores(ScoresView(8)) == Shown(8, None)  # a blank paper
    starting = SearchView(ScoresView(9, drawn), "house drawing", "Searching…")
    assert shown_search(starting) == Shown(9, run_record(drawn))  # before the engine answers: the drawing
    answered = dataclasses.replace(starting, results=[WEB], outcome=outcome(drawn))
    record = shown_search(answered)
    assert record.version == 9 and record.run.searched and record.run.results == (WEB,)


def test_share_takes_the_search_unless_the_drawing_changed_after_it() -> None:
    drawing = run_record(interrogation())
    search = run_record(outcome())
    # Live scoring of the last stroke finished after Search: the same version, so the results still count.
    assert choose_run(Shown(4, drawing), Shown(4, search)) is search
    # An example searched without drawing (its search is newer than the last live score): the search.
    assert choose_run(Shown(2, drawing), Shown(5, search)) is search
    assert choose_run(None, Shown(0, search)) is search
    # A setting changed after the search (newer live score, same drawing): the search still stands.
    assert choose_run(Shown(6, drawing), Shown(4, search)) is search
    # Drawn on after the search: the new drawing alone (those results were for the old one).
    changed = interrogation()
    changed.sketch.display_image[200:206, 50:300] = 0
    assert choose_run(Shown(6, run_record(changed)), Shown(4, search)).searched is False
    # Cleared after the search: nothing to share.
    assert choose_run(Shown(6, None), Shown(4, search)) is None
    # No search yet, or a typed query on a blank paper.
    assert choose_run(Shown(1, drawing), None) is drawing
    assert choose_run(Shown(1, drawing), Shown(2, None)) is drawing
    assert choose_run(None, None) is None


def test_one_drawing_encoded_twice_is_the_same_drawing() -> None:
    first = run_record(interrogation())
    shifted = interrogation()
    shifted.sketch.display_image[:] = np.clip(shifted.sketch.display_image.astype(int) - 1, 0, 255)
    assert same_drawing(first, run_record(shifted))  # one gray level apart: a rounding, not a stroke
    dotted = interrogation()
    dotted.sketch.display_image[300:304, 300:304] = 0
    assert not same_drawing(first, run_record(dotted))  # one small dot more is another drawing


def test_a_live_score_fills_only_the_drawing_record_and_a_search_only_the_search_record(
    tmp_path: Path,
) -> None:
    """The page's own events carry the records (web/page.py ViewRecord): a late live score can never
    overwrite what a search recorded."""
    preparation = Preparation(Config(cache_dir=tmp_path), lambda _progress: None)  # never prepared
    sharing = Sharing(preparation)
    page = build_page(preparation, [sharing])
    assert sharing.drawing_record in page.score_outputs and sharing.search_record not in page.score_outputs
    assert sharing.search_record in page.search_outputs and sharing.drawing_record not in page.search_outputs
    drawn = interrogation()
    scores = page.show_scores(ScoresView(3, drawn))
    assert scores[sharing.drawing_record] == Shown(3, run_record(drawn))
    assert sharing.search_record not in scores
    view = SearchView(ScoresView(3, drawn), "house drawing", "", [WEB], {}, outcome(drawn))
    searched = page.show_search(view)
    assert searched[sharing.search_record].run.results == (WEB,)
    assert sharing.drawing_record not in searched
    assert set(searched) == set(page.search_outputs)  # every value has its output, and no more


# -- restore --------------------------------------------------------------------------------------------


def test_restored_values_fill_the_page_and_the_sketch_goes_onto_the_paper(tmp_path: Path) -> None:
    served = "/outlyne/gallery/0123456789abcdef"
    local = SearchResult("local one", served, served, served, "local", similarity=0.9)
    run = run_record(dataclasses.replace(outcome(), results=[local, WEB]))
    store = ShareStore(tmp_path / "shares", ShareLimits(64 * 1024, 1 << 20, 86400.0))
    share_id = store.save(dataclasses.replace(run, results=shareable_results(run.results)))
    values = restore_values(store.load(share_id), stand_in_page())

    # The paper gets a PNG data URL, which the canvas decodes as any drawing it sends: the ink is there.
    assert values["sketch"].startswith(DATA_URL_PREFIX)
    paper = np.asarray(sketch_image(values["sketch"]).convert("L"))
    assert paper.min() < 50 and paper.max() > 200
    assert base64.b64decode(values["sketch"][len(DATA_URL_PREFIX) :]) == run.sketch_png
    assert 'data-version="0"' in values["concepts"] and ">house<" in values["concepts"]
    assert values["why"].shape[2] == 3
    assert values["query"] == "house drawing"
    # This process serves no gallery: the local result is left out, the web one stays, with its credit.
    assert [caption for _, caption in values["gallery"]] == ["web one — Ann Smith · CC BY 4.0"]
    assert "https://p.example/a" in values["sources"] and "local one" not in values["sources"]
    assert values["status"].startswith("Shared run: 1 image from DuckDuckGo")
    assert isinstance(values["output_tabs"], gr.Tabs)
    assert set(values) == set(restore_values_outputs(stand_in_page()))


def test_a_drawing_alone_restores_without_a_search_status() -> None:
    values = restore_values(run_record(interrogation()), stand_in_page())
    assert values["status"] == "" and values["gallery"] == []


def test_a_damaged_sketch_is_unavailable_in_plain_words() -> None:
    broken = dataclasses.replace(run_record(interrogation()), sketch_png=b"not a png")
    with pytest.raises(BadImage, match="The shared sketch is not a PNG"):
        restore_values(broken, stand_in_page())


# -- the link -------------------------------------------------------------------------------------------


def _request(url: str, headers: dict[str, str] | None = None) -> gr.Request:
    scheme, rest = url.split("://", 1)
    host, _, path_query = rest.partition("/")
    path, _, query = ("/" + path_query).partition("?")
    raw_headers = [(b"host", host.encode())] + [
        (k.lower().encode(), v.encode()) for k, v in (headers or {}).items()
    ]
    scope = {
        "type": "http",
        "scheme": scheme,
        "server": (host.split(":")[0], int(host.split(":")[1]) if ":" in host else 80),
        "path": path,
        "query_string": query.encode(),
        "headers": raw_headers,
        "root_path": "",
    }
    return gr.Request(request=StarletteRequest(scope))


def test_the_link_is_the_pages_address_not_the_api_route() -> None:
    request = _request("http://127.0.0.1:7860/gradio_api/queue/join?share=x")
    assert share_url(request, "abc") == "http://127.0.0.1:7860/?share=abc"


def test_behind_a_proxy_the_link_uses_the_public_host() -> None:
    request = _request(
        "http://10.0.0.5:7860/gradio_api/queue/join",
        {"x-forwarded-host": "someone-outlyne.hf.space", "x-forwarded-proto": "https"},
    )
    assert share_url(request, "abc") == "https://someone-outlyne.hf.space/?share=abc"
