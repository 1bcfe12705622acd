"""The Gradio Blocks: layout, wiring of events to handlers, the API endpoints and launch options.

`build_page(pipeline)` returns a `Page`: every component by name, so other panels can be wired in
without reaching into this module's layout. A panel that puts a button beside Search (the Share button)
is a `PageExtension`: its `render_beside_search()` runs inside the row that holds Search, and its
`wire(page)` once every component exists. An extension that must know what the page shows (Share stores
the run on show) registers a `ViewRecord` with `page.keep(...)`: a server-side state the page's own
events fill from their views, so it holds what the server computed, never what a browser sent back.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import gradio as gr
from starlette.middleware import Middleware

from outlyne.config import REPO_ROOT, Config
from outlyne.pipeline import Pipeline
from outlyne.search.types import SAFESEARCH_LEVELS
from outlyne.web import format as ui_format
from outlyne.web.body_limit import BodyLimit
from outlyne.web.canvas import sketch_canvas
from outlyne.web.gallery_files import gallery_route
from outlyne.web.handlers import (
    DEFAULT_MAX_RESULTS,
    MAX_RESULTS,
    MAX_TOP_K,
    Drawing,
    Handlers,
    ScoresView,
    SearchView,
    Settings,
    WhyView,
)
from outlyne.web.lanes import MODEL_LANE, NETWORK_LANE, lane
from outlyne.web.live import (
    EXAMPLE_JS,
    TOUCH_JS,
    read_inputs_js,
    score_view,
    tab_select_js,
    version_box,
)
from outlyne.web.startup import Preparation

EXAMPLES_DIR = REPO_ROOT / "examples"
REQUEST_OVERHEAD = 1_000_000  # form fields and JSON around an uploaded image

# Layout. Laptop: two columns, the paper sized so that it, the Search button and the best guess (top of
# the right column) fit in the window together. Phone: one column; the page's side padding shrinks so
# the paper spans the width, and the best guess follows the Search button, above the fold.
CSS = """
#outlyne-sketch { --outlyne-paper: min(100%, max(280px, calc(100vh - 290px))); }
#outlyne-sketch .html-container { padding: 0 !important; }
#outlyne-header h1 { font-size: 1.5rem; margin: 0; }
#outlyne-header p { margin: 0; color: var(--body-text-color-subdued); }
#outlyne-timings { color: var(--body-text-color-subdued); }
#outlyne-status p { margin: 0; }
#outlyne-why img { object-fit: contain; }
@media (max-width: 640px) {
  #outlyne-header p { display: none; }
  #outlyne-sketch { --outlyne-paper: 100%; }
  #outlyne-sketch .outlyne-tools { flex-wrap: nowrap; gap: 4px; }
  #outlyne-sketch .outlyne-tools button { padding: 4px 8px; }
  #outlyne-sketch .outlyne-tools input[type=range] { width: 64px; }
}
"""

# Gradio scopes `css` under the app's content box; the page's own side padding (32 px, which alone would
# leave a phone's paper at 84 % of the width) sits outside it, so that rule goes into <head> as is.
HEAD = """<style>
@media (max-width: 640px) { .gradio-container .main.fillable { padding-left: 4px; padding-right: 4px; } }
</style>"""


def _uploaded_path(payload: Any) -> str | None:
    path = getattr(payload, "path", None)
    return str(path) if path else None


def upload_box(**options: Any) -> gr.Image:
    """`gr.Image` whose value is the uploaded file's path, not decoded by Gradio.

    Gradio's own preprocessing opens the file with Pillow before any handler runs, so a file that is not
    an image surfaced as its internal error naming a temporary path. Here the handlers decode it through
    the one image intake (outlyne.images), which answers in one plain sentence. The override is on the
    instance: a subclass of a Gradio component makes Gradio write a .pyi stub next to this module."""
    image = gr.Image(type="filepath", **options)
    image.preprocess = _uploaded_path  # type: ignore[method-assign]
    return image


class PageExtension(Protocol):
    """A panel others add to the page (e.g. outlyne/web/share.py's Share button)."""

    def render_beside_search(self) -> None:
        """Create its components; runs inside the row that holds the Search button."""

    def wire(self, page: Page) -> None:
        """Attach its events; runs inside the Blocks once every component of `page` exists, before the
        page's own events are wired (so the ViewRecords it keeps ride on them)."""


@dataclass(frozen=True)
class ViewRecord:
    """A server-side `gr.State` that the page's own events keep up to date: `of_scores(view)` on every
    live score, `of_search(view)` on every step of a search. Either may be None: those events then leave
    the state as it is (a live score arriving after a search does not touch the search's record)."""

    state: gr.State
    of_scores: Callable[[ScoresView], Any] | None = None
    of_search: Callable[[SearchView], Any] | None = None


@dataclass
class Page:
    demo: gr.Blocks
    # input side
    input_tabs: gr.Tabs
    sketch_tab: gr.Tab
    upload_tab: gr.Tab
    source: gr.State  # "sketch" | "upload": which input tab the person is on
    sketch: gr.HTML
    upload: gr.Image
    version: gr.Number  # hidden; carries the page's version (web/live.py)
    search_button: gr.Button
    actions: gr.Row  # the row of Search (and extensions' buttons)
    top_k: gr.Slider
    max_results: gr.Slider
    safesearch: gr.Radio
    rerank: gr.Checkbox
    extra: gr.Textbox
    examples: gr.Examples | None
    # output side
    concepts: gr.HTML
    output_tabs: gr.Tabs
    why: gr.Image
    why_caption: gr.Markdown
    query: gr.Textbox
    query_button: gr.Button
    status: gr.Markdown
    gallery: gr.Gallery
    sources: gr.Markdown
    timings: gr.Markdown
    records: list[ViewRecord] = field(default_factory=list)

    def keep(self, record: ViewRecord) -> None:
        """Have the page's scoring and search events fill `record.state` (call before they are wired)."""
        self.records.append(record)

    @property
    def drawing_inputs(self) -> list[Any]:
        """Read by `drawing()`; the version comes last (the js of `read_inputs_js` fills it)."""
        return [self.source, self.sketch, self.upload, *self.settings_inputs, self.version]

    def inputs_js(self, *, query_first: bool = False) -> str:
        """The js that refreshes `drawing_inputs` at submit time (after the query box when `query_first`)."""
        shift = 1 if query_first else 0
        return read_inputs_js(
            top_k_at=shift + self.drawing_inputs.index(self.top_k),
            extra_at=shift + self.drawing_inputs.index(self.extra),
            query_first=query_first,
        )

    @property
    def settings_inputs(self) -> list[Any]:
        return [self.top_k, self.extra, self.safesearch, self.max_results, self.rerank]

    @staticmethod
    def drawing(values: Sequence[Any]) -> tuple[Drawing, Settings]:
        source, sketch, upload, top_k, extra, safesearch, max_results, rerank, version = values
        return Drawing.of(source, sketch, upload, version), Settings.of(
            top_k, extra, safesearch, max_results, rerank
        )

    @property
    def score_view_outputs(self) -> list[Any]:
        return [self.concepts, self.why, self.why_caption, self.query, self.timings]

    @property
    def score_outputs(self) -> list[Any]:
        return [*self.score_view_outputs, *(r.state for r in self.records if r.of_scores)]

    def show_score_view(self, view: ScoresView) -> dict[Any, Any]:
        return {
            self.concepts: view.scores_html,
            self.why: view.normalized,
            self.why_caption: ui_format.WHY_HINT if view.interrogation else "",
            self.query: view.query,
            self.timings: view.timings,
        }

    def show_scores(self, view: ScoresView) -> dict[Any, Any]:
        records = {r.state: r.of_scores(view) for r in self.records if r.of_scores}
        return {**self.show_score_view(view), **records}

    @property
    def search_outputs(self) -> list[Any]:
        # Not the score view: live scoring owns it (with its version check), and a search that streams
        # for seconds must not put the scores of the drawing it started from over newer ones.
        records = [r.state for r in self.records if r.of_search]
        return [self.output_tabs, self.query, self.status, self.gallery, self.sources, self.timings, *records]

    def show_search(self, view: SearchView) -> dict[Any, Any]:
        return {
            **{r.state: r.of_search(view) for r in self.records if r.of_search},
            self.output_tabs: gr.Tabs(selected="results"),
            self.query: view.query,
            self.status: view.status,
            self.gallery: ui_format.gallery_items(view.results),
            self.sources: ui_format.sources_markdown(view.results),
            self.timings: ui_format.timings_markdown(view.timings_ms) or view.scores.timings,
        }

    @property
    def why_outputs(self) -> list[Any]:
        return [self.output_tabs, self.why, self.why_caption]

    def show_why(self, view: WhyView) -> dict[Any, Any]:
        return {
            self.output_tabs: gr.Tabs(selected="why"),
            self.why: view.image,
            self.why_caption: view.caption,
        }


def example_files() -> list[Path]:
    return sorted(EXAMPLES_DIR.glob("*.png"))


def build_demo(pipeline: Pipeline | Preparation, extensions: Sequence[PageExtension] = ()) -> gr.Blocks:
    return build_page(pipeline, extensions).demo


def build_page(pipeline: Pipeline | Preparation, extensions: Sequence[PageExtension] = ()) -> Page:
    """The page for a built pipeline, or for one still being prepared (its progress is shown)."""
    preparation = pipeline if isinstance(pipeline, Preparation) else Preparation.ready_with(pipeline)
    handlers = Handlers(preparation)
    with gr.Blocks(title="Outlyne", analytics_enabled=False) as demo:
        gr.Markdown(
            "# Outlyne\nDraw something: Outlyne says what it looks like, shows why, and finds images "
            "that look like it.",
            elem_id="outlyne-header",
        )
        _preparation_banner(preparation)
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=320):
                inputs = _input_panel(extensions)
            with gr.Column(scale=1, min_width=320):
                outputs = _output_panel()
        # Below both columns (on a phone: below the scores), what people change less often.
        settings = _settings_panel(preparation.config, inputs["upload"])
        source = gr.State("sketch")
        version = version_box()
        page = Page(demo=demo, source=source, version=version, **inputs, **outputs, **settings)
        # The API first: private UI events still take names, and "search" must be the API's.
        _api_endpoints(handlers, preparation.config)
        for extension in extensions:
            extension.wire(page)
        _wire_events(page, handlers)
    return page


