"""The Gradio Blocks: layout, wiring of events to handlers, the API endpoints and launch options."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gradio as gr

from outlyne.config import REPO_ROOT
from outlyne.pipeline import (
    Pipeline,
)
from outlyne.search.types import SAFESEARCH_LEVELS
from outlyne.web import format as ui_format
from outlyne.web.handlers import (
    DEFAULT_MAX_RESULTS,
    MODEL_QUEUE,
    Handlers,
)
from outlyne.web.share import add_share

EXAMPLES_DIR = REPO_ROOT / "examples"
CANVAS_SIZE = (512, 512)  # shown at about the editor's width; a Quick, Draw!-like drawing space
MAX_UPLOAD = "25mb"  # a large phone photo fits; the pipeline downscales anything big anyway

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
        add_share(demo, {**inputs, **outputs}, pipeline, model_queue=MODEL_QUEUE)
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
    with gr.Row():
        search_button = gr.Button("Search", variant="primary", scale=3)
        share_button = gr.Button("Share", elem_id="outlyne-share", scale=1)
    share_url = gr.Textbox(label="Link to this drawing", elem_id="outlyne-share-url", buttons=["copy"])
    # The runs on show, as outlyne.web.share.run_record keeps them: the live scores' and the search's.
    share_drawing, share_search = gr.State(None), gr.State(None)
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
        share_button=share_button,
        share_url=share_url,
        share_drawing=share_drawing,
        share_search=share_search,
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
    live = [o["normalized"], o["label"], o["table"], o["query"], o["timings"], i["share_drawing"]]
    results = [o["output_tabs"], *live[:4], o["status"], o["gallery"], o["sources"], o["timings"]]
    results.append(i["share_search"])
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
