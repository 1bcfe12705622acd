"""Outlyne's web page and API: Gradio only. The work happens in outlyne.pipeline.

`build_demo(pipeline)` wires one shared, read-only pipeline into a Blocks page; `python app.py` builds the
pipeline from OUTLYNE_* variables and serves it on 0.0.0.0:7860 (GRADIO_SERVER_PORT honoured).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from outlyne import ui_format
from outlyne.commands.common import progress_to_stderr
from outlyne.concepts import parse_extra_concepts
from outlyne.errors import EmptySketch, OutlyneError
from outlyne.pipeline import (
    InterrogateOptions,
    Interrogation,
    Pipeline,
    SearchOptions,
    SearchOutcome,
    get_pipeline,
)
from outlyne.search import SAFESEARCH_LEVELS

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
DEFAULT_MAX_RESULTS = SearchOptions().max_results
CANVAS_SIZE = (512, 512)  # shown at about the editor's width; a Quick, Draw!-like drawing space
MAX_UPLOAD = "25mb"  # a large phone photo fits; the pipeline downscales anything big anyway
MODEL_QUEUE = "pipeline"  # the concurrency group of every event that runs the encoder

# Gradio 6 opens the editor with the "image" tool active: the canvas shows "select the draw tool to start"
# and ignores strokes until the brush icon is clicked, and "Clear canvas" puts it back in that state. So
# the page clicks the brush for the person once the editor has rendered, and again after each clear (a
# short delay lets the editor finish its own reset first).
SELECT_BRUSH_JS = """
() => {
  const deadline = Date.now() + 15000;
  const pick = () => {
    const editor = document.querySelector("#outlyne-sketch");
    // The label is translated with the page; the first round tool button is the brush in any language.
    const brush = editor && (editor.querySelector('button[aria-label="Brush"]')
      || editor.querySelector("button.quite-round"));
    if (brush) { brush.click(); return; }
    if (Date.now() < deadline) setTimeout(pick, 100);
  };
  setTimeout(pick, 200);
}
"""

# Small print for the timings line and a canvas that looks like paper.
CSS = """
#outlyne-timings { color: var(--body-text-color-subdued); }
#outlyne-status p { margin: 0; }
"""


def serving_concurrency(pipeline: Pipeline) -> int:
    """How many requests run at once; every model-using event shares this one limit.

    The encoder is compiled with PERFORMANCE_HINT=LATENCY, for which OpenVINO's optimal number of infer
    requests is 1: one inference already spreads over every core it was given, so two inferences at once
    only make each slower. What overlaps usefully is waiting on the network (the image search, thumbnail
    downloads), which a second worker covers while the first computes. Hence 1 + 1 = 2; more would queue
    CPU work inside OpenVINO instead of in Gradio's queue, where people can see their position.
    """
    model_requests = 1  # PERFORMANCE_HINT=LATENCY in outlyne.encoder
    network_overlap = 1 if pipeline.backend is not None else 0
    return model_requests + network_overlap


class Handlers:
    """The event handlers, bound to one pipeline. They read it, never change it: every per-request choice
    (top-K, extra concepts, safe search...) travels as an options object."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    # -- options ----------------------------------------------------------------------------------------

    def interrogate_options(self, top_k: float, extra_text: str, *, warn: bool) -> InterrogateOptions:
        """Options for one request. Unusable extra concepts are left out (with a warning when the person
        asked for something, not on every stroke)."""
        try:
            extra = parse_extra_concepts(extra_text)
        except OutlyneError as error:
            if warn:
                gr.Warning(f"Your own concepts were not used: {error}")
            extra = ()
        return InterrogateOptions(top_k=int(top_k), extra_concepts=extra)

    @staticmethod
    def search_options(safesearch: str, max_results: float, rerank: bool) -> SearchOptions:
        return SearchOptions(max_results=int(max_results), safesearch=safesearch, rerank=bool(rerank))

    # -- live scoring while drawing ---------------------------------------------------------------------

    def live_scores(self, image: Any, top_k: float, extra_text: str) -> tuple[Any, ...]:
        """Scores for the current drawing; an empty canvas (just cleared) simply clears the tabs."""
        try:
            options = self.interrogate_options(top_k, extra_text, warn=False)
            interrogation = self.pipeline.interrogate(image, options)
        except EmptySketch:
            return empty_interrogation_values()
        except OutlyneError as error:  # e.g. an uploaded file that is not an image
            gr.Warning(str(error))
            return empty_interrogation_values()
        return interrogation_values(interrogation)

    def check_extra_concepts(self, extra_text: str) -> None:
        """Tell the person at once when the "your own concepts" text cannot be used."""
        self.interrogate_options(1, extra_text, warn=True)

    # -- search -----------------------------------------------------------------------------------------

    def search(
        self,
        source: str,
        sketch: Any,
        upload: Any,
        top_k: float,
        extra_text: str,
        safesearch: str,
        max_results: float,
        rerank: bool,
    ) -> Iterator[tuple[Any, ...]]:
        """Interrogate, show that at once, then the engine's results, then the re-ranked ones."""
        yield from self._interrogate_and_search(
            None, source, sketch, upload, top_k, extra_text, safesearch, max_results, rerank
        )

    def search_text(
        self,
        query: str,
        source: str,
        sketch: Any,
        upload: Any,
        top_k: float,
        extra_text: str,
        safesearch: str,
        max_results: float,
        rerank: bool,
    ) -> Iterator[tuple[Any, ...]]:
        """Search with the person's edited query; the drawing (when there is one) still re-ranks."""
        query = (query or "").strip()
        if not query:
            raise gr.Error("Type a query first: the query box is empty.", print_exception=False)
        yield from self._interrogate_and_search(
            query, source, sketch, upload, top_k, extra_text, safesearch, max_results, rerank
        )

    def _interrogate_and_search(
        self,
        query: str | None,
        source: str,
        sketch: Any,
        upload: Any,
        top_k: float,
        extra_text: str,
        safesearch: str,
        max_results: float,
        rerank: bool,
    ) -> Iterator[tuple[Any, ...]]:
        """Shared by both buttons. With a typed query an empty canvas is fine: results are then re-ranked
        against the query's own embedding; without one it is the "Draw something first" error."""
        image = upload if source == "upload" else sketch
        try:
            interrogation: Interrogation | None = self.pipeline.interrogate(
                image, self.interrogate_options(top_k, extra_text, warn=True)
            )
        except EmptySketch as error:
            if query is None:
                raise gr.Error(str(error), print_exception=False) from None
            interrogation = None
        except OutlyneError as error:
            raise gr.Error(str(error), print_exception=False) from None
        shown_query = query if query is not None else interrogation.query
        yield searching_values(shown_query, interrogation, self.pipeline)
        yield from self._stream(
            self.pipeline.search_stream(
                query=query,
                interrogation=interrogation,
                options=self.search_options(safesearch, max_results, rerank),
            )
        )

    def _stream(self, outcomes: Iterator[SearchOutcome]) -> Iterator[tuple[Any, ...]]:
        try:
            for outcome in outcomes:
                if outcome.warning:  # the first three tabs stay filled; say why the gallery is empty
                    gr.Warning(outcome.warning)
                yield outcome_values(outcome)
        except OutlyneError as error:
            raise gr.Error(str(error), print_exception=False) from None

    # -- API: image file in, JSON out ------------------------------------------------------------------

    def api_interrogate(self, image: Any, top_k: float | None) -> dict[str, Any]:
        """The top-K concepts with probabilities and cosines, the generated query, the ink's bounding box
        and per-stage timings."""
        options = InterrogateOptions(top_k=int(top_k or self.pipeline.config.top_k))
        return self._api_call(lambda: self.pipeline.interrogate(require_image(image), options).to_json())

    def api_search(self, image: Any, top_k: float | None, max_results: float | None) -> dict[str, Any]:
        """Everything `interrogate` returns, plus the search results (best first) and, when the web search
        failed, a `warning` saying why."""
        interrogate_options = InterrogateOptions(top_k=int(top_k or self.pipeline.config.top_k))
        options = SearchOptions(max_results=int(max_results or DEFAULT_MAX_RESULTS))
        return self._api_call(
            lambda: self.pipeline.search(
                require_image(image), options=options, interrogate_options=interrogate_options
            ).to_json()
        )

    @staticmethod
    def _api_call(call: Any) -> dict[str, Any]:
        try:
            return ui_format.json_safe(call())
        except OutlyneError as error:
            raise gr.Error(str(error), print_exception=False) from None