def _preparation_banner(preparation: Preparation) -> None:
    """While a first start prepares the model, one line says what it is doing, refreshed every second;
    it disappears once the model is ready (the timer then stops)."""
    if preparation.ready and not preparation.status():
        return
    banner = gr.Markdown(preparation.status(), elem_id="outlyne-preparing")
    timer = gr.Timer(1.0)

    def refresh() -> tuple[Any, Any]:
        status = preparation.status()
        return gr.Markdown(status, visible=bool(status)), gr.Timer(active=not preparation.ready)

    private: dict[str, Any] = dict(queue=False, show_progress="hidden", api_visibility="private")
    timer.tick(refresh, None, [banner, timer], **private)


def _input_panel(extensions: Sequence[PageExtension]) -> dict[str, Any]:
    with gr.Tabs(selected="sketch") as input_tabs:
        with gr.Tab("Sketch", id="sketch") as sketch_tab:
            sketch = sketch_canvas()
        with gr.Tab("Upload", id="upload") as upload_tab:
            upload = upload_box(
                label="Upload a drawing or a photo", sources=["upload", "clipboard"], height=420
            )
    with gr.Row(elem_id="outlyne-actions") as actions:
        search_button = gr.Button("Search", variant="primary", elem_id="outlyne-search", scale=2)
        for extension in extensions:
            extension.render_beside_search()
    return dict(
        input_tabs=input_tabs,
        sketch_tab=sketch_tab,
        upload_tab=upload_tab,
        sketch=sketch,
        upload=upload,
        search_button=search_button,
        actions=actions,
    )


