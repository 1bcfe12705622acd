"""Share links: a Share button that stores the run on show and shows a URL which reopens it.

Why not Gradio's own deep links (`gr.DeepLinkButton`)? They save every component's value of the session
under Gradio's upload folder (the person's own drawing, or an uploaded photo, with server paths inside),
unbounded and never evicted, under a content hash. Shares here keep only what the page needs to show the
run again (see share_store.py), under caps, with random ids.

`Sharing` is a page extension (outlyne/web/page.py):
- capture: it keeps two server-side records of what the page shows (`ViewRecord`s), one filled by live
  scoring and one by searches, each with the page's version when its request left (web/live.py); Share
  stores what `choose_run` picks from the two. A visitor cannot forge a share: the records hold what the
  server computed, never values a browser sent back.
- restore: on page load with `?share=<id>`, the drawing goes onto the paper as its background (draw on it
  further), with the stored scores, query, results and sources; `restore_values` says what each shows.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import gradio as gr
import numpy as np
from gradio import route_utils

from outlyne.errors import EmptySketch, OutlyneError, ShareUnavailable
from outlyne.pipeline import InterrogateOptions, Interrogation, Pipeline, SearchOptions, SearchOutcome
from outlyne.web import format as ui_format
from outlyne.web.handlers import ScoresView, SearchView
from outlyne.web.lanes import NETWORK_LANE, SHARE_LANE, lane
from outlyne.web.page import Page, ViewRecord
from outlyne.web.share_store import (
    SharedRun,
    ShareLimits,
    ShareStore,
    resolve_results,
    shareable_results,
    sketch_png,
)
from outlyne.web.startup import Preparation

SHARE_PARAM = "share"  # the query parameter: <page>/?share=<id>

# Copies the link once the server has filled the field. Browsers allow it only on https or localhost and
# shortly after a click; elsewhere the link is still there to copy by hand, so a refusal is ignored.
COPY_LINK_JS = """
(url) => {
  if (url && navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(url).catch(() => {});
  }
}
"""


# -- capture ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shown:
    """A run the page showed (None: nothing shareable, e.g. a blank paper) and the page's version when
    the request that made it left (web/live.py): the larger version is the newer state of the page."""

    version: int
    run: SharedRun | None


def run_record(run: Interrogation | SearchOutcome | None) -> SharedRun | None:
    """What Share would store for a run the page shows (None: nothing to share)."""
    if run is None:
        return None
    if isinstance(run, SearchOutcome):
        if run.interrogation is None:  # a typed query on an empty canvas: no drawing to share
            return None
        search = dict(results=tuple(run.results), backend=run.backend, reranked=run.reranked)
        return _record(run.interrogation, **search)
    return _record(run)


def _record(interrogation: Interrogation, **search: Any) -> SharedRun:
    return SharedRun(
        sketch_png=sketch_png(interrogation.sketch.display_image),
        concepts=tuple(interrogation.concepts),
        query=interrogation.query,
        searched=bool(search),
        **search,
    )


def shown_scores(view: ScoresView) -> Shown:
    return Shown(view.version, run_record(view.interrogation))


def shown_search(view: SearchView) -> Shown:
    # Until the engine answers, the search shows the drawing and its scores alone.
    return Shown(view.scores.version, run_record(view.outcome or view.scores.interrogation))


def choose_run(drawing: Shown | None, search: Shown | None) -> SharedRun | None:
    """What Share stores, from the page's two records: the latest live score and the latest search.

    The search, when it is at least as new as the live score: a live score of the last stroke that
    finishes after Search was pressed carries the same version, so it never drops the results. A newer
    live score means the page changed after the search: if only a setting changed (the same drawing)
    the search still stands; if the drawing changed, the drawing alone (those results were for the old
    one), and nothing when the paper is now blank."""
    if search is None or search.run is None:
        return drawing.run if drawing else None
    if drawing is None or drawing.version <= search.version:
        return search.run
    if drawing.run is not None and same_drawing(drawing.run, search.run):
        return search.run
    return drawing.run


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


# -- restore ------------------------------------------------------------------------------------------


def restore_values(run: SharedRun, page: Page) -> dict[Any, Any]:
    """{component: value} that show a stored run on the page, as a search or a live score left it."""
    results = resolve_results(run.results)
    outcome = SearchOutcome(
        interrogation=None,
        query=run.query,
        results=results,
        backend=run.backend,
        reranked=run.reranked,
        final=True,
    )
    return {
        # The drawing as the paper's background (outlyne.web.canvas): new strokes go on top of it.
        page.sketch: run.sketch_data_url(),
        # Version 0: the page's own version before the visitor changes anything, so the view is current.
        page.concepts: ui_format.scores_html(run.concepts, 0),
        page.why: run.sketch_image(),
        page.why_caption: ui_format.WHY_HINT if run.concepts else "",
        page.query: run.query,
        page.status: f"Shared run: {ui_format.search_status(outcome)}" if run.searched else "",
        page.gallery: ui_format.gallery_items(results),
        page.sources: ui_format.sources_markdown(results),
        page.output_tabs: gr.Tabs(selected="results" if run.searched else "why"),
    }


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


# -- the extension ------------------------------------------------------------------------------------


class Sharing:
    """The Share button and link beside Search, the restore on page load, and the `share` API endpoint;
    a PageExtension (outlyne/web/page.py). Shares live under `<cache>/shares`, within the Config's caps."""

    def __init__(self, preparation: Preparation | Pipeline, store: ShareStore | None = None) -> None:
        self.preparation = (
            preparation if isinstance(preparation, Preparation) else Preparation.ready_with(preparation)
        )
        config = self.preparation.config
        self.store = store or ShareStore(config.cache_dir / "shares", ShareLimits.from_config(config))

    def save(self, run: SharedRun) -> str:
        """Store a run (web links and gallery app URLs only, never a server path); returns its new id."""
        return self.store.save(dataclasses.replace(run, results=shareable_results(run.results)))

    # -- PageExtension --------------------------------------------------------------------------------

    def render_beside_search(self) -> None:
        self.button = gr.Button("Share", elem_id="outlyne-share", scale=1)
        # The link wraps onto a line of its own under Search and Share (a min width of more than the row
        # is capped at 100 %: a link is long), and shows once there is one.
        self.link = gr.Textbox(
            label="Link to this drawing",
            elem_id="outlyne-share-url",
            buttons=["copy"],
            min_width=100_000,
            visible=False,
        )
        # Server-side records of what the page shows (see choose_run); never sent to the browser.
        self.drawing_record = gr.State(None)
        self.search_record = gr.State(None)

    def wire(self, page: Page) -> None:
        page.keep(ViewRecord(self.drawing_record, of_scores=shown_scores))
        page.keep(ViewRecord(self.search_record, of_search=shown_search))
        private: dict[str, Any] = dict(api_visibility="private", **lane(SHARE_LANE))
        records = [self.drawing_record, self.search_record]
        self.button.click(self.make_link, records, self.link, **private).success(
            None, self.link, None, js=COPY_LINK_JS, queue=False, api_visibility="private"
        )
        restored = [*restore_values_outputs(page), self.link, self.search_record]

        def open_shared(request: gr.Request) -> dict[Any, Any]:
            # Gradio reads only a non-empty dict as {component: value}: a plain page skips every output.
            return self.open_shared(page, request) or {output: gr.skip() for output in restored}

        page.demo.load(open_shared, None, restored, show_progress="hidden", **private)
        with gr.Column(visible=False):
            image = gr.File(label="image", file_types=["image"], type="filepath")
            link = gr.Textbox(label="url")
        # It runs a whole search, which waits on the network: the network lane, as `search`.
        gr.on([], self.api_share, image, link, api_name="share", **lane(NETWORK_LANE))

    # -- events -----------------------------------------------------------------------------------------

    def make_link(self, drawing: Shown | None, search: Shown | None, request: gr.Request) -> Any:
        run = choose_run(_shown(drawing), _shown(search))
        if run is None:
            raise gr.Error("Draw something first: there is nothing to share yet.", print_exception=False)
        try:
            return gr.Textbox(share_url(request, self.save(run)), visible=True)
        except OutlyneError as error:
            raise gr.Error(str(error), print_exception=False) from None

    def api_share(self, image: Any, request: gr.Request) -> str:
        """API `share`: an image file in, a link out. The image is interrogated and searched exactly as
        the `search` endpoint does by default, and the link opens that run."""
        try:
            if image is None:
                raise EmptySketch()
            pipeline = self.preparation.get()
            outcome = pipeline.search(
                image,
                options=SearchOptions(),
                interrogate_options=InterrogateOptions(top_k=pipeline.config.top_k),
            )
            run = run_record(outcome)
            if run is None:  # an image was given, so the outcome has an interrogation
                raise EmptySketch()
            return share_url(request, self.save(run))
        except OutlyneError as error:
            raise gr.Error(str(error), print_exception=False) from None

    def open_shared(self, page: Page, request: gr.Request) -> dict[Any, Any]:
        """On page load: the run behind `?share=<id>`, or nothing (a plain page) without the parameter.
        An unusable id leaves the normal page and says so in one sentence."""
        share_id = dict(request.query_params).get(SHARE_PARAM)
        if share_id is None:
            return {}
        try:
            run = self.store.load(share_id)
            values = restore_values(run, page)
        except OutlyneError as error:  # ShareUnavailable, or a damaged sketch (BadImage)
            gr.Warning(str(error) if isinstance(error, ShareUnavailable) else str(ShareUnavailable()))
            return {}
        values[self.link] = gr.Textbox(share_url(request, share_id), visible=True)
        values[self.search_record] = Shown(0, run)  # Share again without redrawing
        return values


def restore_values_outputs(page: Page) -> list[Any]:
    """The components restore_values fills, in one place for the event's outputs."""
    return [
        page.sketch,
        page.concepts,
        page.why,
        page.why_caption,
        page.query,
        page.status,
        page.gallery,
        page.sources,
        page.output_tabs,
    ]


def _shown(value: Any) -> Shown | None:
    """A record from the session's state (server-side; anything else counts as no record)."""
    return value if isinstance(value, Shown) else None