def require_image(image: Any) -> Any:
    """API callers may send nothing at all; that is the same mistake as an empty canvas."""
    if image is None:
        raise EmptySketch()
    return image


# -- output values, in the order of `Page.interrogation_outputs` / `Page.search_outputs` ---------------


def empty_interrogation_values() -> tuple[Any, ...]:
    return None, None, [], "", ""


def interrogation_values(interrogation: Interrogation) -> tuple[Any, ...]:
    """normalized image, concept bars, raw-score rows, query, timings."""
    return (
        interrogation.sketch.display_image,
        ui_format.concept_label_value(interrogation.concepts),
        ui_format.concept_table(interrogation.concepts),
        interrogation.query,
        ui_format.timings_markdown(interrogation.timings_ms),
    )


def searching_values(query: str, interrogation: Interrogation | None, pipeline: Pipeline) -> tuple[Any, ...]:
    """The moment between pressing Search and the first results: Results tab forward, gallery emptied."""
    if interrogation is not None:
        normalized, label, table, _, timings = interrogation_values(interrogation)
    else:
        normalized, label, table, _, timings = empty_interrogation_values()
    backend = pipeline.backend.name if pipeline.backend else "none"
    status = f'Searching {ui_format.backend_name(backend)} for "{query}"…' if backend != "none" else ""
    return (gr.Tabs(selected="results"), normalized, label, table, query, status, [], "", timings)