def _settings_panel(config: Config, upload: gr.Image) -> dict[str, Any]:
    with gr.Accordion("Settings", open=False, elem_id="outlyne-settings"):
        top_k = gr.Slider(
            1,
            MAX_TOP_K,
            value=config.top_k,
            step=1,
            label="Concepts to show (top-K)",
            elem_id="outlyne-top-k",
        )
        max_results = gr.Slider(4, MAX_RESULTS, value=DEFAULT_MAX_RESULTS, step=1, label="Number of results")
        safesearch = gr.Radio(list(SAFESEARCH_LEVELS), value="moderate", label="Safe search")
        rerank = gr.Checkbox(value=True, label="Re-rank results by similarity to the drawing")
        extra = gr.Textbox(
            label="Add your own concepts (this session only)",
            placeholder="comma-separated, e.g. teapot, lighthouse, roller coaster (Enter applies)",
            elem_id="outlyne-extra",
            lines=1,
            max_lines=1,
        )
    examples = None
    if example_files():
        examples = gr.Examples(
            examples=[[str(path)] for path in example_files()],
            inputs=[upload],
            label="Examples (click one to search with it)",
            elem_id="outlyne-examples",
            api_visibility="private",
        )
    return dict(
        top_k=top_k,
        max_results=max_results,
        safesearch=safesearch,
        rerank=rerank,
        extra=extra,
        examples=examples,
    )


