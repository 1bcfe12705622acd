"""Eight people searching at once, five times each, against one `python app.py`: every search succeeds.

The server shares one read-only pipeline between sessions and runs at most `serving_concurrency` model
requests at a time; the rest wait in Gradio's queue. Nothing here measures time.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from PIL import Image, ImageDraw

from outlyne_dev.app_server import AppServer

CLIENTS = 8
SEARCHES_EACH = 5


def _drawings(folder: Path) -> list[Path]:
    """A different drawing per client, so a mix-up between sessions would show in the answers."""
    paths = []
    for index in range(CLIENTS):
        image = Image.new("RGB", (200, 200), "white")
        draw = ImageDraw.Draw(image)
        size = 30 + 15 * index
        draw.ellipse([20, 20, 20 + size, 20 + size], outline="black", width=3)
        draw.line([(10, 190), (190 - 10 * index, 10 + 5 * index)], fill="black", width=3)
        path = folder / f"client-{index}.png"
        image.save(path)
        paths.append(path)
    return paths


def _summary(concepts: list[dict]) -> tuple[list[str], list[float]]:
    return [c["label"] for c in concepts], [c["cosine"] for c in concepts]


def _searches(url: str, drawing: Path) -> list[dict]:
    client = Client(url, verbose=False)  # one client per person: its own session
    return [
        client.predict(handle_file(str(drawing)), max_results=4, api_name="/search")
        for _ in range(SEARCHES_EACH)
    ]


def test_eight_clients_each_searching_five_times_all_succeed(app: AppServer, tmp_path: Path) -> None:
    drawings = _drawings(tmp_path)
    alone = Client(app.url, verbose=False)
    expected = [alone.predict(handle_file(str(d)), api_name="/interrogate")["concepts"] for d in drawings]

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        answers = list(pool.map(lambda d: _searches(app.url, d), drawings))

    assert len(answers) == CLIENTS
    for drawing_index, searches in enumerate(answers):
        assert len(searches) == SEARCHES_EACH
        for result in searches:
            assert result["warning"] is None
            assert len(result["results"]) == 4
            # Each answer belongs to the drawing its client sent, never to another session's.
            labels, cosines = _summary(result["concepts"])
            expected_labels, expected_cosines = _summary(expected[drawing_index])
            assert labels == expected_labels
            assert cosines == pytest.approx(expected_cosines, abs=1e-5)
    assert app.process.poll() is None  # the server is still up
