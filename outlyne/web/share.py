"""Share links: a Share button that stores the current run and shows a URL which reopens it.

Why not Gradio's own deep links (`gr.DeepLinkButton`)? They save every component's value of the session
under Gradio's upload folder: the Sketchpad's layers (the person's own strokes, or an uploaded photo) with
server paths inside, unbounded and never evicted, under a content hash. Shares here keep only what the
page needs to show the run again (see share_store.py), under caps, with random ids.

The page talks to this module through two small interfaces, so a new layout only has to keep them:
- capture: the handlers put `run_record(interrogation or outcome)` into a `gr.State` each time they show
  a run (`share_drawing` for live scoring, `share_search` for searches); Share stores what `choose_run`
  picks from the two (server-side state: a visitor cannot forge a share).
- restore: `restore_values` fills whichever of the page's known components exist (RESTORED) when the
  page opens with `?share=<id>`; the drawing becomes the Sketchpad's background, ready to draw on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from gradio import route_utils

from outlyne.errors import EmptySketch, OutlyneError, ShareUnavailable
from outlyne.pipeline import InterrogateOptions, Interrogation, Pipeline, SearchOptions, SearchOutcome
from outlyne.web import format as ui_format
from outlyne.web.share_store import (
    SharedRun,
    ShareLimits,
    ShareStore,
    resolve_results,
    shareable_results,
    sketch_png,
)

SHARE_PARAM = "share"  # the query parameter: <page>/?share=<id>
SHARE_QUEUE = "share"  # its own concurrency lane: opening a link never waits behind a model run

# Copies the link once the server has filled the field. Browsers allow it only on https or localhost and
# shortly after a click; elsewhere the link is still there to copy by hand, so a refusal is ignored.
COPY_LINK_JS = """
(url) => {
  if (url && navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(url).catch(() => {});
  }
}
"""

# Page components a share restores (the names of page.py's component dict) and what each one shows.
RESTORED = ("sketch", "normalized", "label", "table", "query", "status", "gallery", "sources", "output_tabs")


# -- capture ------------------------------------------------------------------------------------------


def run_record(run: Interrogation | SearchOutcome | None) -> SharedRun | None:
    """What Share would store for a run the page shows (None: nothing to share). Cheap enough for every
    stroke: the sketch becomes a small PNG, everything else is a few hundred bytes of metadata."""
    if run is None:
        return None
    if isinstance(run, SearchOutcome):
        interrogation = run.interrogation
        if interrogation is None:  # a typed query on an empty canvas: no drawing to share
            return None
        return _record(interrogation, results=tuple(run.results), backend=run.backend, reranked=run.reranked)
    return _record(run)


def _record(interrogation: Interrogation, **search: Any) -> SharedRun:
    return SharedRun(
        sketch_png=sketch_png(interrogation.sketch.display_image),
        concepts=tuple(interrogation.concepts),
        query=interrogation.query,
        searched=bool(search),
        **search,
    )


def choose_run(drawing: SharedRun | None, search: SharedRun | None) -> SharedRun | None:
    """What Share stores, from the page's two records: the latest live scoring of the drawing and the
    latest search. The search when it was made for the drawing on show (live scoring of the last stroke
    can finish after Search: same drawing, so the results still belong to it) or when nothing was drawn
    (an example was searched); the drawing alone when it changed after the search."""
    if drawing is None or (search is not None and same_drawing(drawing, search)):
        return search
    return drawing


def same_drawing(first: SharedRun, second: SharedRun) -> bool:
    """Two records of one drawing: the same normalized sketch, but for faint pixels (two encodings of one
    canvas may differ by a rounding; a new stroke, even a dot, changes some pixels by far more)."""
    if first.sketch_png == second.sketch_png:
        return True
    try:
        a, b = first.sketch_image().astype(np.int16), second.sketch_image().astype(np.int16)
    except OutlyneError:
        return False
    return a.shape == b.shape and int(np.count_nonzero(np.abs(a - b) > 32)) == 0


# -- the wiring ---------------------------------------------------------------------------------------


class Sharing:
    """Stores runs and opens them again, for one pipeline (its cache folder, caps and gallery)."""

    def __init__(self, pipeline: Pipeline, store: ShareStore | None = None) -> None:
        config = pipeline.config
        self.pipeline = pipeline
        self.gallery: Path | None = config.local_search_folder
        self.store = store or ShareStore(config.cache_dir / "shares", ShareLimits.from_config(config))

    def save(self, run: SharedRun) -> str:
        """Store a run, its local files as gallery ids (never paths); returns the new id."""
        return self.store.save(dataclasses.replace(run, results=shareable_results(run.results, self.gallery)))

    # -- events -----------------------------------------------------------------------------------------

    def make_share_link(
        self, drawing: SharedRun | None, search: SharedRun | None, request: gr.Request
    ) -> str:
        run = choose_run(drawing, search)
        if run is None:
            raise gr.Error("Draw something first: there is nothing to share yet.", print_exception=False)
        try:
            return share_url(request, self.save(run))
        except OutlyneError as error:
            raise gr.Error(str(error), print_exception=False) from None

    def api_share(self, image: Any, request: gr.Request) -> str:
        """API `share`: an image file in, a link out. The image is interrogated and searched exactly as
        the `search` endpoint does, and the link opens that run."""
        try:
            if image is None:
                raise EmptySketch()
            outcome = self.pipeline.search(
                image,
                options=SearchOptions(),
                interrogate_options=InterrogateOptions(top_k=self.pipeline.config.top_k),
            )
            run = run_record(outcome)
            assert run is not None  # an image was given, so the outcome has an interrogation
            return share_url(request, self.save(run))
        except OutlyneError as error:
            raise gr.Error(str(error), print_exception=False) from None

    def open_shared(self, components: Mapping[str, Any], request: gr.Request) -> dict[Any, Any]:
        """On page load: the run behind `?share=<id>`, or nothing (a plain page) without the parameter.
        An unusable id leaves the normal page and says so in one sentence."""
        share_id = dict(request.query_params).get(SHARE_PARAM)
        if share_id is None:
            return {}
        try:
            run = self.store.load(share_id)
            values = restore_values(run, components, self.gallery)
        except OutlyneError as error:  # ShareUnavailable, or a damaged sketch (BadImage)
            gr.Warning(str(error) if isinstance(error, ShareUnavailable) else str(ShareUnavailable()))
            return {}
        if "share_url" in components:
            values[components["share_url"]] = share_url(request, share_id)
        if "share_search" in components:
            values[components["share_search"]] = run  # Share again without redrawing
        return values


def restore_values(run: SharedRun, components: Mapping[str, Any], gallery: Path | None) -> dict[Any, Any]:
    """{component: value} for the page's known components (RESTORED) that exist in `components`."""
    sketch = run.sketch_image()
    results = resolve_results(run.results, gallery)
    outcome = SearchOutcome(
        interrogation=None,
        query=run.query,
        results=results,
        backend=run.backend,
        reranked=run.reranked,
        final=True,
    )
    values = {
        # The drawing as the editor's background: it shows at once, and new strokes go on top of it.
        "sketch": {"background": sketch, "layers": [], "composite": sketch},
        "normalized": sketch,
        "label": ui_format.concept_label_value(run.concepts),
        "table": ui_format.concept_table(run.concepts),
        "query": run.query,
        "status": f"Shared run: {ui_format.search_status(outcome)}" if run.searched else "",
        "gallery": ui_format.gallery_items(results),
        "sources": ui_format.sources_markdown(results),
        "output_tabs": gr.Tabs(selected="results" if run.searched else "concepts"),
    }
    return {components[name]: values[name] for name in RESTORED if name in components}


