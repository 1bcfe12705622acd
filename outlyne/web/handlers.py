"""The page's event handlers: small typed requests in, small typed views out.

The handlers know the pipeline, not the page: `Drawing` and `Settings` say what the person is showing and
has chosen; `ScoresView`, `SearchView` and `WhyView` say what to show. web/page.py reads components into
the requests and writes the views into components. The pipeline is read, never changed: every per-request
choice travels as an options object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import gradio as gr
import numpy as np

from outlyne.concepts.file import parse_extra_concepts
from outlyne.config import Config
from outlyne.errors import EmptySketch, OutlyneError
from outlyne.pipeline import (
    InterrogateOptions,
    Interrogation,
    Pipeline,
    SearchOptions,
    SearchOutcome,
)
from outlyne.search.types import SAFESEARCH_LEVELS, SearchResult
from outlyne.sketch import explain
from outlyne.web import format as ui_format
from outlyne.web.canvas import sketch_image
from outlyne.web.startup import Preparation

DEFAULT_MAX_RESULTS = SearchOptions().max_results
MAX_TOP_K = 20
MAX_RESULTS = 60

T = TypeVar("T")


def serving_concurrency(config: Config) -> int:
    """How many requests run at once; every model-using event shares this one limit.

    The encoder is compiled with PERFORMANCE_HINT=LATENCY, for which OpenVINO's optimal number of infer
    requests is 1: one inference already spreads over every core it was given, so two inferences at once
    only make each slower. What overlaps usefully is waiting on the network (the image search, thumbnail
    downloads), which a second worker covers while the first computes. Hence 1 + 1 = 2; more would queue
    CPU work inside OpenVINO instead of in Gradio's queue, where people can see their position.
    """
    model_requests = 1  # PERFORMANCE_HINT=LATENCY in outlyne.model.encoder
    network_overlap = 1 if config.search != "none" else 0
    return model_requests + network_overlap


# -- requests --------------------------------------------------------------------------------------------


def _bounded_int(value: Any, low: int, high: int, default: int) -> int:
    """Anyone can post any value to an event: numbers are clamped, junk becomes the default."""
    try:
        return min(high, max(low, int(value)))
    except (TypeError, ValueError, OverflowError):
        return default


@dataclass(frozen=True)
class Drawing:
    """What the person is showing: the paper (a PNG data URL, '' when blank) or an uploaded file, and the
    page's version number when the request left (echoed back; see web/live.py)."""

    source: str = "sketch"  # "sketch" | "upload"
    sketch: Any = None
    upload: str | None = None  # the uploaded file's path in Gradio's upload folder
    version: int = 0

    @classmethod
    def of(cls, source: Any, sketch: Any, upload: Any, version: Any) -> Drawing:
        return cls(
            source="upload" if source == "upload" else "sketch",
            sketch=sketch,
            upload=upload if isinstance(upload, str) else None,
            version=_bounded_int(version, 0, 2**53, 0),
        )

    def image(self) -> Any:
        """The decoded image, through the one image intake; EmptySketch when there is nothing."""
        if self.source == "upload":
            if not self.upload:
                raise EmptySketch("Upload a drawing or a photo first.")
            return self.upload  # a file path: the pipeline decodes it within the configured limits
        image = sketch_image(self.sketch)
        if image is None:
            raise EmptySketch()
        return image


@dataclass(frozen=True)
class Settings:
    top_k: int = 5
    extra_text: str = ""
    safesearch: str = "moderate"
    max_results: int = DEFAULT_MAX_RESULTS
    rerank: bool = True

    @classmethod
    def of(cls, top_k: Any, extra_text: Any, safesearch: Any, max_results: Any, rerank: Any) -> Settings:
        return cls(
            top_k=_bounded_int(top_k, 1, MAX_TOP_K, 5),
            extra_text=extra_text if isinstance(extra_text, str) else "",
            safesearch=safesearch if safesearch in SAFESEARCH_LEVELS else "moderate",
            max_results=_bounded_int(max_results, 1, MAX_RESULTS, DEFAULT_MAX_RESULTS),
            rerank=bool(rerank),
        )


# -- views -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoresView:
    """The live part of the page: scores, what the model saw, the generated query, timings."""

    version: int
    interrogation: Interrogation | None = None
    hint: str = ""

    @property
    def scores_html(self) -> str:
        concepts = self.interrogation.concepts if self.interrogation else []
        return ui_format.scores_html(concepts, self.version, hint=self.hint)

    @property
    def normalized(self) -> np.ndarray | None:
        return self.interrogation.sketch.display_image if self.interrogation else None

    @property
    def query(self) -> str:
        return self.interrogation.query if self.interrogation else ""

    @property
    def timings(self) -> str:
        return ui_format.timings_markdown(self.interrogation.timings_ms) if self.interrogation else ""


@dataclass(frozen=True)
class SearchView:
    scores: ScoresView
    query: str
    status: str
    results: list[SearchResult] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    outcome: SearchOutcome | None = None  # what the pipeline answered; None while the search starts


@dataclass(frozen=True)
class WhyView:
    image: np.ndarray | None
    caption: str


# -- handlers --------------------------------------------------------------------------------------------


def _user_error(call: Callable[[], T]) -> T:
    """Run `call`; a person's mistake (OutlyneError) becomes one plain sentence on the page."""
    try:
        return call()
    except OutlyneError as error:
        raise gr.Error(str(error), print_exception=False) from None


