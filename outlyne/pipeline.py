"""Compose the stages: normalize -> embed -> score concepts -> build query -> search -> re-rank.

One `Pipeline` holds the compiled encoder, the concept bank and the search backend. It is built once per
process (`get_pipeline`) and never mutated afterwards: everything a request may vary (top-K, extra
concepts, safe search, re-rank on/off) arrives as an options object, so concurrent Gradio sessions cannot
step on each other. Each stage is timed, and the timings travel with the result for the UI and the CLI.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from outlyne.concepts.bank import ConceptBank, ExtraConceptCache
from outlyne.concepts.file import Concept, ConceptScore
from outlyne.config import Config
from outlyne.errors import SearchUnavailable, UnknownConcept
from outlyne.model.embedder import Embedder
from outlyne.progress import Progress
from outlyne.query import build_query
from outlyne.search.backends import make_backend
from outlyne.search.chain import ask
from outlyne.search.fetch import FetchLimits
from outlyne.search.report import Attempt
from outlyne.search.rerank import rerank
from outlyne.search.types import SearchBackend, SearchRequest, SearchResult
from outlyne.sketch.explain import Heatmap, occlusion_heatmap
from outlyne.sketch.normalize import NormalizedSketch, NormalizeOptions, normalize


@dataclass(frozen=True)
class InterrogateOptions:
    top_k: int = 5
    extra_concepts: tuple[Concept, ...] = ()
    normalize: NormalizeOptions = field(default_factory=NormalizeOptions)


@dataclass(frozen=True)
class SearchOptions:
    max_results: int = 30
    safesearch: str = "moderate"
    region: str = "wt-wt"
    rerank: bool = True
    # Galleries only (backends without `supports_text_query`): how much the query's text embedding counts
    # beside the sketch's (0 = pure visual); `python -m outlyne search --text-weight` sets it.
    text_weight: float = 0.0


@dataclass(frozen=True)
class Interrogation:
    sketch: NormalizedSketch
    embedding: np.ndarray
    concepts: list[ConceptScore]
    query: str
    timings_ms: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        return {
            "concepts": [
                {"label": c.label, "group": c.group, "score": c.score, "cosine": c.cosine}
                for c in self.concepts
            ],
            "query": self.query,
            "bbox": list(self.sketch.bbox) if self.sketch.bbox else None,
            "timings_ms": self.timings_ms,
        }


@dataclass(frozen=True)
class SearchOutcome:
    interrogation: Interrogation | None
    query: str
    results: list[SearchResult]
    backend: str
    reranked: bool
    final: bool
    """False for the engine-ordered preview that precedes the re-ranked results."""
    warning: str | None = None
    """Why the web search failed, in plain words; the interrogation is still valid."""
    dropped: dict[str, int] = field(default_factory=dict)
    duplicates_collapsed: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict)
    attempts: tuple[Attempt, ...] = ()
    """Each engine the search considered: answered (from the cache?), or why not."""

    def to_json(self) -> dict[str, Any]:
        data = self.interrogation.to_json() if self.interrogation else {"concepts": [], "query": self.query}
        data.update(
            query=self.query,
            backend=self.backend,
            attempts=[a.to_json() for a in self.attempts],
            reranked=self.reranked,
            warning=self.warning,
            dropped=self.dropped,
            duplicates_collapsed=self.duplicates_collapsed,
            timings_ms=self.timings_ms,
            results=[
                {
                    "title": r.title,
                    "thumbnail": r.thumbnail,
                    "image": r.image,
                    "url": r.url,
                    "source": r.source,
                    "width": r.width,
                    "height": r.height,
                    "engine_rank": r.engine_rank,
                    "similarity": r.similarity,
                    "licence": r.licence,
                    "licence_url": r.licence_url,
                    "creator": r.creator,
                }
                for r in self.results
            ],
        )
        return data


@dataclass(frozen=True)
class Explanation:
    sketch: NormalizedSketch
    heatmap: Heatmap

    def to_json(self) -> dict[str, Any]:
        return {**self.heatmap.to_json(), "bbox": list(self.sketch.bbox) if self.sketch.bbox else None}


class StageTimer:
    """Collects wall-clock milliseconds per named stage, in the order the stages ran."""

    def __init__(self, initial: dict[str, float] | None = None) -> None:
        self.timings_ms: dict[str, float] = dict(initial or {})

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings_ms[name] = round((time.perf_counter() - start) * 1000, 3)

    def snapshot(self) -> dict[str, float]:
        total = sum(v for k, v in self.timings_ms.items() if k != "total")
        return {**self.timings_ms, "total": round(total, 3)}


class Pipeline:
    def __init__(
        self,
        config: Config,
        encoder: Embedder,
        bank: ConceptBank,
        backend: SearchBackend | None,
        *,
        fetch_limits: FetchLimits = FetchLimits(),  # noqa: B008 - frozen, so a shared default is safe
    ) -> None:
        self.config = config
        self.encoder = encoder
        self.bank = bank
        self.backend = backend
        self.fetch_limits = fetch_limits
        # Extra concepts must be embedded with the same templates as the bank, or scores won't compare.
        self._extra_concepts = ExtraConceptCache(encoder, bank.templates)

    @classmethod
    def from_config(cls, config: Config, *, progress: Progress | None = None) -> Pipeline:
        from outlyne.model.choose import choose_encoder  # imports OpenVINO only for an in-process encoder

        encoder = choose_encoder(config, progress=progress)
        bank = ConceptBank.from_file(
            encoder, config.concepts_path, cache_dir=config.cache_dir, progress=progress
        )
        return cls(config, encoder, bank, make_backend(config, encoder))

    # -- interrogation ---------------------------------------------------------------------------------

    def interrogate(self, image: Any, options: InterrogateOptions | None = None) -> Interrogation:
        """What does this drawing look like? Raises EmptySketch / BadImage for unusable input."""
        options = options or InterrogateOptions(top_k=self.config.top_k)
        timer = StageTimer()
        with timer.stage("normalize"):
            sketch = normalize(image, options.normalize, self.config.image_limits)
        with timer.stage("embed"):
            embedding = self.encoder.embed_images([sketch.model_image])[0]
        with timer.stage("score"):
            bank = self._bank_with(options.extra_concepts)
            concepts = bank.score(embedding, top_k=max(1, options.top_k))
        with timer.stage("query"):
            query = build_query(concepts)
        return Interrogation(sketch, embedding, concepts, query, timer.snapshot())

    def explain(self, image: Any, label: str, options: InterrogateOptions | None = None) -> Explanation:
        """Which parts of the drawing raise or lower `label`'s score (outlyne.sketch.explain)."""
        options = options or InterrogateOptions(top_k=self.config.top_k)
        sketch = normalize(image, options.normalize)
        bank = self._bank_with(options.extra_concepts)
        wanted = " ".join(str(label).split()).casefold()
        index = next((i for i, c in enumerate(bank.concepts) if c.label.casefold() == wanted), None)
        if index is None:
            raise UnknownConcept(f'"{str(label)[:80]}" is not one of the concepts.')
        heatmap = occlusion_heatmap(
            sketch.model_image, bank.concepts[index].label, bank.embeddings[index], self.encoder
        )
        return Explanation(sketch, heatmap)

    def _bank_with(self, extra: tuple[Concept, ...]) -> ConceptBank:
        if not extra:
            return self.bank
        return self.bank.merged(self._extra_concepts.bank_for(extra, like=self.bank))

    # -- search ----------------------------------------------------------------------------------------

    def search_stream(
        self,
        image: Any = None,
        *,
        query: str | None = None,
        interrogation: Interrogation | None = None,
        options: SearchOptions | None = None,
        interrogate_options: InterrogateOptions | None = None,
    ) -> Iterator[SearchOutcome]:
        """Yield the engine-ordered results first, then the re-ranked ones (the last item is final).

        `query` overrides the generated query (the UI's edited text); with no image at all, a text query
        alone searches and re-ranks against the query's text embedding.
        """
        options = options or SearchOptions()
        if interrogation is None and image is not None:
            interrogation = self.interrogate(image, interrogate_options)
        timer = StageTimer(interrogation.timings_ms if interrogation else None)
        timer.timings_ms.pop("total", None)
        search_query = (
            query if query is not None else (interrogation.query if interrogation else "")
        ).strip()
        backend_name = self.backend.name if self.backend else "none"
        attempts: tuple[Attempt, ...] = ()

        def outcome(results: list[SearchResult], **kwargs: Any) -> SearchOutcome:
            return SearchOutcome(
                interrogation,
                search_query,
                results,
                backend_name,
                timings_ms=timer.snapshot(),
                attempts=attempts,
                **kwargs,
            )

        if self.backend is None or (not search_query and interrogation is None):
            yield outcome([], reranked=False, final=True)
            return

        target = interrogation.embedding if interrogation else None
        # A typed query is what the person asked for: a gallery (ranked by the vector it is given, not by
        # words) is then ranked by the query's text embedding instead of the drawing's.
        typed_gallery = query is not None and not self.backend.supports_text_query
        text_embedding = None
        blend = not self.backend.supports_text_query and options.text_weight > 0
        if search_query and (target is None or typed_gallery or blend):
            with timer.stage("embed_query"):
                text_embedding = self.encoder.embed_texts([search_query])[0]
        if target is None or (typed_gallery and text_embedding is not None):
            target = text_embedding

        request = SearchRequest(
            query=search_query,
            max_results=options.max_results,
            safesearch=options.safesearch,
            region=options.region,
            image_embedding=target,
            text_embedding=text_embedding if options.text_weight > 0 else None,
            text_weight=options.text_weight,
        )
        try:
            with timer.stage("search"):
                answer = ask(self.backend, request)
        except SearchUnavailable as error:
            yield outcome([], reranked=False, final=True, warning=f"The image search failed: {error}")
            return
        results, attempts, backend_name = answer.results, answer.attempts, answer.engine or backend_name
        if answer.message:  # nothing found: which engines were tried, and what happened to each
            yield outcome([], reranked=False, final=True, warning=answer.message)
            return

        # A gallery already ranks by visual similarity; only web results need re-ranking.
        ranked = self.backend.ranks_visually
        if not options.rerank or ranked or not results or target is None:
            yield outcome(results, reranked=ranked, final=True)
            return

        yield outcome(results, reranked=False, final=False)
        with timer.stage("rerank"):
            reranked = rerank(
                results, target, self.encoder, limits=self.fetch_limits, batch_size=self.config.batch_size
            )
        if not reranked.results:
            # Every thumbnail failed (hot-link blocking, timeouts): the engine's results are still useful.
            reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(reranked.dropped.items()))
            yield outcome(
                results,
                reranked=False,
                final=True,
                dropped=reranked.dropped,
                warning=f"No thumbnail could be fetched to re-rank ({reasons}); showing the engine's order.",
            )
            return
        yield outcome(
            reranked.results,
            reranked=True,
            final=True,
            dropped=reranked.dropped,
            duplicates_collapsed=reranked.duplicates_collapsed,
        )

    def search(self, image: Any = None, **kwargs: Any) -> SearchOutcome:
        """The final outcome of `search_stream` (re-ranked when re-ranking is on)."""
        last = None
        for last in self.search_stream(image, **kwargs):  # noqa: B007 - we want the last item
            pass
        assert last is not None
        return last


_build_lock = threading.Lock()
_pipelines: dict[Config, Pipeline] = {}


def get_pipeline(config: Config | None = None, *, progress: Progress | None = None) -> Pipeline:
    """The process-wide pipeline for this config, built on first use and shared afterwards."""
    config = config or Config.from_env()
    with _build_lock:  # two first requests at once must not export the model twice
        if config not in _pipelines:
            _pipelines[config] = Pipeline.from_config(config, progress=progress)
        return _pipelines[config]