def outcome_values(outcome: SearchOutcome) -> tuple[Any, ...]:
    interrogation = outcome.interrogation
    if interrogation is not None:
        normalized, label, table, _, _ = interrogation_values(interrogation)
    else:
        normalized, label, table, _, _ = empty_interrogation_values()
    return (
        gr.Tabs(selected="results"),
        normalized,
        label,
        table,
        outcome.query,
        ui_format.search_status(outcome),
        ui_format.gallery_items(outcome.results),
        ui_format.sources_markdown(outcome.results),
        ui_format.timings_markdown(outcome.timings_ms),
    )


# -- the page -----------------------------------------------------------------------------------------


def example_files() -> list[Path]:
    return sorted(EXAMPLES_DIR.glob("*.png"))


def build_demo(pipeline: Pipeline) -> gr.Blocks:
    handlers = Handlers(pipeline)
    with gr.Blocks(title="Outlyne", analytics_enabled=False) as demo:
        gr.Markdown(
            "# Outlyne\nDraw something. Outlyne says what it looks like, and why, then finds images "
            "that look like it."
        )
        source = gr.State("sketch")  # which input tab Search reads: "sketch" or "upload"
        with gr.Row(equal_height=False):
            with gr.Column(scale=5, min_width=340):
                inputs = _input_panel(pipeline)
            with gr.Column(scale=6, min_width=340):
                outputs = _output_panel()
        # The API first: private UI events still take names, and "search" must be the API's.
        _api_endpoints(handlers, pipeline)
        _wire_events(demo, handlers, source, inputs, outputs)
    return demo


