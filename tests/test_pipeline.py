"""The pipeline composes the stages: checked with a deterministic fake encoder, fake search engines and a
real local HTTP server for thumbnails; then once end to end on the tiny real checkpoint."""

from __future__ import annotations

import http.server
import io
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from outlyne.concepts.bank import ConceptBank
from outlyne.concepts.file import Concept
from outlyne.config import Config
from outlyne.errors import EmptySketch, SearchUnavailable
from outlyne.pipeline import InterrogateOptions, Pipeline, SearchOptions, get_pipeline
from outlyne.query import build_query
from outlyne.search.fetch import FetchLimits
from outlyne.search.types import SearchRequest, SearchResult
from outlyne.sketch.normalize import normalize
from tests.support.fakes import FakeEncoder
from tests.support.outlyne_cli import run_outlyne, tiny_env

ROOT = Path(__file__).resolve().parent.parent
CONCEPTS = tuple(
    Concept(label, group)
    for label, group in [
        ("circle", "shape"),
        ("square", "shape"),
        ("house", "building"),
        ("tree", "nature"),
        ("cat", "animal"),
        ("chair", "furniture"),
    ]
)


def drawing(kind: str = "circle", size: int = 200) -> np.ndarray:
    image = Image.new("RGB", (size, size), "white")
    pen = ImageDraw.Draw(image)
    if kind == "circle":
        pen.ellipse((40, 40, 160, 160), outline="black", width=4)
    elif kind == "square":
        pen.rectangle((50, 50, 150, 150), outline="black", width=4)
    else:
        pen.line((20, 180, 180, 20), fill="black", width=4)
    return np.asarray(image)


def png_bytes(shape: str) -> bytes:
    """The thumbnail of a drawing as the model sees it, so the matching sketch is its exact twin."""
    image = Image.fromarray(normalize(drawing(shape)).model_image)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class RecordingBackend:
    """A search engine that returns fixed results and remembers what it was asked."""

    name = "ddg"
    supports_text_query = True
    ranks_visually = False

    def __init__(self, results: list[SearchResult]) -> None:
        self.results = results
        self.requests: list[SearchRequest] = []

    def search(self, request: SearchRequest) -> list[SearchResult]:
        self.requests.append(request)
        return list(self.results)


class FailingBackend:
    name = "ddg"
    supports_text_query = True
    ranks_visually = False

    def search(self, request: SearchRequest) -> list[SearchResult]:
        raise SearchUnavailable("DuckDuckGo is rate-limiting requests; try again in a minute.")


@pytest.fixture(scope="module")
def thumbnail_server() -> Iterator[str]:
    pages = {
        "/circle.png": png_bytes("circle"),
        "/square.png": png_bytes("square"),
        "/line.png": png_bytes("line"),
    }

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def web_results(base: str, names: list[str]) -> list[SearchResult]:
    return [
        SearchResult(
            title=name,
            thumbnail=f"{base}/{name}.png",
            image=f"{base}/{name}-full.png",
            url=f"https://example.org/{name}",
            source="test",
            engine_rank=rank,
        )
        for rank, name in enumerate(names)
    ]


@pytest.fixture
def encoder() -> FakeEncoder:
    return FakeEncoder()


def make_pipeline(encoder: FakeEncoder, backend: object, tmp_path: Path) -> Pipeline:
    bank = ConceptBank.build(encoder, CONCEPTS, cache_dir=tmp_path)
    limits = FetchLimits(allow_loopback=True, timeout=5, deadline=10)
    return Pipeline(Config(cache_dir=tmp_path), encoder, bank, backend, fetch_limits=limits)


def test_interrogate_returns_concepts_query_and_stage_timings(encoder, tmp_path):
    pipeline = make_pipeline(encoder, None, tmp_path)
    result = pipeline.interrogate(drawing(), InterrogateOptions(top_k=3))
    assert len(result.concepts) == 3
    assert [c.score for c in result.concepts] == sorted((c.score for c in result.concepts), reverse=True)
    assert result.query == build_query(result.concepts)
    assert set(result.timings_ms) == {"normalize", "embed", "score", "query", "total"}
    height, width, channels = result.sketch.model_image.shape
    assert height == width and channels == 3
    assert np.isclose(np.linalg.norm(result.embedding), 1.0, atol=1e-5)
    payload = result.to_json()
    assert json.loads(json.dumps(payload))["query"] == result.query


def test_empty_canvas_is_a_clear_error(encoder, tmp_path):
    pipeline = make_pipeline(encoder, None, tmp_path)
    with pytest.raises(EmptySketch, match="Draw something first"):
        pipeline.interrogate(np.full((100, 100, 3), 255, np.uint8))


def test_extra_concepts_are_embedded_once_and_never_touch_the_shared_bank(encoder, tmp_path):
    pipeline = make_pipeline(encoder, None, tmp_path)
    labels_before = pipeline.bank.labels
    extra = (Concept("spaceship", "custom"), Concept("teapot", "custom"))
    options = InterrogateOptions(top_k=len(CONCEPTS) + 2, extra_concepts=extra)

    first = pipeline.interrogate(drawing(), options)
    calls_after_first = encoder.text_calls
    second = pipeline.interrogate(drawing("square"), options)

    assert {"spaceship", "teapot"} <= {c.label for c in first.concepts}
    assert {"spaceship", "teapot"} <= {c.label for c in second.concepts}
    assert encoder.text_calls == calls_after_first, "extra concepts were embedded twice"
    assert pipeline.bank.labels == labels_before
    plain = pipeline.interrogate(drawing(), InterrogateOptions(top_k=len(CONCEPTS) + 2))
    assert "spaceship" not in {c.label for c in plain.concepts}