def _output_panel() -> dict[str, Any]:
    # The scores first: while drawing they are what changes with every stroke, and the best guess at
    # their top is what people look for.
    concepts = score_view()
    with gr.Tabs(selected="why") as output_tabs:
        with gr.Tab("Why", id="why"):
            why = gr.Image(
                label="What the model saw",
                elem_id="outlyne-why",
                type="numpy",
                interactive=False,
                height=360,
                buttons=[],
                show_label=False,
            )
            why_caption = gr.Markdown(elem_id="outlyne-why-caption")
        with gr.Tab("Query", id="query"):
            query = gr.Textbox(
                label="Search query (edit it, then Enter)",
                elem_id="outlyne-query",
                lines=1,
                max_lines=1,
                interactive=True,
            )
            query_button = gr.Button("Search with this text")
        with gr.Tab("Results", id="results"):
            status = gr.Markdown(elem_id="outlyne-status")
            gallery = gr.Gallery(
                label="Results",
                elem_id="outlyne-gallery",
                columns=3,
                height="auto",
                object_fit="cover",
                allow_preview=True,
                show_label=False,
            )
            with gr.Accordion("Source pages", open=False):
                sources = gr.Markdown(elem_id="outlyne-sources")
    timings = gr.Markdown(elem_id="outlyne-timings")
    return dict(
        concepts=concepts,
        output_tabs=output_tabs,
        why=why,
        why_caption=why_caption,
        query=query,
        query_button=query_button,
        status=status,
        gallery=gallery,
        sources=sources,
        timings=timings,
    )