def _input_panel(pipeline: Pipeline) -> dict[str, Any]:
    with gr.Tabs(selected="sketch") as input_tabs:
        with gr.Tab("Sketch", id="sketch") as sketch_tab:
            sketch = gr.Sketchpad(
                label="Sketch",
                elem_id="outlyne-sketch",
                type="numpy",
                image_mode="RGBA",
                # Square paper that fills the editor; a thin black pen, no colour choice (the model sees
                # line drawings), no layers and no crop/resize tools to get lost in.
                canvas_size=CANVAS_SIZE,
                fixed_canvas=True,
                height=600,
                brush=gr.Brush(default_size=4, colors=["#000000"], color_mode="fixed"),
                eraser=gr.Eraser(default_size=12),
                layers=False,
                transforms=(),
                buttons=["download"],
            )
        with gr.Tab("Upload", id="upload") as upload_tab:
            upload = gr.Image(
                label="Upload a drawing or a photo",
                sources=["upload", "clipboard"],
                type="numpy",
                image_mode="RGBA",
                height=600,
            )
    search_button = gr.Button("Search", variant="primary")
    with gr.Accordion("Settings", open=False):
        top_k = gr.Slider(1, 20, value=pipeline.config.top_k, step=1, label="Concepts to show (top-K)")
        max_results = gr.Slider(4, 60, value=DEFAULT_MAX_RESULTS, step=1, label="Number of results")
        safesearch = gr.Radio(list(SAFESEARCH_LEVELS), value="moderate", label="Safe search")
        rerank = gr.Checkbox(value=True, label="Re-rank results by similarity to the drawing")
        extra = gr.Textbox(
            label="Add your own concepts (this session only)",
            placeholder="comma-separated, e.g. teapot, lighthouse, roller coaster",
            lines=2,
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
        input_tabs=input_tabs,
        sketch_tab=sketch_tab,
        upload_tab=upload_tab,
        sketch=sketch,
        upload=upload,
        search_button=search_button,
        top_k=top_k,
        max_results=max_results,
        safesearch=safesearch,
        rerank=rerank,
        extra=extra,
        examples=examples,
    )


def _output_panel() -> dict[str, Any]:
    # Concept scores first: while drawing, they are what changes with every stroke.
    with gr.Tabs(selected="concepts") as output_tabs:
        with gr.Tab("Normalized sketch", id="normalized"):
            normalized = gr.Image(
                label="What the model saw",
                elem_id="outlyne-normalized",
                type="numpy",
                interactive=False,
                height=420,
                buttons=[],
            )
        with gr.Tab("Concept scores", id="concepts"):
            label = gr.Label(label="What it looks like (probability per concept)", elem_id="outlyne-concepts")
            with gr.Accordion("Raw scores", open=False):
                table = gr.Dataframe(
                    headers=ui_format.CONCEPT_TABLE_HEADERS,
                    datatype=["str", "str", "number", "number"],
                    interactive=False,
                    show_label=False,
                )
        with gr.Tab("Query", id="query"):
            query = gr.Textbox(
                label="Search query (edit it if you like)", elem_id="outlyne-query", lines=2, interactive=True
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
        output_tabs=output_tabs,
        normalized=normalized,
        label=label,
        table=table,
        query=query,
        query_button=query_button,
        status=status,
        gallery=gallery,
        sources=sources,
        timings=timings,
    )