def test_concurrent_requests_with_different_options_do_not_interfere(encoder, tmp_path):
    pipeline = make_pipeline(encoder, None, tmp_path)

    def run(top_k: int) -> int:
        return len(pipeline.interrogate(drawing(), InterrogateOptions(top_k=top_k)).concepts)

    with ThreadPoolExecutor(max_workers=6) as pool:
        counts = list(pool.map(run, [1, 2, 3, 4, 5, 6] * 3))
    assert counts == [1, 2, 3, 4, 5, 6] * 3


def test_search_yields_engine_order_first_then_reranked(encoder, tmp_path, thumbnail_server):
    backend = RecordingBackend(web_results(thumbnail_server, ["line", "missing", "square", "circle"]))
    pipeline = make_pipeline(encoder, backend, tmp_path)

    outcomes = list(pipeline.search_stream(drawing("circle"), options=SearchOptions(max_results=7)))

    assert [o.final for o in outcomes] == [False, True]
    preview, final = outcomes
    assert [r.title for r in preview.results] == ["line", "missing", "square", "circle"]
    assert not preview.reranked and final.reranked
    assert final.dropped == {"404": 1}
    assert "missing" not in [r.title for r in final.results]
    similarities = [r.similarity for r in final.results]
    assert similarities == sorted(similarities, reverse=True)
    # The same drawing as the sketch must come first: its thumbnail embeds closest.
    assert final.results[0].title == "circle"
    assert final.results[0].similarity == pytest.approx(1.0, abs=1e-4)
    assert backend.requests[0].query == final.query == final.interrogation.query
    assert backend.requests[0].max_results == 7
    assert "rerank" in final.timings_ms and "search" in final.timings_ms


def test_search_failure_keeps_the_interrogation_and_explains(encoder, tmp_path):
    pipeline = make_pipeline(encoder, FailingBackend(), tmp_path)
    outcome = pipeline.search(drawing())
    assert outcome.results == []
    assert outcome.interrogation is not None and outcome.interrogation.concepts
    assert outcome.query
    assert "rate-limiting" in outcome.warning


def test_all_thumbnails_failing_keeps_the_engine_results(encoder, tmp_path, thumbnail_server):
    backend = RecordingBackend(web_results(thumbnail_server, ["gone", "vanished"]))
    pipeline = make_pipeline(encoder, backend, tmp_path)
    outcome = pipeline.search(drawing())
    assert [r.title for r in outcome.results] == ["gone", "vanished"]
    assert not outcome.reranked
    assert outcome.dropped == {"404": 2}
    assert "engine's order" in outcome.warning


def test_edited_query_and_text_only_search(encoder, tmp_path, thumbnail_server):
    backend = RecordingBackend(web_results(thumbnail_server, ["square", "circle"]))
    pipeline = make_pipeline(encoder, backend, tmp_path)

    edited = pipeline.search(drawing(), query="  red bicycle  ")
    assert backend.requests[-1].query == edited.query == "red bicycle"

    text_only = pipeline.search(None, query="circle")
    assert text_only.interrogation is None
    assert text_only.reranked
    np.testing.assert_allclose(backend.requests[-1].image_embedding, encoder.embed_texts(["circle"])[0])


def test_rerank_off_and_no_backend(encoder, tmp_path, thumbnail_server):
    backend = RecordingBackend(web_results(thumbnail_server, ["square", "circle"]))
    pipeline = make_pipeline(encoder, backend, tmp_path)
    outcomes = list(pipeline.search_stream(drawing(), options=SearchOptions(rerank=False)))
    assert len(outcomes) == 1 and outcomes[0].final and not outcomes[0].reranked
    assert [r.title for r in outcomes[0].results] == ["square", "circle"]

    offline = make_pipeline(encoder, None, tmp_path)
    outcome = offline.search(drawing())
    assert outcome.results == [] and outcome.backend == "none" and outcome.warning is None


# -- end to end on the tiny real checkpoint -------------------------------------------------------------


def test_get_pipeline_builds_once_per_config(tiny_checkpoint, tmp_path):
    config = Config.from_env(tiny_env(tiny_checkpoint, tmp_path / "cache"))
    first = get_pipeline(config)
    assert get_pipeline(config) is first
    result = first.interrogate(ROOT / "examples" / "house.png")
    assert len(result.concepts) == config.top_k
    assert len(first.bank) >= 395


def test_interrogate_cli_json_and_empty_canvas(tiny_checkpoint, tmp_path):
    env = tiny_env(tiny_checkpoint, tmp_path / "cache")
    saved = tmp_path / "normalized.png"
    sun = str(ROOT / "examples" / "sun.png")
    done = run_outlyne(
        ["interrogate", sun, "--top-k", "4", "--json", "--save-normalized", str(saved)], env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert len(payload["concepts"]) == 4
    assert set(payload["concepts"][0]) == {"label", "group", "score", "cosine"}
    assert isinstance(payload["query"], str) and payload["query"]
    assert {"normalize", "embed", "score", "query"} <= set(payload["timings_ms"])
    assert Image.open(saved).size[0] == Image.open(saved).size[1]

    blank = tmp_path / "blank.png"
    Image.new("RGB", (120, 90), "white").save(blank)
    done = run_outlyne(["interrogate", str(blank), "--json"], env, timeout=300)
    assert done.returncode != 0
    assert done.stdout == ""
    # With the caches warm (the first run above built them) the error is the only line: no traceback.
    assert done.stderr == "outlyne: Draw something first: the canvas is empty.\n"