def share_url(request: gr.Request, share_id: str) -> str:
    """<the page's public URL>/?share=<id>. Behind a proxy (a Hugging Face Space) Gradio's own root-URL
    logic follows the X-Forwarded-* headers; the API path of this request is not part of the page's URL."""
    http_request = request.request
    path = http_request.url.path
    api_path = path[path.find("/gradio_api/") :] if "/gradio_api/" in path else ""
    root = route_utils.get_root_url(
        request=http_request, route_path=api_path, root_path=http_request.scope.get("root_path") or None
    )
    return f"{root}/?{SHARE_PARAM}={share_id}"


def add_share(
    demo: gr.Blocks, components: Mapping[str, Any], pipeline: Pipeline, *, model_queue: str
) -> Sharing:
    """Wire Share into a page built inside `demo`. `components` are the page's components by name; it
    needs `share_button`, `share_url`, and two States the handlers fill with `run_record`: `share_drawing`
    (live scoring) and `share_search` (searches); it restores whichever of RESTORED it has. Also adds
    the API endpoint `share`, in the encoder's concurrency group `model_queue` (it runs a whole search)."""
    sharing = Sharing(pipeline)
    private: dict[str, Any] = dict(api_visibility="private", concurrency_id=SHARE_QUEUE)
    restored = [components[name] for name in (*RESTORED, "share_url", "share_search") if name in components]

    def open_shared(request: gr.Request) -> dict[Any, Any]:
        # Gradio reads only a non-empty dict as {component: value}: a plain page skips every output.
        return sharing.open_shared(components, request) or {output: gr.skip() for output in restored}

    demo.load(open_shared, None, restored, show_progress="hidden", **private)
    records = [components["share_drawing"], components["share_search"]]
    components["share_button"].click(
        sharing.make_share_link, records, components["share_url"], **private
    ).success(None, components["share_url"], None, js=COPY_LINK_JS, **private)

    with gr.Column(visible=False):
        image = gr.File(label="image", file_types=["image"], type="filepath")
        link = gr.Textbox(label="url")
    gr.on([], sharing.api_share, image, link, api_name="share", concurrency_id=model_queue)
    return sharing
