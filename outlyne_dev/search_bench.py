"""Speed figures for the search stages, and the small local image server they (and the tests) use.

- `measure_thumbnail_search`: thumbnails served from 127.0.0.1, a fake engine returning their URLs; time
  to the engine-ordered results, time to the re-ranked results, and batch vs per-image embedding.
- `measure_local_search`: exact search over a synthetic 100k x 768 gallery index.

Both return JSON-able dicts for `python -m outlyne bench`.
"""

from __future__ import annotations

import io
import ssl
import statistics
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from outlyne.model.embedder import Embedder, l2_normalize
from outlyne.search.fetch import FetchLimits, fetch_images
from outlyne.search.galleries.folder import GalleryIndex
from outlyne.search.rerank import rerank
from outlyne.search.types import SearchRequest, SearchResult
from outlyne_dev.local_http import BackgroundServer

# --- a local HTTP server with canned responses ----------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """One canned response. `delay` sleeps before answering; `hold` makes the answer wait until the event
    is set (at most 30 s), so a test can tell "the client gave up first" from "the server answered";
    `send_length=False` omits Content-Length (the body then ends when the connection closes, as with
    chunked or streamed responses)."""

    body: bytes = b""
    status: int = 200
    content_type: str | None = "image/png"
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    hold: threading.Event | None = None
    send_length: bool = True


class ImageServer(BackgroundServer):
    """`with ImageServer({"/a.png": Route(png)}) as server: server.url("/a.png")`. Threaded, so slow routes
    do not hold up the others; records (path, Host header) of every request it saw."""

    def __init__(self, routes: Mapping[str, Route], *, tls: ssl.SSLContext | None = None) -> None:
        self.routes = dict(routes)
        self.requests: list[tuple[str, str]] = []
        self.answered: list[str] = []  # paths whose response was written in full
        super().__init__(self._handler_class())
        self.scheme = "https" if tls else "http"
        if tls:  # tests of certificate checks on pinned addresses
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append((self.path, self.headers.get("Host", "")))
                route = server.routes.get(self.path, Route(b"not found", 404, "text/plain"))
                time.sleep(route.delay)
                if route.hold is not None:
                    route.hold.wait(30)
                try:
                    self.send_response(route.status)
                    if route.content_type:
                        self.send_header("Content-Type", route.content_type)
                    if route.send_length:
                        self.send_header("Content-Length", str(len(route.body)))
                    for name, value in route.headers:
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(route.body)
                    self.wfile.flush()
                    server.answered.append(self.path)
                except OSError:
                    pass  # the client gave up (timeout, size cap): expected, not worth a traceback

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep test and bench output clean

        return Handler


def encode_image(image: Image.Image, format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format)
    return buffer.getvalue()


def synthetic_thumbnails(count: int, size: tuple[int, int] = (160, 120), seed: int = 0) -> list[Image.Image]:
    """Distinct pictures (coloured shapes on varied backgrounds), the size of web thumbnails."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        image = Image.new("RGB", size, tuple(int(v) for v in rng.integers(120, 256, 3)))
        draw = ImageDraw.Draw(image)
        for _shape in range(int(rng.integers(2, 6))):
            x0, y0 = int(rng.integers(0, size[0] - 20)), int(rng.integers(0, size[1] - 20))
            box = (x0, y0, x0 + int(rng.integers(10, 80)), y0 + int(rng.integers(10, 60)))
            colour = tuple(int(v) for v in rng.integers(0, 200, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
        images.append(image)
    return images


class _ListEngine:
    """A search engine that answers instantly with fixed results (the network is not what is measured)."""

    name = "bench"

    def __init__(self, results: list[SearchResult]) -> None:
        self._results = results

    def search(self, request: SearchRequest) -> list[SearchResult]:
        return list(self._results[: request.max_results])


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 2)


def measure_thumbnail_search(
    encoder: Embedder, *, count: int = 30, repeats: int = 3, batch_size: int | None = None
) -> dict:
    """Median over `repeats` of: engine-ordered results, re-ranked results (fetch + embed + order), and
    embedding the `count` fetched thumbnails in one batched call vs one call per image. `batch_size` is
    passed to the encoder (None: its own default, as the pipeline does)."""
    if repeats < 1 or count < 1:
        raise ValueError("count and repeats must be positive")
    thumbnails = synthetic_thumbnails(count)
    routes = {
        f"/thumb/{i}.jpg": Route(encode_image(t, "JPEG"), content_type="image/jpeg")
        for i, t in enumerate(thumbnails)
    }
    sketch = Image.new("RGB", (224, 224), "white")
    ImageDraw.Draw(sketch).ellipse((40, 40, 184, 184), outline="black", width=6)
    sketch_embedding = encoder.embed_images([sketch])[0]
    limits = FetchLimits(allow_loopback=True)
    request = SearchRequest("bench", max_results=count)

    engine_s, reranked_s, fetch_s = [], [], []
    with ImageServer(routes) as server:
        urls = [server.url(path) for path in routes]
        engine = _ListEngine(
            [SearchResult(f"thumb {i}", url, url, "", "bench", engine_rank=i) for i, url in enumerate(urls)]
        )
        for _ in range(repeats):
            start = time.perf_counter()
            results = engine.search(request)
            engine_s.append(time.perf_counter() - start)
            outcome = rerank(results, sketch_embedding, encoder, limits=limits, batch_size=batch_size)
            reranked_s.append(time.perf_counter() - start)
        for _ in range(repeats):
            start = time.perf_counter()
            fetched = fetch_images(urls, limits)
            fetch_s.append(time.perf_counter() - start)
    images = [item.image for item in fetched if item.image is not None]

    # Warm both paths once (first-call allocations), then alternate them so drift hits both alike.
    encoder.embed_images(images, batch_size=batch_size)
    encoder.embed_images(images[:1], batch_size=1)
    batch_s, loop_s = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        encoder.embed_images(images, batch_size=batch_size)
        batch_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        for image in images:
            encoder.embed_images([image], batch_size=1)
        loop_s.append(time.perf_counter() - start)

    return {
        "encoder": encoder.identity,
        "thumbnails": count,
        "fetched": len(images),
        "repeats": repeats,
        "batch_size": batch_size,
        "engine_results_ms": _median_ms(engine_s),
        "reranked_results_ms": _median_ms(reranked_s),
        "fetch_ms": _median_ms(fetch_s),
        "embed_batch_ms": _median_ms(batch_s),
        "embed_loop_ms": _median_ms(loop_s),
        "batch_speedup": round(statistics.median(loop_s) / statistics.median(batch_s), 2),
        "dropped": outcome.dropped,
    }


def measure_local_search(
    *, rows: int = 100_000, dim: int = 768, k: int = 30, repeats: int = 21, text_weight: float = 0.3
) -> dict:
    """Exact nearest neighbours over a synthetic `rows` x `dim` float32 index (random unit rows: the cost
    does not depend on the values), image-only and blended with a text vector."""
    rng = np.random.default_rng(0)
    embeddings = l2_normalize(rng.standard_normal((rows, dim), dtype=np.float32))
    index = GalleryIndex(Path("."), [f"{i}.jpg" for i in range(rows)], embeddings)
    queries = l2_normalize(rng.standard_normal((repeats + 1, dim), dtype=np.float32))
    index.nearest(queries[0], k=k)  # warm-up: page the matrix into cache

    image_s, blended_s = [], []
    for query in queries[1:]:
        start = time.perf_counter()
        index.nearest(query, k=k)
        image_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        index.nearest(query, k=k, text_embedding=queries[0], text_weight=text_weight)
        blended_s.append(time.perf_counter() - start)
    return {
        "rows": rows,
        "dim": dim,
        "k": k,
        "repeats": repeats,
        "image_query_ms": _median_ms(image_s),
        "blended_query_ms": _median_ms(blended_s),
        "image_query_max_ms": round(max(image_s) * 1000, 2),
    }
