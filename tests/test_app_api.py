"""The two API endpoints, called with gradio_client against `python app.py` as people would call them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from outlyne_dev.app_server import ROOT, AppServer

EMPTY_CANVAS_MESSAGE = "Draw something first"


def _save(tmp_path: Path, name: str, pixels: np.ndarray) -> Path:
    path = tmp_path / name
    Image.fromarray(pixels).save(path)
    return path


def test_the_api_is_exactly_interrogate_search_explain_and_share(app_client: Client) -> None:
    api = app_client.view_api(print_info=False, return_format="dict")
    assert set(api["named_endpoints"]) == {"/interrogate", "/search", "/explain", "/share"}
    assert api["unnamed_endpoints"] == {}
    parameters = [p["parameter_name"] for p in api["named_endpoints"]["/search"]["parameters"]]
    assert parameters == ["image", "top_k", "max_results"]


def test_interrogate_returns_ranked_concepts_and_a_query(app_client: Client, house_drawing: Path) -> None:
    result = app_client.predict(handle_file(str(house_drawing)), api_name="/interrogate")
    assert set(result) >= {"concepts", "query", "bbox", "timings_ms"}
    concepts = result["concepts"]
    assert len(concepts) == 5  # the server's default top-K
    for concept in concepts:
        assert set(concept) == {"label", "group", "score", "cosine"}
        assert 0.0 <= concept["score"] <= 1.0
        assert -1.0 <= concept["cosine"] <= 1.0
    scores = [c["score"] for c in concepts]
    assert scores == sorted(scores, reverse=True)
    assert isinstance(result["query"], str) and result["query"].strip()
    x0, y0, x1, y1 = result["bbox"]
    assert 0 <= x0 < x1 <= 300 and 0 <= y0 < y1 <= 240
    assert {"normalize", "embed", "score"} <= set(result["timings_ms"])


def test_interrogate_honours_top_k(app_client: Client, house_drawing: Path) -> None:
    result = app_client.predict(handle_file(str(house_drawing)), top_k=3, api_name="/interrogate")
    assert len(result["concepts"]) == 3


def test_search_returns_the_interrogation_and_gallery_results(
    app_client: Client, app: AppServer, house_drawing: Path
) -> None:
    interrogation = app_client.predict(handle_file(str(house_drawing)), api_name="/interrogate")
    result = app_client.predict(handle_file(str(house_drawing)), max_results=6, api_name="/search")
    assert result["concepts"] == interrogation["concepts"]
    assert result["query"] == interrogation["query"]
    assert result["backend"] == "local"
    assert result["warning"] is None
    results = result["results"]
    assert len(results) == 6
    gallery_files = {path.name for path in app.gallery.glob("*.png")}
    for item in results:
        assert item["title"] in gallery_files
        # An app URL with a stable id, never a server path; the app serves a downsized copy there.
        assert item["url"].startswith("/outlyne/gallery/") and str(app.gallery) not in item["url"]
        assert -1.0 <= item["similarity"] <= 1.0
    served = httpx.get(app.url.rstrip("/") + results[0]["url"], timeout=30)
    assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
    similarities = [item["similarity"] for item in results]
    assert similarities == sorted(similarities, reverse=True)
    assert "search" in result["timings_ms"]


@pytest.mark.parametrize(
    "pixels",
    [
        np.full((64, 64, 3), 255, np.uint8),  # blank white paper
        np.zeros((64, 64, 4), np.uint8),  # a fully transparent layer, as an untouched canvas exports
    ],
    ids=["white", "transparent"],
)
@pytest.mark.parametrize("endpoint", ["/interrogate", "/search"])
def test_an_empty_canvas_gives_the_documented_error(
    app_client: Client, tmp_path: Path, pixels: np.ndarray, endpoint: str
) -> None:
    path = _save(tmp_path, "empty.png", pixels)
    with pytest.raises(AppError, match=EMPTY_CANVAS_MESSAGE):
        app_client.predict(handle_file(str(path)), api_name=endpoint)


def test_no_image_at_all_gives_the_same_error(app_client: Client) -> None:
    with pytest.raises(AppError, match=EMPTY_CANVAS_MESSAGE):
        app_client.predict(None, api_name="/search")


def test_explain_returns_a_heatmap_grid_for_a_concept(app_client: Client, house_drawing: Path) -> None:
    top = app_client.predict(handle_file(str(house_drawing)), api_name="/interrogate")["concepts"][0]["label"]
    result = app_client.predict(handle_file(str(house_drawing)), label=top, api_name="/explain")
    assert result["label"] == top
    grid = result["grid"]
    assert len(grid) >= 2 and all(len(row) == len(grid) for row in grid)
    row, column = result["peak_cell"]
    assert grid[row][column] == max(max(r) for r in grid)
    assert result["runs"] >= 2  # the drawing itself and at least one erased cell


def test_explaining_an_unknown_concept_says_so(app_client: Client, house_drawing: Path) -> None:
    with pytest.raises(AppError, match="is not one of the concepts"):
        app_client.predict(handle_file(str(house_drawing)), label="no such thing at all", api_name="/explain")


def test_a_file_that_is_not_an_image_is_refused_in_plain_words(app_client: Client, tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_bytes(b"this is not a picture")
    with pytest.raises(AppError, match="image") as raised:
        app_client.predict(handle_file(str(path)), api_name="/interrogate")
    assert "Traceback" not in str(raised.value) and "preprocess" not in str(raised.value)


def _documented_snippet() -> str:
    """The gradio_client example people copy from the README."""
    readme = (ROOT / "README.md").read_text()
    for block in re.findall(r"```python\n(.*?)```", readme, re.DOTALL):
        if "gradio_client" in block and 'api_name="/search"' in block:
            return block
    pytest.fail("no gradio_client snippet in README.md")


def test_the_documented_snippet_works_as_written(app: AppServer) -> None:
    snippet = _documented_snippet()
    code = snippet.replace("http://127.0.0.1:7860/", app.url)
    assert code != snippet, "the snippet should address the default local URL"
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    assert "query:" in completed.stdout
    assert "drawing-" in completed.stdout  # a search result from the test gallery
    assert "why:" in completed.stdout