def _wire_events(
    demo: gr.Blocks, handlers: Handlers, source: gr.State, i: dict[str, Any], o: dict[str, Any]
) -> None:
    # The UI's own events are private: the API is exactly the two endpoints of _api_endpoints.
    private: dict[str, Any] = dict(api_visibility="private")
    # Every event that runs the model counts against the same queue limit (see serving_concurrency).
    model: dict[str, Any] = dict(concurrency_id=MODEL_QUEUE, **private)
    live = [o["normalized"], o["label"], o["table"], o["query"], o["timings"]]
    results = [o["output_tabs"], *live[:4], o["status"], o["gallery"], o["sources"], o["timings"]]
    settings = [i["top_k"], i["extra"]]
    search_settings = [i["safesearch"], i["max_results"], i["rerank"]]
    both_images = [source, i["sketch"], i["upload"]]

    demo.load(None, js=SELECT_BRUSH_JS, **private)
    i["sketch"].clear(None, js=SELECT_BRUSH_JS, **private)
    i["sketch_tab"].select(lambda: "sketch", outputs=source, queue=False, **private)
    i["upload_tab"].select(lambda: "upload", outputs=source, queue=False, **private)

    # Live scores while drawing: only the latest stroke counts, no spinner, no web search. An upload
    # scores once; `.upload` rather than `.change` so a clicked example (searched right away below) does
    # not also start a scoring run that would race it for the same outputs.
    for trigger, image in ((i["sketch"].change, i["sketch"]), (i["upload"].upload, i["upload"])):
        trigger(
            handlers.live_scores,
            [image, *settings],
            live,
            trigger_mode="always_last",
            show_progress="hidden",
            **model,
        )
    i["extra"].blur(handlers.check_extra_concepts, i["extra"], None, show_progress="hidden", **private)

    search_inputs = [*both_images, *settings, *search_settings]
    gr.on(
        [i["search_button"].click],
        handlers.search,
        search_inputs,
        results,
        show_progress="minimal",
        **model,
    )
    gr.on(
        [o["query_button"].click, o["query"].submit],
        handlers.search_text,
        [o["query"], *search_inputs],
        results,
        show_progress="minimal",
        **model,
    )
    if i["examples"] is not None:
        # One click: the example goes into the Upload tab, which comes forward, and is searched.
        i["examples"].load_input_event.then(
            lambda: (gr.Tabs(selected="upload"), "upload"),
            outputs=[i["input_tabs"], source],
            queue=False,
            **private,
        ).then(handlers.search, search_inputs, results, show_progress="minimal", **model)


def _api_endpoints(handlers: Handlers, pipeline: Pipeline) -> None:
    """`interrogate` and `search`: an image file in (gradio_client `handle_file(path)`), JSON out.

    Real (hidden) components rather than `gr.api`, so the uploaded file goes through Gradio's upload
    checks (gr.api hands over the raw payload, path unchecked). A gr.File rather than a gr.Image: the
    pipeline decodes the file itself, so a corrupt or oversized file gets its plain-words BadImage
    message instead of Gradio's decoder traceback.
    """
    with gr.Column(visible=False):
        image = gr.File(label="image", file_types=["image"], type="filepath")
        top_k = gr.Number(value=pipeline.config.top_k, precision=0, label="top_k", minimum=1, maximum=50)
        max_results = gr.Number(
            value=DEFAULT_MAX_RESULTS, precision=0, label="max_results", minimum=1, maximum=100
        )
        result = gr.JSON(label="result")
    shared = dict(concurrency_id=MODEL_QUEUE)
    gr.on([], handlers.api_interrogate, [image, top_k], result, api_name="interrogate", **shared)
    gr.on([], handlers.api_search, [image, top_k, max_results], result, api_name="search", **shared)


def launch_options(pipeline: Pipeline) -> dict[str, Any]:
    """Where Gradio may read files from: the examples and, for the local backend, the gallery folder
    (its thumbnails are file paths)."""
    allowed = [str(EXAMPLES_DIR)]
    if pipeline.config.local_search_folder is not None:
        allowed.append(str(pipeline.config.local_search_folder.resolve()))
    return dict(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        allowed_paths=allowed,
        max_file_size=MAX_UPLOAD,
        css=CSS,
        show_error=True,
    )


def main() -> None:
    # Built once, before the first request, and shared by every session. Export or concept-embedding
    # progress (a cold cache) goes to stderr, so a slow first start says what it is doing.
    pipeline = get_pipeline(progress=progress_to_stderr)
    demo = build_demo(pipeline)
    demo.queue(default_concurrency_limit=serving_concurrency(pipeline)).launch(**launch_options(pipeline))


if __name__ == "__main__":
    main()
