"""The page's event handlers and the values they put into the page's components."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gradio as gr

from outlyne.concepts.file import parse_extra_concepts
from outlyne.errors import EmptySketch, OutlyneError
from outlyne.pipeline import (
    InterrogateOptions,
    Interrogation,
    Pipeline,
    SearchOptions,
    SearchOutcome,
)
from outlyne.web import format as ui_format
from outlyne.web.share import run_record

DEFAULT_MAX_RESULTS = SearchOptions().max_results
MODEL_QUEUE = "pipeline"  # the concurrency group of every event that runs the encoder


def serving_concurrency(pipeline: Pipeline) -> int:
    """How many requests run at once; every model-using event shares this one limit.

    The encoder is compiled with PERFORMANCE_HINT=LATENCY, for which OpenVINO's optimal number of infer
    requests is 1: one inference already spreads over every core it was given, so two inferences at once
    only make each slower. What overlaps usefully is waiting on the network (the image search, thumbnail
    downloads), which a second worker covers while the first computes. Hence 1 + 1 = 2; more would queue
    CPU work inside OpenVINO instead of in Gradio's queue, where people can see their position.
    """
    model_requests = 1  # PERFORMANCE_HINT=LATENCY in outlyne.model.encoder
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
    return None, None, [], "", "", None


def interrogation_values(interrogation: Interrogation) -> tuple[Any, ...]:
    """normalized image, concept bars, raw-score rows, query, timings, what Share would store."""
    return (
        interrogation.sketch.display_image,
        ui_format.concept_label_value(interrogation.concepts),
        ui_format.concept_table(interrogation.concepts),
        interrogation.query,
        ui_format.timings_markdown(interrogation.timings_ms),
        run_record(interrogation),
    )


def searching_values(query: str, interrogation: Interrogation | None, pipeline: Pipeline) -> tuple[Any, ...]:
    """The moment between pressing Search and the first results: Results tab forward, gallery emptied."""
    if interrogation is not None:
        normalized, label, table, _, timings, run = interrogation_values(interrogation)
    else:
        normalized, label, table, _, timings, run = empty_interrogation_values()
    backend = pipeline.backend.name if pipeline.backend else "none"
    status = f'Searching {ui_format.backend_name(backend)} for "{query}"…' if backend != "none" else ""
    return (gr.Tabs(selected="results"), normalized, label, table, query, status, [], "", timings, run)


def outcome_values(outcome: SearchOutcome) -> tuple[Any, ...]:
    interrogation = outcome.interrogation
    if interrogation is not None:
        normalized, label, table, *_ = interrogation_values(interrogation)
    else:
        normalized, label, table, *_ = empty_interrogation_values()
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
        run_record(outcome),
    )