def _wire_events(page: Page, handlers: Handlers) -> None:
    # The UI's own events are private: the API is exactly the endpoints of _api_endpoints.
    private: dict[str, Any] = dict(api_visibility="private")
    # Scoring and "why" wait for the model lane only; searches have their own lane (outlyne.web.lanes), so
    # a hanging engine never holds a slot that live scoring needs.
    model: dict[str, Any] = dict(**lane(MODEL_LANE), **private)
    network: dict[str, Any] = dict(**lane(NETWORK_LANE), **private)

    def score(*values: Any) -> dict[Any, Any]:
        drawing, settings = page.drawing(values)
        return page.show_scores(handlers.score(drawing, settings))

    def search(*values: Any) -> Iterator[dict[Any, Any]]:
        drawing, settings = page.drawing(values)
        for view in handlers.search(drawing, settings):
            yield page.show_search(view)

    def search_text(query: Any, *values: Any) -> Iterator[dict[Any, Any]]:
        drawing, settings = page.drawing(values)
        for view in handlers.search(drawing, settings, query if isinstance(query, str) else ""):
            yield page.show_search(view)

    def why(event: gr.EventData, *values: Any) -> dict[Any, Any]:
        drawing, settings = page.drawing(values)
        label = event._data.get("label") if isinstance(event._data, dict) else None
        if not isinstance(label, str):
            raise gr.Error("Tap a concept in the list to see why.", print_exception=False)
        return page.show_why(handlers.why(drawing, settings, label))

    # Live scores: one run per settled drawing (always_last drops the runs a newer change overtook), no
    # spinner (the score view dims itself; web/live.py). The paper raises the page's version itself;
    # every other trigger does it in its own browser-only step, before anything is queued.
    live: dict[str, Any] = dict(
        trigger_mode="always_last", show_progress="hidden", js=page.inputs_js(), **model
    )
    page.sketch.input(score, page.drawing_inputs, page.score_outputs, **live)

    def rescore_on(triggers: list[Any]) -> None:
        gr.on(triggers, None, js=TOUCH_JS, queue=False, **private)
        gr.on(triggers, score, page.drawing_inputs, page.score_outputs, **live)

    # Settings re-score at once; Enter in "your own concepts" applies them. `.input` (the person's own
    # changes) rather than `.change`, which Gradio also fires when the page mounts its components.
    rescore_on(
        [
            page.top_k.input,
            page.extra.submit,
            page.extra.blur,
            page.safesearch.input,
            page.max_results.input,
            page.rerank.input,
        ]
    )
    rescore_on([page.upload.upload, page.upload.clear])

    # Switching tabs scores what the new tab shows (the other tab keeps its drawing or file). Gradio also
    # fires `select` for the tab shown when the page mounts: no switch, so nothing is scored (a blank run
    # would replace the scores of a shared run the page restores at load). The check is a quick step
    # outside the queue; a hidden error is how a Gradio chain stops before its `.success` step.
    def switch_to(name: str) -> Callable[[Any], str]:
        def switch(source: Any) -> str:
            if source == name:
                raise gr.Error("Already on this tab.", visible=False, print_exception=False)
            return name

        return switch

    for tab, name in ((page.sketch_tab, "sketch"), (page.upload_tab, "upload")):
        tab.select(
            switch_to(name), page.source, page.source, js=tab_select_js(name), queue=False, **private
        ).success(score, page.drawing_inputs, page.score_outputs, **live)

    # "Why": a tap on a concept of the score view.
    page.concepts.click(why, page.drawing_inputs, page.why_outputs, show_progress="minimal", **model)

    busy: dict[str, Any] = dict(show_progress="minimal", js=page.inputs_js(), **network)
    page.search_button.click(search, page.drawing_inputs, page.search_outputs, **busy)
    gr.on(
        [page.query_button.click, page.query.submit],
        search_text,
        [page.query, *page.drawing_inputs],
        page.search_outputs,
        **{**busy, "js": page.inputs_js(query_first=True)},
    )
    if page.examples is not None:
        # One click: the example goes into the Upload tab, which comes forward, and is searched.
        page.examples.load_input_event.then(
            lambda: (gr.Tabs(selected="upload"), "upload"),
            outputs=[page.input_tabs, page.source],
            js=EXAMPLE_JS,
            queue=False,
            **private,
        ).then(score, page.drawing_inputs, page.score_outputs, **live).then(
            search, page.drawing_inputs, page.search_outputs, **busy
        )


def _api_endpoints(handlers: Handlers, config: Config) -> None:
    """`interrogate`, `search` and `explain`: an image file in (gradio_client `handle_file(path)`), JSON out.

    Real (hidden) components rather than `gr.api`, so the uploaded file goes through Gradio's upload
    checks (gr.api hands over the raw payload, path unchecked). A gr.File rather than a gr.Image: the
    pipeline decodes the file itself, so a corrupt or oversized file gets its plain-words BadImage
    message instead of Gradio's decoder traceback.
    """
    with gr.Column(visible=False):
        image = gr.File(label="image", file_types=["image"], type="filepath")
        top_k = gr.Number(value=config.top_k, precision=0, label="top_k", minimum=1, maximum=50)
        max_results = gr.Number(
            value=DEFAULT_MAX_RESULTS, precision=0, label="max_results", minimum=1, maximum=100
        )
        label = gr.Textbox(label="label", max_length=200)
        result = gr.JSON(label="result")
    model, network = lane(MODEL_LANE), lane(NETWORK_LANE)
    gr.on([], handlers.api_interrogate, [image, top_k], result, api_name="interrogate", **model)
    gr.on([], handlers.api_search, [image, top_k, max_results], result, api_name="search", **network)
    gr.on([], handlers.api_explain, [image, label], result, api_name="explain", **model)


def launch_options(config: Config) -> dict[str, Any]:
    """Gradio may read files from the examples folder only. A local gallery is served by its own route
    (outlyne.web.gallery_files: indexed images, downsized), never through `allowed_paths`. Uploads are
    limited to the configured image byte limit, and any request body to that plus room for the form."""
    return dict(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        allowed_paths=[str(EXAMPLES_DIR)],
        max_file_size=config.max_image_bytes,
        app_kwargs=dict(
            routes=[gallery_route()],
            middleware=[Middleware(BodyLimit, max_bytes=config.max_image_bytes + REQUEST_OVERHEAD)],
        ),
        css=CSS,
        head=HEAD,
        show_error=True,
    )