class Handlers:
    """The event handlers, bound to one pipeline (which may still be being prepared: web/startup.py)."""

    def __init__(self, preparation: Preparation) -> None:
        self.preparation = preparation

    @property
    def pipeline(self) -> Pipeline:
        """Waits for the first start's preparation; if it failed, every request says why in one line."""
        return _user_error(self.preparation.get)

    def interrogate_options(self, settings: Settings, *, warn: bool) -> InterrogateOptions:
        """Unusable extra concepts are left out, with a warning when the person asked for something (not
        on every stroke)."""
        try:
            extra = parse_extra_concepts(settings.extra_text)
        except OutlyneError as error:
            if warn:
                gr.Warning(f"Your own concepts were not used: {error}")
            extra = ()
        return InterrogateOptions(top_k=settings.top_k, extra_concepts=extra)

    # -- live scores ---------------------------------------------------------------------------------------

    def score(self, drawing: Drawing, settings: Settings, *, warn: bool = False) -> ScoresView:
        """Scores for what the person shows now. A blank paper clears the view; a file that is not an
        image says so once, in the view, without a pop-up per stroke."""
        try:
            interrogation = self.pipeline.interrogate(
                drawing.image(), self.interrogate_options(settings, warn=warn)
            )
        except EmptySketch:
            return ScoresView(drawing.version)
        except OutlyneError as error:
            return ScoresView(drawing.version, hint=str(error))
        return ScoresView(drawing.version, interrogation)

    # -- search ------------------------------------------------------------------------------------------

    def search(self, drawing: Drawing, settings: Settings, query: str | None = None) -> Iterator[SearchView]:
        """Interrogate, show that at once, then the engine's results, then the re-ranked ones. With a typed
        `query` an empty canvas is fine (the query's own embedding ranks); without one it is "Draw
        something first"."""
        if query is not None:
            query = query.strip()
            if not query:
                raise gr.Error("Type a query first: the query box is empty.", print_exception=False)
        interrogation: Interrogation | None
        try:
            interrogation = self.pipeline.interrogate(
                drawing.image(), self.interrogate_options(settings, warn=True)
            )
        except EmptySketch as error:
            if query is None:
                raise gr.Error(str(error), print_exception=False) from None
            interrogation = None
        except OutlyneError as error:
            raise gr.Error(str(error), print_exception=False) from None
        scores = ScoresView(drawing.version, interrogation)
        shown_query = query if query is not None else scores.query
        yield SearchView(scores, shown_query, self._searching_status(shown_query))
        outcomes = self.pipeline.search_stream(
            query=query,
            interrogation=interrogation,
            options=SearchOptions(
                max_results=settings.max_results, safesearch=settings.safesearch, rerank=settings.rerank
            ),
        )
        try:
            for outcome in outcomes:
                yield self._view(scores, outcome)
        except OutlyneError as error:
            raise gr.Error(str(error), print_exception=False) from None

    def _searching_status(self, query: str) -> str:
        if self.pipeline.backend is None:
            return ""
        return f'Searching {ui_format.backend_name(self.pipeline.backend.name)} for "{query}"…'

    @staticmethod
    def _view(scores: ScoresView, outcome: SearchOutcome) -> SearchView:
        # The status line says why a gallery is empty, in one sentence; no pop-up repeats it.
        return SearchView(
            scores,
            outcome.query,
            ui_format.search_status(outcome),
            outcome.results,
            outcome.timings_ms,
            outcome,
        )

    # -- why -----------------------------------------------------------------------------------------------

    def why(self, drawing: Drawing, settings: Settings, label: str) -> WhyView:
        """The heatmap of `label` over the normalized drawing."""
        explanation = _user_error(
            lambda: self.pipeline.explain(
                drawing.image(), label, self.interrogate_options(settings, warn=False)
            )
        )
        heatmap = explanation.heatmap
        image = explain.overlay(explanation.sketch.display_image, heatmap)
        return WhyView(image, ui_format.why_caption(heatmap))

    # -- API: image file in, JSON out ------------------------------------------------------------------

    def api_interrogate(self, image: Any, top_k: float | None) -> dict[str, Any]:
        """The top-K concepts with probabilities and cosines, the generated query, the ink's bounding box
        and per-stage timings."""
        options = InterrogateOptions(top_k=_bounded_int(top_k, 1, 50, self.pipeline.config.top_k))
        return _user_error(
            lambda: ui_format.json_safe(self.pipeline.interrogate(_api_image(image), options).to_json())
        )

    def api_search(self, image: Any, top_k: float | None, max_results: float | None) -> dict[str, Any]:
        """Everything `interrogate` returns, plus the search results (best first) and, when the web search
        failed, a `warning` saying why."""
        interrogate_options = InterrogateOptions(top_k=_bounded_int(top_k, 1, 50, self.pipeline.config.top_k))
        options = SearchOptions(max_results=_bounded_int(max_results, 1, 100, DEFAULT_MAX_RESULTS))
        return _user_error(
            lambda: ui_format.json_safe(
                self.pipeline.search(
                    _api_image(image), options=options, interrogate_options=interrogate_options
                ).to_json()
            )
        )

    def api_explain(self, image: Any, label: str | None) -> dict[str, Any]:
        """The occlusion heatmap of one concept: a grid of cosine drops (row 0 at the top), its peak cell,
        the concept's cosine and the time it took."""
        if not isinstance(label, str) or not label.strip():
            raise gr.Error("Name the concept to explain (label).", print_exception=False)
        return _user_error(
            lambda: ui_format.json_safe(self.pipeline.explain(_api_image(image), label).to_json())
        )


def _api_image(image: Any) -> Any:
    """API callers send a file path (gr.File); nothing at all is the same mistake as an empty canvas."""
    if image is None:
        raise EmptySketch()
    return image  # a file path: the pipeline decodes it within the configured limits
