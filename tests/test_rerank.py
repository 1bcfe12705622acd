"""Re-ranking with controlled embeddings: each thumbnail's colour decides its vector (ColourEncoder)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from outlyne.search.fetch import FetchLimits
from outlyne.search.rerank import ranked_order, rerank
from outlyne.search.types import SearchResult
from outlyne_dev.search_bench import ImageServer, Route, encode_image, measure_thumbnail_search
from tests.support.fakes import ColourEncoder, FakeEncoder

COLOURS = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "cyan": (0, 255, 255),
}
PALETTE = {
    COLOURS["red"]: [1.0, 0.0, 0.0],
    COLOURS["green"]: [0.6, 0.8, 0.0],
    COLOURS["blue"]: [0.0, 0.0, 1.0],
    COLOURS["yellow"]: [0.80, 0.6, 0.0],
    COLOURS["cyan"]: [0.78, 0.0, 0.6258],
}
SKETCH = np.array([1.0, 0.0, 0.0], np.float32)
LIMITS = FetchLimits(timeout=2, deadline=10, allow_loopback=True)


def png(colour: tuple[int, int, int]) -> bytes:
    return encode_image(Image.new("RGB", (32, 24), colour))


@pytest.fixture(scope="module")
def server() -> Iterator[ImageServer]:
    routes = {f"/{name}.png": Route(png(colour)) for name, colour in COLOURS.items()}
    routes["/red-again.png"] = Route(png((250, 6, 4)))  # re-hosted copy: same vector as red
    routes["/page.html"] = Route(b"<html></html>", content_type="text/html")
    with ImageServer(routes) as running:
        yield running


def results_for(server: ImageServer, *names: str) -> list[SearchResult]:
    return [
        SearchResult(name, server.url(f"/{name}"), f"https://img/{name}", "", "test", engine_rank=rank)
        for rank, name in enumerate(names)
    ]


def test_order_by_cosine_duplicates_collapsed_failures_counted(server: ImageServer) -> None:
    encoder = ColourEncoder(PALETTE)
    results = results_for(
        server, "blue.png", "missing.png", "green.png", "red-again.png", "red.png", "page.html"
    )
    outcome = rerank(results, SKETCH, encoder, limits=LIMITS)

    # red-again and red tie at cosine 1: the engine's better rank keeps red-again, red is collapsed into it
    assert [r.title for r in outcome.results] == ["red-again.png", "green.png", "blue.png"]
    assert [r.similarity for r in outcome.results] == pytest.approx([1.0, 0.6, 0.0], abs=1e-6)
    assert [r.engine_rank for r in outcome.results] == [3, 2, 0]
    assert outcome.duplicates_collapsed == 1
    assert outcome.dropped == {"404": 1, "not an image": 1}
    assert encoder.call_sizes == [4]  # every fetched thumbnail in one batched call


def test_threshold_above_one_keeps_duplicates(server: ImageServer) -> None:
    outcome = rerank(
        results_for(server, "red.png", "red-again.png"),
        SKETCH,
        ColourEncoder(PALETTE),
        limits=LIMITS,
        duplicate_threshold=1.01,
    )
    assert [r.title for r in outcome.results] == ["red.png", "red-again.png"]
    assert outcome.duplicates_collapsed == 0


def test_engine_weight_decides_between_near_ties(server: ImageServer) -> None:
    # cyan (cos 0.78) is the engine's first pick, yellow (cos 0.80) its second
    results = results_for(server, "cyan.png", "yellow.png", "blue.png")
    pure = rerank(results, SKETCH, ColourEncoder(PALETTE), limits=LIMITS)
    assert [r.title for r in pure.results] == ["yellow.png", "cyan.png", "blue.png"]
    blended = rerank(results, SKETCH, ColourEncoder(PALETTE), limits=LIMITS, engine_weight=0.1)
    assert [r.title for r in blended.results] == ["cyan.png", "yellow.png", "blue.png"]
    assert blended.results[0].similarity == pytest.approx(0.78, abs=1e-3)  # the plain cosine, not the blend


def test_all_thumbnails_failing_is_an_empty_outcome_not_an_error(server: ImageServer) -> None:
    encoder = ColourEncoder(PALETTE)
    outcome = rerank(results_for(server, "nope.png", "page.html"), SKETCH, encoder, limits=LIMITS)
    assert (outcome.results, outcome.dropped, outcome.duplicates_collapsed) == (
        [],
        {"404": 1, "not an image": 1},
        0,
    )
    assert encoder.image_calls == 0


def test_no_results_fetches_nothing() -> None:
    encoder = ColourEncoder(PALETTE)
    assert rerank([], SKETCH, encoder).results == []
    assert encoder.image_calls == 0


def test_ranked_order_tiebreak_and_prior_use_positions_not_raw_ranks() -> None:
    cosines = np.array([0.5, 0.5, 0.7])
    assert ranked_order([9, 4, 20], cosines, 0.0) == [2, 1, 0]
    # ranks with gaps (dropped rows): the prior is 1 - position / n = [2/3, 1, 1/3] whatever the gaps,
    # so scores are [0.833, 1.0, 0.867]
    assert ranked_order([9, 4, 20], cosines, 0.5) == [1, 2, 0]


def test_thumbnail_search_bench_runs_end_to_end_on_a_small_set() -> None:
    report = measure_thumbnail_search(FakeEncoder(), count=4, repeats=1)
    assert (report["thumbnails"], report["fetched"], report["dropped"]) == (4, 4, {})
    assert 0 <= report["engine_results_ms"] <= report["reranked_results_ms"]
    assert report["batch_speedup"] > 0
    json.dumps(report)
