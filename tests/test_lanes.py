"""Separate lanes (issue 11): while a search engine hangs, /interrogate and live scoring still answer.

The configurable engine chain (issue 12) is not on this branch, so the hanging engine is a fake backend
injected in-process: its search blocks until the test releases it. The app is the real Blocks of
outlyne.web, launched in this process on 127.0.0.1 with the real launch options.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from gradio_client import Client, handle_file

from outlyne.concepts.bank import ConceptBank
from outlyne.concepts.file import Concept
from outlyne.config import Config
from outlyne.pipeline import Pipeline
from outlyne.search.types import SearchRequest, SearchResult
from outlyne.web.lanes import LANE_LIMITS, NETWORK_LANE
from outlyne.web.page import build_demo, launch_options
from outlyne_dev.app_server import free_port

from .support.fakes import FakeEncoder
from .support.hostile import drawing_png
from .support.queue_client import QueueClient


class HangingEngine:
    """A search engine that accepts the request and answers only when released."""

    name = "hanging"
    supports_text_query = True  # a web engine (outlyne.search.types.SearchBackend)
    ranks_visually = False

    def __init__(self) -> None:
        self.release = threading.Event()
        self.waiting = threading.Semaphore(0)

    def search(self, request: SearchRequest) -> list[SearchResult]:
        self.waiting.release()
        assert self.release.wait(300)
        return []


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, HangingEngine]]:
    folder = tmp_path_factory.mktemp("lanes")
    encoder = FakeEncoder()
    bank = ConceptBank.build(
        encoder, [Concept(label, "thing") for label in ("cat", "house")], cache_dir=folder
    )
    engine = HangingEngine()
    pipeline = Pipeline(Config(cache_dir=folder, search="none"), encoder, bank, engine)
    demo = build_demo(pipeline)
    options = {**launch_options(pipeline.config), "server_name": "127.0.0.1", "server_port": free_port()}
    demo.queue().launch(prevent_thread_lock=True, quiet=True, **options)
    try:
        yield demo.local_url, engine
    finally:
        engine.release.set()
        demo.close()


def test_interrogate_and_live_scoring_answer_while_the_engine_hangs(served, tmp_path: Path) -> None:
    url, engine = served
    drawing = tmp_path / "drawing.png"
    drawing.write_bytes(drawing_png())
    searcher = Client(url, verbose=False)
    hanging = [
        searcher.submit(handle_file(str(drawing)), api_name="/search")
        for _ in range(LANE_LIMITS[NETWORK_LANE])
    ]
    for _ in hanging:  # every slot of the network lane is now held by a search waiting on the engine
        assert engine.waiting.acquire(timeout=120)

    client = Client(url, verbose=False)
    for _ in range(3):  # each would wait behind the hanging searches if they shared a lane
        assert client.predict(handle_file(str(drawing)), api_name="/interrogate")["concepts"]

    raw = QueueClient(url)
    sketch = raw.component_id("outlyne-sketch")
    composite = raw.upload("drawing.png", drawing_png())
    value = {"background": None, "layers": [], "composite": composite, "id": None}
    messages = raw.call(raw.event_index(sketch, "change"), [value, 3, ""])
    assert messages[-1]["msg"] == "process_completed" and messages[-1]["success"]
    assert not any(job.done() for job in hanging)  # the searches were hanging the whole time

    engine.release.set()
    for job in hanging:
        assert job.result(timeout=120)["results"] == []
