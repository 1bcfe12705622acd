"""From a run on the page to a share and back to the page's values (no server, no browser)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from starlette.requests import Request as StarletteRequest

from outlyne.concepts.file import ConceptScore
from outlyne.errors import BadImage
from outlyne.pipeline import Interrogation, SearchOutcome
from outlyne.search.types import SearchResult
from outlyne.sketch.normalize import NormalizedSketch
from outlyne.web.share import RESTORED, choose_run, restore_values, run_record, same_drawing, share_url
from outlyne.web.share_store import ShareLimits, ShareStore, shareable_results


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


def outcome(gallery: Path) -> SearchOutcome:
    local = gallery / "01.png"
    return SearchOutcome(
        interrogation=interrogation(),
        query="house drawing",
        results=[
            SearchResult("local one", str(local), str(local), local.as_uri(), "local", similarity=0.9),
            SearchResult(
                "web one", "https://t.example/a.jpg", "https://i.example/a.jpg", "https://p.example/a", "x"
            ),
        ],
        backend="local",
        reranked=True,
        final=True,
    )


@dataclasses.dataclass(frozen=True)
class Slot:
    """A stand-in for a page component: restore_values only uses components as dictionary keys."""

    name: str


def components(names: tuple[str, ...] = RESTORED) -> dict[str, Slot]:
    return {name: Slot(name) for name in names}


def test_a_drawing_alone_is_shareable_and_an_empty_canvas_is_not() -> None:
    run = run_record(interrogation())
    assert run is not None and not run.searched and run.results == ()
    assert run.query == "house drawing"
    assert run_record(None) is None


def test_a_search_without_a_drawing_has_nothing_to_share(tmp_path: Path) -> None:
    typed_only = SearchOutcome(None, "cats", [], "local", False, True)
    assert run_record(typed_only) is None


def test_restored_values_fill_the_page_and_the_sketch_is_the_editors_background(tmp_path: Path) -> None:
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    (gallery / "01.png").write_bytes(b"png")
    run = run_record(outcome(gallery))
    stored = ShareStore(tmp_path / "shares", ShareLimits(64 * 1024, 1 << 20, 86400.0))
    share_id = stored.save(dataclasses.replace(run, results=shareable_results(run.results, gallery)))
    page = components()
    values = {key.name: value for key, value in restore_values(stored.load(share_id), page, gallery).items()}

    sketch = values["sketch"]
    assert sketch["layers"] == [] and sketch["background"] is sketch["composite"]
    assert sketch["background"].shape[2] == 3 and sketch["background"].min() < 50  # the ink is there
    assert values["label"] == {"house": 0.7, "tree": 0.2}
    assert values["query"] == "house drawing"
    assert [caption for _, caption in values["gallery"]] == ["0.90 · local one", "web one"]
    assert values["gallery"][0][0] == str((gallery / "01.png").resolve())
    assert "https://p.example/a" in values["sources"]
    assert values["status"].startswith("Shared run: 2 images")
    assert isinstance(values["output_tabs"], gr.Tabs)


def test_a_page_without_some_components_gets_only_the_ones_it_has(tmp_path: Path) -> None:
    run = run_record(interrogation())
    values = restore_values(run, components(("sketch", "query")), None)
    assert {key.name for key in values} == {"sketch", "query"}


def test_a_damaged_sketch_is_unavailable_in_plain_words() -> None:
    run = run_record(interrogation())
    broken = dataclasses.replace(run, sketch_png=b"not a png")
    with pytest.raises(BadImage, match="The shared sketch is not a PNG"):
        restore_values(broken, components(), None)


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


def test_share_takes_the_search_when_it_was_made_for_the_drawing_on_show(tmp_path: Path) -> None:
    drawing = run_record(interrogation())
    search = run_record(outcome(tmp_path))
    # Live scoring of the last stroke finished after Search: the same drawing, so its results still count.
    assert choose_run(drawing, search) is search
    # An example searched without drawing: the search.
    assert choose_run(None, search) is search
    # Drawn on after the search: the new drawing alone (those results were for the old one).
    changed = interrogation()
    changed.sketch.display_image[200:206, 50:300] = 0
    assert choose_run(run_record(changed), search).searched is False
    assert choose_run(drawing, None) is drawing
    assert choose_run(None, None) is None


def test_one_drawing_encoded_twice_is_the_same_drawing() -> None:
    first = run_record(interrogation())
    shifted = interrogation()
    shifted.sketch.display_image[:] = np.clip(shifted.sketch.display_image.astype(int) - 1, 0, 255)
    assert same_drawing(first, run_record(shifted))  # one gray level apart: a rounding, not a stroke
    dotted = interrogation()
    dotted.sketch.display_image[300:304, 300:304] = 0
    assert not same_drawing(first, run_record(dotted))  # one small dot more is another drawing
